"""Jacobians and Hessian-vector products of a model's outputs with respect to its states.

    python examples/hessian_jacobians.py [--quick]

A small facade model; we take the Jacobian of its outputs w.r.t. its ParamStates by reverse mode,
by forward mode and row by row from one VJP, the Hessian of the loss w.r.t. one state, and
Hessian-vector products without forming the Hessian (forward-over-reverse: a JVP of the facade's
own gradient function, perturbing the states with ``state_tangents``). All of it is checked
against each other.
"""

import argparse

import jax
import jax.numpy as jnp

import facade as brainstate


class TwoLayer(brainstate.nn.Module):
    def __init__(self, key, n_in=3, n_hidden=5, n_out=2):
        super().__init__()
        k1, k2 = jax.random.split(key)
        self.w1 = brainstate.ParamState(jax.random.normal(k1, (n_in, n_hidden)) / jnp.sqrt(n_in))
        self.w2 = brainstate.ParamState(jax.random.normal(k2, (n_hidden, n_out)) / 2.0)

    def __call__(self, x):
        return jnp.tanh(x @ self.w1.value) @ self.w2.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer Hessian-vector products")
    n_hvp = 2 if parser.parse_args().quick else 10

    model = TwoLayer(jax.random.key(0))
    params = model.states(brainstate.ParamState)  # {('w1',): ..., ('w2',): ...}
    x = jnp.array([0.5, -1.0, 2.0])
    target = jnp.array([1.0, -1.0])
    tr = brainstate.transform

    # 1. Jacobian of the 2 outputs w.r.t. every parameter, three ways.
    jac_rev = tr.jacrev(model, grad_states=params)(x)
    jac_fwd = tr.jacfwd(model, grad_states=params)(x)
    out, vjp_fn = tr.vjp(model, x, grad_states=params, argnums=None)
    jac_rows = jax.vmap(vjp_fn)(jnp.eye(out.size))  # one pullback per output, one forward pass
    for path in params:
        print(f"d out / d {path}: {jac_rev[path].shape}")
        assert jnp.allclose(jac_rev[path], jac_fwd[path], atol=1e-5)
        assert jnp.allclose(jac_rev[path], jac_rows[path], atol=1e-5)

    # 2. The Hessian of the loss w.r.t. w2: (5, 2, 5, 2), flattened to a 10 x 10 matrix.
    def loss():
        return 0.5 * jnp.sum((model(x) - target) ** 2)

    hess = tr.hessian(loss, grad_states=model.w2)()
    h_matrix = hess.reshape(model.w2.value.size, -1)
    print(f"Hessian w.r.t. w2: {hess.shape}, symmetric: {bool(jnp.allclose(h_matrix, h_matrix.T))}")

    # 3. Hessian-vector products: the JVP of the gradient, perturbing the states.
    grad_fn = tr.grad(loss, grad_states=model.w2)
    for i, key in enumerate(jax.random.split(jax.random.key(1), n_hvp)):
        v = jax.random.normal(key, model.w2.value.shape)
        _, hvp = tr.jvp(grad_fn, (), (), grad_states=model.w2, state_tangents=v)
        assert jnp.allclose(hvp.ravel(), h_matrix @ v.ravel(), atol=1e-4), i
    print(f"{n_hvp} Hessian-vector products match the full Hessian")

    # 4. The largest curvature direction by power iteration on HVPs alone.
    v = jnp.ones(model.w2.value.shape)
    for _ in range(50 if n_hvp > 2 else 10):
        _, hv = tr.jvp(grad_fn, (), (), grad_states=model.w2, state_tangents=v)
        v = hv / jnp.linalg.norm(hv)
    _, hv = tr.jvp(grad_fn, (), (), grad_states=model.w2, state_tangents=v)
    top, exact = float(jnp.vdot(v, hv)), float(jnp.linalg.eigvalsh(h_matrix)[-1])
    print(f"top Hessian eigenvalue: {top:.4f} (eigh: {exact:.4f})")


if __name__ == "__main__":
    main()
