"""The benchmark cases for raw JAX, ``functional`` and the facade, on the same arrays.

Each builder returns ``{column: contender}``, a contender being a zero-argument callable that
returns the result's arrays. Raw JAX is always ``jax.jit`` of a pure function that takes the
parameters explicitly; the other columns compute the same thing from the same arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import facade
import functional as F

RAW = "raw JAX"
FUNC = "functional jit"
EAGER = "facade eager"
FJIT = "facade jit"
AA = "raw JAX A/A"  # a second jax.jit of the same function: the noise floor of a ratio

Contenders = dict[str, Callable[[], Any]]

MLP_DEPTH, MLP_WIDTH, MLP_BATCH = 8, 64, 32


# --- data ------------------------------------------------------------------------------------


def chain_data(n: int) -> tuple[dict[str, jax.Array], jax.Array]:
    """``n`` parameters of shape (4,) named p0000.. (so dict order = numeric order) and x."""
    rng = np.random.default_rng(0)
    values = (1.0 + 0.5 * rng.standard_normal((n, 4))).astype(np.float32)
    params = {f"p{i:04d}": jnp.asarray(v) for i, v in enumerate(values)}
    return params, jnp.linspace(-1.0, 1.0, 4, dtype=jnp.float32)


def chain_pure(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """sum_i sum(tanh(x * p_i)^2): every parameter matters (a deep recursive chain
    tanh(h * p_i) is avoided on purpose: XLA takes minutes and >10 GB to compile its gradient
    at N=1000, for raw JAX as much as for us)."""
    total = jnp.zeros((), x.dtype)
    for p in params.values():
        total = total + jnp.sum(jnp.tanh(x * p) ** 2)
    return total


def mlp_data() -> tuple[dict[str, jax.Array], jax.Array, jax.Array]:
    rng = np.random.default_rng(1)
    params: dict[str, jax.Array] = {}
    for layer in range(MLP_DEPTH):
        w = rng.standard_normal((MLP_WIDTH, MLP_WIDTH)) / np.sqrt(MLP_WIDTH)
        params[f"w{layer}"] = jnp.asarray(w, jnp.float32)
        params[f"b{layer}"] = jnp.zeros((MLP_WIDTH,), jnp.float32)
    x = jnp.asarray(rng.standard_normal((MLP_BATCH, MLP_WIDTH)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((MLP_BATCH, MLP_WIDTH)), jnp.float32)
    return params, x, y


def mlp_pure(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    h = x
    for layer in range(MLP_DEPTH):
        h = jnp.tanh(h @ params[f"w{layer}"] + params[f"b{layer}"])
    return jnp.mean((h - y) ** 2)


# --- grad cases: chain and MLP ---------------------------------------------------------------


def facade_grad(
    pure: Callable[..., Any], params: dict[str, Any]
) -> tuple[Any, Any, dict[str, facade.ParamState]]:
    """ParamStates holding ``params`` and the facade's eager ``grad`` and ``jit(grad)`` of
    ``pure`` read through them, differentiated w.r.t. all states (a dict, as in brainstate)."""
    states = {k: facade.ParamState(v, name=k) for k, v in params.items()}

    def loss(*a: Any) -> Any:
        return pure({k: s.value for k, s in states.items()}, *a)

    eager = facade.transform.grad(loss, grad_states=states)
    jitted = facade.transform.jit(facade.transform.grad(loss, grad_states=states))
    return eager, jitted, states


def _grad_contenders(pure: Callable[..., Any], params: dict[str, Any], args: tuple) -> Contenders:
    """raw / functional / facade eager / facade jit for ``grad`` of ``pure(params, *args)``."""
    raw, again = jax.jit(jax.grad(pure)), jax.jit(jax.grad(pure))
    func = jax.jit(F.grad(pure))
    eager, jitted, _ = facade_grad(pure, params)
    return {
        RAW: lambda: raw(params, *args),
        AA: lambda: again(params, *args),
        FUNC: lambda: func(params, *args),
        EAGER: lambda: eager(*args),
        FJIT: lambda: jitted(*args),
    }


def chain(n: int) -> Contenders:
    params, x = chain_data(n)
    return _grad_contenders(chain_pure, params, (x,))


def mlp() -> Contenders:
    params, x, y = mlp_data()
    return _grad_contenders(mlp_pure, params, (x, y))


# --- first call: discovery + trace + compile -------------------------------------------------


def built_on_first_call(build: Callable[[], Callable[..., Any]], *args: Any) -> Callable[[], Any]:
    """A contender that builds its transform inside its first call (so a timed first call
    covers building, discovery, tracing and compiling) and reuses it afterwards."""
    built: list[Callable[..., Any]] = []

    def call() -> Any:
        if not built:
            built.append(build())
        return built[0](*args)

    return call


def first_call_factories(n: int) -> dict[str, Callable[[], Callable[[], Any]]]:
    """Factories of fresh contenders for ``grad`` of the N-chain: new function objects and new
    states every time, so nothing traced or compiled before can be reused."""
    params, x = chain_data(n)

    def fresh_pure() -> Callable[..., Any]:
        def pure(p: dict[str, jax.Array], x: jax.Array) -> jax.Array:
            return chain_pure(p, x)

        return pure

    def raw() -> Callable[[], Any]:
        pure = fresh_pure()
        return built_on_first_call(lambda: jax.jit(jax.grad(pure)), params, x)

    def func() -> Callable[[], Any]:
        pure = fresh_pure()
        return built_on_first_call(lambda: jax.jit(F.grad(pure)), params, x)

    def _facade(jit: bool) -> Callable[[], Any]:
        states = {k: facade.ParamState(v, name=k) for k, v in params.items()}
        pure = fresh_pure()

        def loss(x: jax.Array) -> jax.Array:
            return pure({k: s.value for k, s in states.items()}, x)

        def build() -> Callable[..., Any]:
            g = facade.transform.grad(loss, grad_states=states)
            return facade.transform.jit(g) if jit else g

        return built_on_first_call(build, x)

    return {RAW: raw, FUNC: func, EAGER: lambda: _facade(False), FJIT: lambda: _facade(True)}


# --- small functions: vjp + pullback, jacrev, hessian ----------------------------------------


def small_data() -> tuple[jax.Array, jax.Array, jax.Array]:
    rng = np.random.default_rng(2)
    w = jnp.asarray(rng.standard_normal((8, 8)) / np.sqrt(8), jnp.float32)
    x = jnp.asarray(rng.standard_normal(8), jnp.float32)
    v = jnp.asarray(rng.standard_normal(8), jnp.float32)
    return w, x, v


def _small_pure(w: jax.Array, x: jax.Array) -> jax.Array:
    return jnp.tanh(w @ x)


def _small_scalar(w: jax.Array, x: jax.Array) -> jax.Array:
    return jnp.sum(jnp.tanh(w @ x) ** 2)


def vjp_fused() -> Contenders:
    """out and cotangents (w, x) for cotangent v, as one compiled program per column."""
    w, x, v = small_data()
    ws = facade.ParamState(w, name="w")

    def f(x: jax.Array) -> jax.Array:
        return _small_pure(ws.value, x)

    def raw_fn(w: jax.Array, x: jax.Array, v: jax.Array) -> Any:
        out, pullback = jax.vjp(_small_pure, w, x)
        return out, pullback(v)

    def func_fn(w: jax.Array, x: jax.Array, v: jax.Array) -> Any:
        out, pullback = F.vjp(_small_pure, w, x, argnums=(0, 1))
        return out, pullback(v)

    def facade_fn(x: jax.Array, v: jax.Array) -> Any:
        out, pullback = facade.transform.vjp(f, x, grad_states=ws)
        return out, pullback(v)

    raw, func, fj = jax.jit(raw_fn), jax.jit(func_fn), facade.transform.jit(facade_fn)
    return {RAW: lambda: raw(w, x, v), FUNC: lambda: func(w, x, v), FJIT: lambda: fj(x, v)}


def vjp_two_step() -> Contenders:
    """The eager API shape: a forward call returning the pullback, then the pullback call.

    Raw JAX: ``jax.jit(jax.vjp)`` (returning the pullback as a pytree) then a jitted apply, two
    dispatches, as the facade's eager ``vjp`` + ``vjp_fn`` also makes.
    """
    w, x, v = small_data()
    ws = facade.ParamState(w, name="w")

    def f(x: jax.Array) -> jax.Array:
        return _small_pure(ws.value, x)

    fwd = jax.jit(lambda w, x: jax.vjp(_small_pure, w, x))
    apply = jax.jit(lambda pullback, v: pullback(v))
    ffwd = jax.jit(lambda w, x: F.vjp(_small_pure, w, x, argnums=(0, 1)))

    def raw() -> Any:
        out, pullback = fwd(w, x)
        return out, apply(pullback, v)

    def func() -> Any:
        out, pullback = ffwd(w, x)
        return out, apply(pullback, v)

    def eager() -> Any:
        out, pullback = facade.transform.vjp(f, x, grad_states=ws)
        return out, pullback(v)

    return {RAW: raw, FUNC: func, EAGER: eager}


def _jac_like(name: str) -> Contenders:
    w, x, _ = small_data()
    ws = facade.ParamState(w, name="w")
    jax_t, f_t, facade_t = {
        "jacrev": (jax.jacrev, F.jacrev, facade.transform.jacrev),
        "hessian": (jax.hessian, F.hessian, facade.transform.hessian),
    }[name]
    pure = _small_pure if name == "jacrev" else _small_scalar

    def stateful(x: jax.Array) -> jax.Array:
        return pure(ws.value, x)

    raw, func = jax.jit(jax_t(pure)), jax.jit(f_t(pure))
    eager = facade_t(stateful, grad_states=ws)
    fj = facade.transform.jit(facade_t(stateful, grad_states=ws))
    return {
        RAW: lambda: raw(w, x),
        FUNC: lambda: func(w, x),
        EAGER: lambda: eager(x),
        FJIT: lambda: fj(x),
    }


def jacrev() -> Contenders:
    return _jac_like("jacrev")


def hessian() -> Contenders:
    return _jac_like("hessian")


def same_values(reference: Any, result: Any) -> bool:
    """Loose, structure-agnostic check that two results hold the same arrays' values."""
    ref = sorted(float(jnp.sum(jnp.abs(x))) for x in jax.tree.leaves(reference))
    got = sorted(float(jnp.sum(jnp.abs(x))) for x in jax.tree.leaves(result))
    return len(ref) == len(got) and all(
        abs(a - b) <= 1e-3 * (1.0 + abs(a)) for a, b in zip(ref, got, strict=True)
    )
