"""Shared helpers for the ``functional`` tests: raw-JAX oracles and strict tree comparison.

The module has a distinctive name (not ``helpers``/``conftest``) because ``tests/`` has no
``__init__.py`` files, so test-side modules share one flat import namespace across packages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

# The four has_aux/return_value combinations of the spec's return table.
COMBOS = [(False, False), (True, False), (False, True), (True, True)]
COMBO_IDS = ["plain", "aux", "value", "value+aux"]


def _is_none(x: Any) -> bool:
    return x is None


def assert_trees_equal(
    actual: Any, expected: Any, *, rtol: float = 1e-6, atol: float = 1e-6
) -> None:
    """Same tree structure (``None`` holes included), and per leaf the same type of object,
    shape, dtype, weak type and (close) values. Non-array leaves must be equal."""
    a_leaves, a_def = jax.tree.flatten(actual, is_leaf=_is_none)
    e_leaves, e_def = jax.tree.flatten(expected, is_leaf=_is_none)
    assert a_def == e_def, f"tree structure differs:\n  got      {a_def}\n  expected {e_def}"
    for i, (a, e) in enumerate(zip(a_leaves, e_leaves, strict=True)):
        where = f"leaf {i} of {e_def}"
        if e is None or not eqx.is_array_like(e):
            assert a is e or a == e, f"{where}: got {a!r}, expected {e!r}"
            continue
        assert eqx.is_array_like(a), f"{where}: got non-array {a!r}"
        assert np.shape(a) == np.shape(e), f"{where}: shape {np.shape(a)} != {np.shape(e)}"
        a_dtype, e_dtype = np.asarray(a).dtype, np.asarray(e).dtype
        assert a_dtype == e_dtype, f"{where}: dtype {a_dtype} != {e_dtype}"
        assert getattr(a, "weak_type", None) == getattr(e, "weak_type", None), (
            f"{where}: weak_type {getattr(a, 'weak_type', None)} != "
            f"{getattr(e, 'weak_type', None)}"
        )
        if e_dtype == jax.dtypes.float0:
            continue  # float0 holds no values
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(e), rtol=rtol, atol=atol, err_msg=where
        )


def unpack(result: Any, has_aux: bool, return_value: bool) -> tuple[Any, Any, Any]:
    """Read a transform's result by the spec's return table and return ``(grads, value, aux)``.

    Checks the container: a bare ``grads`` for neither flag, otherwise a tuple of exactly
    ``1 + has_aux + return_value`` items in the order grads, value, aux.
    """
    if not has_aux and not return_value:
        return result, None, None
    assert type(result) is tuple, f"expected a tuple, got {type(result).__name__}"
    assert len(result) == 1 + has_aux + return_value, f"got {len(result)} items"
    if has_aux and return_value:
        return result
    if has_aux:
        return result[0], None, result[1]
    return result[0], result[1], None


def with_aux(fun: Callable[..., Any]) -> Callable[..., Any]:
    """``fun`` returning ``(out, aux)`` with an aux that depends on the output."""

    def fun_aux(*args: Any) -> tuple[Any, Any]:
        out = fun(*args)
        return out, {"twice": jax.tree.map(lambda v: 2 * v, out), "tag": jnp.int32(7)}

    return fun_aux


def split_static(args: tuple[Any, ...]) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """For raw JAX: return ``(to_full, dynamic)`` where ``dynamic`` holds each argument with
    only its array-like leaves (``None`` elsewhere, as ``eqx.partition``) and ``to_full``
    rebuilds the full arguments. This lets raw ``jax.grad`` handle an equinox Module with an
    activation function, and gives the ``None`` holes equinox's ``filter_grad`` gives."""
    parts = [eqx.partition(a, eqx.is_array_like) for a in args]
    dynamic = tuple(d for d, _ in parts)
    statics = tuple(s for _, s in parts)

    def to_full(*dyn: Any) -> list[Any]:
        return [eqx.combine(d, s) for d, s in zip(dyn, statics, strict=True)]

    return to_full, dynamic


def raw_transform(jax_transform: Callable[..., Any], fun: Callable[..., Any], args: tuple[Any, ...],
                  argnums: Any, **kwargs: Any) -> Any:
    """Apply a raw JAX transform (``jax.grad``, ``jax.jacrev``, ...) to ``fun`` at ``args``."""
    to_full, dynamic = split_static(args)
    return jax_transform(lambda *d: fun(*to_full(*d)), argnums=argnums, **kwargs)(*dynamic)


