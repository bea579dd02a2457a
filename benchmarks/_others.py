"""Optional columns: equinox, brainstate and flax.nnx on the same arrays, when installed.

None of them is a dependency of stategrad: a library that cannot be imported gives no column,
and one whose API fails here gives an error note, never a failed benchmark run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import jax

EQX = "equinox"
BS_EAGER = "brainstate eager"
BS_JIT = "brainstate jit"
NNX_JIT = "flax.nnx jit"


def available() -> dict[str, str]:
    """Installed optional libraries and their versions."""
    found = {}
    for module, dist in [("equinox", "equinox"), ("brainstate", "brainstate"), ("flax", "flax")]:
        try:
            found[dist] = getattr(importlib.import_module(module), "__version__", "?")
        except Exception:  # noqa: BLE001 - any import failure means "not available"
            pass
    return found


# Each builder: (pure, params, args) -> {column: contender}; pure(params_dict, *args).


def _equinox(pure: Callable[..., Any], params: dict[str, Any], args: tuple) -> dict[str, Any]:
    import equinox as eqx

    class Model(eqx.Module):
        params: dict[str, jax.Array]

        def __call__(self, *a: Any) -> jax.Array:
            return pure(self.params, *a)

    model = Model(params)
    step = eqx.filter_jit(eqx.filter_grad(lambda m, *a: m(*a)))
    return {EQX: lambda: step(model, *args)}


def _brainstate(pure: Callable[..., Any], params: dict[str, Any], args: tuple) -> dict[str, Any]:
    import brainstate

    states = {k: brainstate.ParamState(v) for k, v in params.items()}

    def loss(*a: Any) -> Any:
        return pure({k: s.value for k, s in states.items()}, *a)

    eager = brainstate.transform.grad(loss, grad_states=states)
    jitted = brainstate.transform.jit(brainstate.transform.grad(loss, grad_states=states))
    return {BS_EAGER: lambda: eager(*args), BS_JIT: lambda: jitted(*args)}


def _nnx(pure: Callable[..., Any], params: dict[str, Any], args: tuple) -> dict[str, Any]:
    from flax import nnx

    keys = list(params)

    class Model(nnx.Module):
        def __init__(self) -> None:
            self.ps = nnx.List([nnx.Param(params[k]) for k in keys])

        def __call__(self, *a: Any) -> jax.Array:
            return pure({k: p[...] for k, p in zip(keys, self.ps, strict=True)}, *a)

    model = Model()
    step = nnx.jit(nnx.grad(lambda m, *a: m(*a)))
    return {NNX_JIT: lambda: step(model, *args)}


_BUILDERS = {"equinox": _equinox, "brainstate": _brainstate, "flax": _nnx}


def grad_contenders(
    pure: Callable[..., Any],
    params: dict[str, Any],
    args: tuple,
    libraries: dict[str, str],
    errors: list[str],
) -> dict[str, Any]:
    """The optional columns for ``grad`` of ``pure(params, *args)``."""
    out: dict[str, Any] = {}
    for lib in libraries:
        try:
            out.update(_BUILDERS[lib](pure, params, args))
        except Exception as err:  # noqa: BLE001 - optional: note it, carry on
            errors.append(f"{lib}: could not build the contender: {type(err).__name__}: {err}")
    return out


def brainstate_jit(
    build: Callable[[Any], Callable[[], Any]], libraries: dict[str, str], errors: list[str]
) -> dict[str, Any]:
    """brainstate's jit column of a stateful case written against a brainstate-like module:
    ``build(brainstate)`` returns the contender."""
    if "brainstate" not in libraries:
        return {}
    try:
        import brainstate

        return {BS_JIT: build(brainstate)}
    except Exception as err:  # noqa: BLE001 - optional: note it, carry on
        errors.append(f"brainstate: could not build the contender: {type(err).__name__}: {err}")
        return {}
