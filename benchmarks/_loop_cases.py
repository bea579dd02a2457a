"""Cases with written States: BPTT through ``for_loop``, per-example gradients and a batch of
simulations through ``vmap``, and transforms constructed anew on every call.

The stateful models are written once against a brainstate-like module, ``lib``: ``facade``
for our columns, ``brainstate`` itself for its optional column (``lib.ParamState``,
``lib.HiddenState``, ``lib.transform.*``), so that both compute the same thing the same way.
Raw JAX is ``jax.jit`` of the explicit program: ``lax.scan`` over explicit values.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _cases import AA, EAGER, FJIT, FUNC, RAW, Contenders, built_on_first_call

import facade
import functional as F

ANEW = "facade anew"
RAW_ANEW = "raw JAX anew"  # eager lax.scan over a fresh lambda: JAX traces and compiles every call

BPTT_SIZES = ((32, 100), (64, 1000))  # (width, steps)
PEX_BATCH, PEX_WIDTH = 64, 32  # per-example gradients
VB_BATCH, VB_WIDTH, VB_STEPS = 16, 32, 100  # vmapped BPTT


def has_vmap() -> bool:
    """Whether ``facade.transform.vmap`` exists (the batching rows need it)."""
    return hasattr(facade.transform, "vmap")


# --- the RNN: explicit and stateful -----------------------------------------------------


def rnn_data(width: int, steps: int, batch: int | None = None) -> tuple[dict[str, Any], Any]:
    """Weights (a recurrent matrix of spectral radius about 0.9) and inputs of shape
    ``(steps, width)``, or ``(batch, steps, width)``."""
    rng = np.random.default_rng(3)
    params = {
        "w_in": rng.standard_normal((width, width)) / np.sqrt(width),
        "w_rec": 0.9 * rng.standard_normal((width, width)) / np.sqrt(width),
        "b": 0.1 * rng.standard_normal(width),
    }
    shape = (steps, width) if batch is None else (batch, steps, width)
    xs = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    return {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}, xs


def rnn_cell(params: dict[str, Any], h: Any, x: Any) -> Any:
    return jnp.tanh(x @ params["w_in"] + h @ params["w_rec"] + params["b"])


def rnn_scan(params: dict[str, Any], h0: Any, xs: Any) -> tuple[Any, Any]:
    """``(ys, h_final)`` of the RNN over ``xs`` from ``h0``: explicit, with ``lax.scan``."""

    def step(h: Any, x: Any) -> tuple[Any, Any]:
        h = rnn_cell(params, h, x)
        return h, h

    h, ys = jax.lax.scan(step, h0, xs)
    return ys, h


def bptt_pure(params: dict[str, Any], xs: Any) -> Any:
    """Mean squared output of one simulation from ``h = 0``."""
    ys, _ = rnn_scan(params, jnp.zeros(xs.shape[-1], xs.dtype), xs)
    return jnp.mean(ys**2)


def vbptt_pure(params: dict[str, Any], xs_batch: Any) -> Any:
    """Mean squared output of a batch of simulations (one per leading index of ``xs_batch``)."""
    h0 = jnp.zeros(xs_batch.shape[-1], xs_batch.dtype)
    ys, _ = jax.vmap(lambda xs: rnn_scan(params, h0, xs))(xs_batch)
    return jnp.mean(ys**2)


class RNN:
    """A tanh RNN with ParamStates ``w_in``, ``w_rec``, ``b`` and a HiddenState ``h`` (of shape
    ``h_shape``: ``(width,)``, or ``(batch, width)`` for a batch of simulations)."""

    def __init__(self, lib: ModuleType, params: dict[str, Any], h_shape: tuple[int, ...]):
        self.params = {k: lib.ParamState(v) for k, v in params.items()}
        self.h_shape = h_shape
        self.h = lib.HiddenState(jnp.zeros(h_shape, jnp.float32))

    def values(self) -> dict[str, Any]:
        return {k: s.value for k, s in self.params.items()}

    def reset(self) -> None:
        self.h.value = jnp.zeros(self.h_shape, jnp.float32)

    def step(self, x: Any) -> Any:
        self.h.value = rnn_cell(self.values(), self.h.value, x)
        return self.h.value


def bptt_loss(lib: ModuleType, model: RNN, loop: str = "for_loop") -> Callable[[Any], Any]:
    """The stateful loss: reset ``h``, run the loop, mean squared output. ``loop`` is one of
    ``for_loop``/``checkpointed_for_loop`` (the step writes ``h``) or
    ``scan``/``checkpointed_scan`` (``h`` is the explicit carry; only the weights are read)."""
    run = getattr(lib.transform, loop)

    def carried(h: Any, x: Any) -> tuple[Any, Any]:
        h = rnn_cell(model.values(), h, x)
        return h, h

    def loss(xs: Any) -> Any:
        if "scan" in loop:
            _, ys = run(carried, jnp.zeros_like(xs[0]), xs)
        else:
            model.reset()
            ys = run(model.step, xs)
        return jnp.mean(ys**2)

    return loss


# --- BPTT ------------------------------------------------------------------------------


def bptt_grad(lib: ModuleType, width: int, steps: int, jit: bool) -> Callable[[], Any]:
    """``lib``'s gradient of the BPTT loss w.r.t. the ParamStates (under ``lib``'s jit or not)."""
    params, xs = rnn_data(width, steps)
    model = RNN(lib, params, (width,))
    grad = lib.transform.grad(bptt_loss(lib, model), grad_states=model.params)
    fn = lib.transform.jit(grad) if jit else grad
    return lambda: fn(xs)


def bptt(width: int, steps: int) -> Contenders:
    params, xs = rnn_data(width, steps)
    raw, again = jax.jit(jax.grad(bptt_pure)), jax.jit(jax.grad(bptt_pure))
    func = jax.jit(F.grad(bptt_pure))
    return {
        RAW: lambda: raw(params, xs),
        AA: lambda: again(params, xs),
        FUNC: lambda: func(params, xs),
        EAGER: bptt_grad(facade, width, steps, jit=False),
        FJIT: bptt_grad(facade, width, steps, jit=True),
    }


def bptt_first_call_factories(width: int, steps: int) -> dict[str, Callable[[], Any]]:
    """Fresh contenders for the first call of BPTT: new functions, new States every time."""
    params, xs = rnn_data(width, steps)

    def explicit(transform: Callable[..., Any]) -> Callable[[], Any]:
        def pure(p: dict[str, Any], xs: Any) -> Any:
            return bptt_pure(p, xs)

        return built_on_first_call(lambda: jax.jit(transform(pure)), params, xs)

    def stateful(jit: bool) -> Callable[[], Any]:
        model = RNN(facade, params, (width,))
        loss = bptt_loss(facade, model)

        def build() -> Callable[..., Any]:
            g = facade.transform.grad(loss, grad_states=model.params)
            return facade.transform.jit(g) if jit else g

        return built_on_first_call(build, xs)

    return {
        RAW: lambda: explicit(jax.grad),
        FUNC: lambda: explicit(F.grad),
        EAGER: lambda: stateful(False),
        FJIT: lambda: stateful(True),
    }


# --- batching: per-example gradients, a batch of simulations ------------------------------


def pex_data() -> tuple[dict[str, Any], Any, Any]:
    rng = np.random.default_rng(4)
    w = PEX_WIDTH
    params = {
        "w": jnp.asarray(rng.standard_normal((w, w)) / np.sqrt(w), jnp.float32),
        "b": jnp.zeros((w,), jnp.float32),
        "v": jnp.asarray(rng.standard_normal(w) / np.sqrt(w), jnp.float32),
    }
    xs = jnp.asarray(rng.standard_normal((PEX_BATCH, w)), jnp.float32)
    ys = jnp.asarray(rng.standard_normal(PEX_BATCH), jnp.float32)
    return params, xs, ys


def pex_pure(params: dict[str, Any], x: Any, y: Any) -> Any:
    """Squared error of one example through a one-hidden-layer tanh network."""
    pred = jnp.tanh(x @ params["w"] + params["b"]) @ params["v"]
    return (pred - y) ** 2


def per_example_grad(lib: ModuleType, jit: bool) -> Callable[[], Any]:
    """``lib.transform.vmap(lib.transform.grad(loss, grad_states=params))`` over examples."""
    params, xs, ys = pex_data()
    states = {k: lib.ParamState(v) for k, v in params.items()}

    def loss(x: Any, y: Any) -> Any:
        return pex_pure({k: s.value for k, s in states.items()}, x, y)

    fn = lib.transform.vmap(lib.transform.grad(loss, grad_states=states), in_axes=(0, 0))
    fn = lib.transform.jit(fn) if jit else fn
    return lambda: fn(xs, ys)


def per_example() -> Contenders:
    params, xs, ys = pex_data()
    raw = jax.jit(jax.vmap(jax.grad(pex_pure), in_axes=(None, 0, 0)))
    func = jax.jit(jax.vmap(F.grad(pex_pure), in_axes=(None, 0, 0)))
    return {
        RAW: lambda: raw(params, xs, ys),
        FUNC: lambda: func(params, xs, ys),
        EAGER: per_example_grad(facade, jit=False),
        FJIT: per_example_grad(facade, jit=True),
    }


def vmapped_bptt_grad(lib: ModuleType, jit: bool) -> Callable[[], Any]:
    """Gradient w.r.t. the shared weights of a batch of simulations: ``lib.transform.vmap`` of
    a ``for_loop`` over a batched HiddenState (declared in ``in_states``/``out_states``)."""
    params, xs = rnn_data(VB_WIDTH, VB_STEPS, batch=VB_BATCH)
    model = RNN(lib, params, (VB_BATCH, VB_WIDTH))
    simulate = lib.transform.vmap(
        lambda xs: lib.transform.for_loop(model.step, xs), in_states=model.h, out_states=model.h
    )

    def loss(xs_batch: Any) -> Any:
        model.reset()
        return jnp.mean(simulate(xs_batch) ** 2)

    fn = lib.transform.grad(loss, grad_states=model.params)
    fn = lib.transform.jit(fn) if jit else fn
    return lambda: fn(xs)


def vmapped_bptt() -> Contenders:
    params, xs = rnn_data(VB_WIDTH, VB_STEPS, batch=VB_BATCH)
    raw, func = jax.jit(jax.grad(vbptt_pure)), jax.jit(F.grad(vbptt_pure))
    return {
        RAW: lambda: raw(params, xs),
        FUNC: lambda: func(params, xs),
        EAGER: vmapped_bptt_grad(facade, jit=False),
        FJIT: vmapped_bptt_grad(facade, jit=True),
    }


# --- the same transform constructed anew on every call ----------------------------------


def grad_anew(pure: Callable[..., Any], params: dict[str, Any], args: tuple) -> Contenders:
    """``grad(loss, grad_states=states)`` built once (cached) and built inside every call."""
    states = {k: facade.ParamState(v, name=k) for k, v in params.items()}

    def loss(*a: Any) -> Any:
        return pure({k: s.value for k, s in states.items()}, *a)

    raw = jax.jit(jax.grad(pure))
    cached = facade.transform.grad(loss, grad_states=states)
    return {
        RAW: lambda: raw(params, *args),
        EAGER: lambda: cached(*args),
        ANEW: lambda: facade.transform.grad(loss, grad_states=states)(*args),
    }


def for_loop_anew(width: int, steps: int) -> Contenders:
    """A forward simulation (outputs and final ``h``) by an eager ``for_loop`` over an inline
    lambda built on every call (called anew: traced every call, compiled once), against a held
    ``jax.jit`` of the same ``lax.scan`` (the baseline), raw JAX's eager ``lax.scan`` over a
    fresh lambda, and the loop under a held ``facade.transform.jit``."""
    params, xs = rnn_data(width, steps)
    model = RNN(facade, params, (width,))
    h0 = jnp.zeros((width,), jnp.float32)
    raw = jax.jit(rnn_scan)

    def anew(xs: Any) -> Any:
        model.h.value = h0
        return facade.transform.for_loop(lambda x: model.step(x), xs), model.h.value

    def raw_anew() -> Any:
        def step(h: Any, x: Any) -> tuple[Any, Any]:
            h = rnn_cell(params, h, x)
            return h, h

        return jax.lax.scan(step, h0, xs)

    jitted = facade.transform.jit(anew)
    return {
        RAW: lambda: raw(params, h0, xs),
        RAW_ANEW: raw_anew,
        ANEW: lambda: anew(xs),
        FJIT: lambda: jitted(xs),
    }