def raw_vector_grad(fun: Callable[..., Any], *, argnums: Any, has_aux: bool = False
                    ) -> Callable[..., Any]:
    """The oracle for ``vector_grad``: ``jax.vjp`` pulled back with a cotangent of ones."""

    def g(*args: Any) -> Any:
        positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)

        def of_selected(*sel: Any) -> Any:
            full = list(args)
            for i, s in zip(positions, sel, strict=True):
                full[i] = s
            return fun(*full)

        res = jax.vjp(of_selected, *(args[i] for i in positions), has_aux=has_aux)
        out, pullback = res[0], res[1]
        cts = pullback(jax.tree.map(jnp.ones_like, out))
        grads = cts[0] if isinstance(argnums, int) else cts
        return (grads, res[2]) if has_aux else grads

    return g


def expected(jax_transform: Callable[..., Any], fun: Callable[..., Any], args: tuple[Any, ...],
             argnums: Any, has_aux: bool, **kwargs: Any) -> tuple[Any, Any, Any]:
    """Raw-JAX ``(grads, value, aux)`` for ``fun`` (``with_aux(fun)`` when ``has_aux``)."""
    if has_aux:
        grads, aux = raw_transform(jax_transform, with_aux(fun), args, argnums, has_aux=True,
                                   **kwargs)
    else:
        grads, aux = raw_transform(jax_transform, fun, args, argnums, **kwargs), None
    return grads, fun(*args), aux


# ---------------------------------------------------------------------------------------------
# Cases: functions of several pytree shapes. Each has a vector-valued ``vec`` and a scalar
# ``scalar`` built from it, the arguments, and the argnums worth trying on it.


def _scalarize(vec: Callable[..., Any]) -> Callable[..., Any]:
    def scalar(*args: Any) -> Any:
        out = vec(*args)
        return sum(jnp.sum(0.5 * v**2 + jnp.sin(v)) for v in jax.tree.leaves(out))

    return scalar


class Case:
    def __init__(self, name: str, vec: Callable[..., Any], make_args: Callable[[], tuple],
                 argnums: list[Any]):
        self.name, self.vec, self.make_args, self.argnums = name, vec, make_args, argnums
        self.scalar = _scalarize(vec)

    def __repr__(self) -> str:
        return self.name


def _k(i: int) -> jax.Array:
    return jax.random.key(i)


def _normal(i: int, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.normal(_k(i), shape)


CASES = [
    Case(
        "array",
        lambda x: jnp.sin(x) * x[::-1],
        lambda: (_normal(0, (3,)),),
        [0, -1, (0,)],
    ),
    Case(
        "dict",
        lambda p, x: jnp.tanh(p["w"] @ x + p["b"]),
        lambda: ({"w": _normal(1, (2, 3)), "b": _normal(2, (2,))}, _normal(3, (3,))),
        [0, 1, -2, (0, 1), (1, 0), (-1, 0)],
    ),
    Case(
        "nested_list_tuple",
        lambda p, x: {"y": p[1][0] @ (p[0] * x) * p[1][1]["c"], "z": p[1][1]["s"] * p[0]},
        lambda: (
            [_normal(4, (2,)), (_normal(5, (2, 2)), {"c": _normal(6, ()), "s": 0.5})],
            _normal(7, (2,)),
        ),
        [0, (0, 1)],
    ),
    Case(
        "three_args",
        lambda a, b, c: (a * b + c**2, jnp.cos(a)),
        lambda: (_normal(8, (2,)), _normal(9, (2,)), _normal(10, (2,))),
        [(0, 2), (2, 0), -1, (-3, -1)],
    ),
    Case(
        "python_float",
        lambda s, x: x * s**2 + jnp.exp(s * x),
        lambda: (1.5, _normal(11, (3,))),
        [0, (0, 1)],
    ),
    Case(
        "eqx_linear",
        lambda lin, x: lin(x),
        lambda: (eqx.nn.Linear(3, 2, key=_k(12)), _normal(13, (3,))),
        [0, (0, 1)],
    ),
    Case(
        "eqx_mlp",
        lambda mlp, x: mlp(x),
        lambda: (
            eqx.nn.MLP(3, 2, 4, 1, activation=jax.nn.softplus, key=_k(14)),
            _normal(15, (3,)),
        ),
        [0, -2, (1, 0)],
    ),
    Case(
        "static_leaves",
        lambda p, x: p["fn"](p["w"]) * x + (p["none"] is None),
        lambda: ({"w": _normal(16, (3,)), "name": "abc", "none": None, "fn": jnp.sin},
                 _normal(17, (3,))),
        [0, (0, 1)],
    ),
]


def case_argnums_params(reduced: bool = False) -> list[Any]:
    """``pytest.param(case, argnums)`` for every case and every argnums worth trying on it.

    ``reduced`` keeps only the last argnums of each case (a tuple or a negative index, the
    richer result structure): for the transforms that are slow to compile.
    """
    return [
        pytest.param(c, a, id=f"{c.name}-argnums={a}")
        for c in CASES
        for a in (c.argnums[-1:] if reduced else c.argnums)
    ]
