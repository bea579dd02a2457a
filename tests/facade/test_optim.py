"""facade.optim: optimizer steps over States equal plain optax on explicit arrays, eagerly and
inside ``facade.transform.jit`` (parameters and optimizer state written back)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import facade
from facade import nn, optim


def make_model(dtype=np.float32):
    rng = np.random.default_rng(0)
    layer = nn.Linear(
        3, 2, w_init=jnp.asarray(rng.standard_normal((3, 2)), dtype), b_init=jnp.zeros(2, dtype)
    )
    layer.gain = facade.ParamState(jnp.asarray(1.5, dtype))
    return layer


def grads_at(step, params):
    """Deterministic gradients for step ``step``, in the structure of ``params`` (numpy)."""
    rng = np.random.default_rng(100 + step)
    return jax.tree.map(lambda v: rng.standard_normal(np.shape(v)).astype(v.dtype), params)


def run_plain_optax(tx, params, steps):
    state = tx.init(params)
    for k in range(steps):
        updates, state = tx.update(grads_at(k, params), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


OPTIMIZERS = {
    "SGD": (lambda: optim.SGD(lr=0.1), lambda: optax.sgd(0.1)),
    "SGD-momentum-nesterov-decay": (
        lambda: optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda: optax.chain(
            optax.add_decayed_weights(0.01), optax.sgd(0.1, momentum=0.9, nesterov=True)
        ),
    ),
    "Adam": (
        lambda: optim.Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6),
        lambda: optax.adam(0.05, b1=0.8, b2=0.99, eps=1e-6),
    ),
    "Adam-L2": (
        lambda: optim.Adam(lr=0.05, weight_decay=0.1),
        lambda: optax.chain(optax.add_decayed_weights(0.1), optax.adam(0.05)),
    ),
    "AdamW": (
        lambda: optim.AdamW(lr=0.05, weight_decay=0.2),
        lambda: optax.adamw(0.05, weight_decay=0.2),
    ),
    "OptaxOptimizer-chain-schedule": (
        lambda: optim.OptaxOptimizer(
            optax.chain(
                optax.clip_by_global_norm(1.0), optax.adam(optax.linear_schedule(0.1, 0.0, 3))
            )
        ),
        lambda: optax.chain(
            optax.clip_by_global_norm(1.0), optax.adam(optax.linear_schedule(0.1, 0.0, 3))
        ),
    ),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_steps_equal_plain_optax(name):
    make, make_tx = OPTIMIZERS[name]
    model = make_model()
    params = model.states(facade.ParamState)
    initial = {p: s.value for p, s in params.items()}
    opt = make().register_trainable_weights(params)
    for k in range(3):
        opt.update(grads_at(k, initial))
    want, want_state = run_plain_optax(make_tx(), initial, 3)
    for path, state in params.items():
        for got_leaf, want_leaf in zip(
            jax.tree.leaves(state.value), jax.tree.leaves(want[path]), strict=True
        ):
            assert got_leaf.dtype == want_leaf.dtype == np.float32
            np.testing.assert_allclose(got_leaf, want_leaf, rtol=1e-6, atol=1e-7)
    # The same optax state (held in the parameters' FlatDict instead of a dict).
    assert len(jax.tree.leaves(opt.opt_state.value)) == len(jax.tree.leaves(want_state))
    for a, b in zip(jax.tree.leaves(opt.opt_state.value), jax.tree.leaves(want_state), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_training_step_under_jit_writes_parameters_and_optimizer_state_back():
    model = make_model()
    params = model.states(facade.ParamState)
    initial = {p: s.value for p, s in params.items()}
    opt = optim.Adam(lr=0.05).register_trainable_weights(params)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((8, 3)), jnp.float32)
    y = jnp.asarray(np.random.default_rng(2).standard_normal((8, 2)), jnp.float32)

    def loss():
        return jnp.mean((model(x) * model.gain.value - y) ** 2)

    @facade.transform.jit
    def train_step():
        grads, value = facade.transform.grad(loss, params, return_value=True)()
        opt.update(grads)
        return value

    losses = [float(train_step()) for _ in range(4)]

    # The same four steps with plain JAX and optax on explicit arrays.
    def plain_loss(p):
        w = p[("weight",)]
        return jnp.mean(((x @ w["weight"] + w["bias"]) * p[("gain",)] - y) ** 2)

    tx = optax.adam(0.05)

    @jax.jit
    def plain_step(p, s):
        value, g = jax.value_and_grad(plain_loss)(p)
        updates, s = tx.update(g, s, p)
        return optax.apply_updates(p, updates), s, value

    p, s, plain_losses = initial, tx.init(initial), []
    for _ in range(4):
        p, s, value = plain_step(p, s)
        plain_losses.append(float(value))
    np.testing.assert_allclose(losses, plain_losses, rtol=1e-5)
    np.testing.assert_allclose(model.weight.value["weight"], p[("weight",)]["weight"], rtol=1e-5)
    np.testing.assert_allclose(model.gain.value, p[("gain",)], rtol=1e-5)
    # The optimizer state is a State, written back by the compiled step: Adam counted 4 steps.
    assert isinstance(opt.opt_state, optim.OptimState)
    assert int(opt.opt_state.value[0].count) == 4
    assert losses[-1] < losses[0]


def test_float64_parameters_stay_float64():
    with facade.environ.context(precision=64):
        model = make_model(np.float64)
        params = model.states(facade.ParamState)
        initial = {p: s.value for p, s in params.items()}
        opt = optim.SGD(lr=0.1, momentum=0.5).register_trainable_weights(params)
        for k in range(2):
            opt.update(grads_at(k, initial))
        want, _ = run_plain_optax(optax.sgd(0.1, momentum=0.5), initial, 2)
        assert model.gain.value.dtype == np.float64
        np.testing.assert_allclose(model.gain.value, want[("gain",)], rtol=1e-12)
        np.testing.assert_allclose(
            model.weight.value["weight"], want[("weight",)]["weight"], rtol=1e-12
        )


def test_grads_are_matched_to_states_by_key():
    a, b = facade.ParamState(jnp.array(1.0)), facade.ParamState(jnp.array(2.0))
    opt = optim.SGD(lr=1.0).register_trainable_weights(
        facade.graph.FlatDict({("a",): a, ("b",): b})
    )
    opt.update({("b",): jnp.array(0.5), ("a",): jnp.array(0.25)})  # a plain dict, other order
    assert (float(a.value), float(b.value)) == (0.75, 1.5)
    nested = optim.SGD(lr=1.0).register_trainable_weights({"layer": [a], "scale": b})
    nested.update({"scale": jnp.array(1.0), "layer": [jnp.array(0.75)]})
    assert (float(a.value), float(b.value)) == (0.0, 0.5)
    assert nested.param_states["scale"] is b and "trainable states: 2" in repr(nested)


def test_errors_name_the_problem():
    a = facade.ParamState(jnp.array(1.0))
    opt = optim.SGD(lr=0.1)
    with pytest.raises(ValueError, match="register_trainable_weights"):
        opt.update({"a": jnp.array(1.0)})
    opt.register_trainable_weights({"a": a})
    with pytest.raises(ValueError, match="no gradient .*'a'"):
        opt.update({})
    with pytest.raises(ValueError, match="not registered"):
        opt.update({"a": jnp.array(1.0), "c": jnp.array(1.0)})
    with pytest.raises(TypeError, match="not a State"):
        optim.SGD().register_trainable_weights({"a": a, "b": jnp.ones(2)})
    with pytest.raises(ValueError, match="twice"):
        optim.SGD().register_trainable_weights([a, a])
    with pytest.raises(TypeError, match="no State"):
        optim.SGD().register_trainable_weights({})
    with pytest.raises(TypeError, match="GradientTransformation"):
        optim.OptaxOptimizer(optax.sgd)  # the factory, not a transformation
    with pytest.raises(ValueError, match="lr"):
        optim.Adam(lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        optim.AdamW(betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="momentum"):
        optim.SGD(momentum="0.9")
