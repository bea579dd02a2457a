"""The public batching transforms: ``vmap``, ``vmap_new_states``, ``map``, ``unvmap`` (``vmap2``
and ``StatefulMapping`` are in ``_stateful_mapping``).

Each is a thin layer over the engine in ``_mapping`` (how a call's States go through one
``jax.vmap``): it checks and records its options in a ``_mapping.Spec``, and runs the mapped call
through ``_eager.call`` (one compiled program per call signature when called eagerly) or, for
``vmap_new_states``, directly on every call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import batching, mlir

from .._core import sites
from .._core.bridge import discover
from ..random import RandomState
from ._loops import _for_loop_traced, leading_length
from ._mapping import Spec, declared_states, vmap_call, vmap_traced

# --- public transforms ------------------------------------------------------------------------


class Mapped(sites.HeldTransform):
    """A function under :func:`vmap` or :func:`vmap2`; callable like it."""

    def __init__(self, spec: Spec):
        self.spec = spec
        super().__init__(
            spec.fn,
            functools.partial(vmap_traced, spec),
            spec.where,
            spec.static_argnums,
            spec.static_argnames,
        )


def vmap(
    fn: Callable[..., Any] | None = None,
    *,
    in_axes: int | None | Sequence[Any] = 0,
    out_axes: Any = 0,
    axis_name: Any = None,
    axis_size: int | None = None,
    spmd_axis_name: Any = None,
    in_states: Any = None,
    out_states: Any = None,
) -> Any:
    """Vectorise a stateful ``fn`` over a mapped axis (``jax.vmap``), with batched States.

    States in ``in_states`` enter batched: each element sees its slice. States in
    ``out_states`` (and the written ``in_states``) are written back with their batch axis;
    their new value has it even when the written value does not depend on the mapped inputs
    (as ``jax.vmap`` broadcasts an unbatched output). Every other State is shared by all
    elements: it may be read, and written with a value that does not depend on the mapped
    inputs. A State declared in ``out_states`` that ``fn`` never writes is left as it is (as
    in brainstate). Random states: with key ``k`` and ``B`` elements, element ``i`` draws
    with ``lanes[i]`` of ``new, *lanes = jax.random.split(k, B + 1)`` and the state holds
    ``new`` afterwards, so the draws equal a loop over the elements with those keys.

    Keyword arguments are supported and mapped over their axis 0, as ``jax.vmap`` maps them
    (brainstate raises ``NotImplementedError``); close over a value that should be shared.
    Usable as ``@vmap(...)``. Results, gradients and writes equal the explicit ``jax.vmap``
    over the States' values; called eagerly, one compiled program per call signature.

    Args:
        fn: the function; it may read and write States and draw from ``facade.random``.
        in_axes: the mapped axis of each positional argument, as ``jax.vmap`` takes it.
        out_axes: where the mapped axis goes in the result.
        axis_name: a name for the mapped axis, for collectives such as ``jax.lax.psum``.
        axis_size: the size of the mapped axis (needed when nothing is mapped).
        spmd_axis_name: as ``jax.vmap``.
        in_states: States batched on input: a State, a list or dict of States (axis 0), or a
            dict from axes to those, e.g. ``{1: [h]}``.
        out_states: States written back with a batch axis, declared the same way.

    Returns:
        The vectorised function (or a decorator when ``fn`` is omitted).

    Raises:
        BatchAxisError: a State written with a batched value but not declared in
            ``out_states`` (or declared unbatched), or declared with two different axes. The
            State keeps its value.
        ValueError: mapped axes of different sizes (naming each argument and State), an axis
            out of range, ``in_axes`` not matching the arguments, nothing to map over.
        TypeError: ``fn`` not callable, a malformed declaration.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> counter = facade.ShortTermState(jnp.zeros(3))
        >>> @facade.transform.vmap(in_states=counter, out_states=counter)
        ... def accumulate(x):
        ...     counter.value = counter.value + x
        ...     return counter.value
        >>> accumulate(jnp.asarray([1.0, 2.0, 3.0]))
        Array([1., 2., 3.], dtype=float32)
        >>> counter.value
        Array([1., 2., 3.], dtype=float32)
    """
    where = "vmap"

    def make(f: Callable[..., Any]) -> Mapped:
        state_in = declared_states(in_states, "in_states", where)
        state_out = declared_states(out_states, "out_states", where)
        spec = Spec(
            f, where, in_axes, out_axes, axis_name, axis_size, spmd_axis_name, state_in, state_out
        )
        return Mapped(spec)

    return make if fn is None else make(fn)


class _NewStatesMapped(Mapped):
    """A function under :func:`vmap_new_states`: traced on every call (it creates States)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Called eagerly, it runs op by op: compiling a program for every call (it must trace
        # every call, to create new States) costs more than JAX's per-operation programs,
        # which are compiled once and reused.
        return vmap_call(self.spec, args, kwargs, [])


def vmap_new_states(
    fun: Callable[..., Any] | None = None,
    *,
    in_axes: int | None | Sequence[Any] = 0,
    out_axes: Any = 0,
    axis_name: Any = None,
    axis_size: int | None = None,
    spmd_axis_name: Any = None,
    state_tag: str | None = None,
    state_to_exclude: Any = None,
    in_states: Any = None,
    out_states: Any = None,
) -> Any:
    """Vectorise a function that creates States: each State it creates gets the batch axis.

    Build a model per batch element, or call ``nn.init_all_states`` inside: every State
    created directly in ``fun`` (not inside a nested transform) holds, afterwards, the stacked
    values of all elements, as a concrete array. Random states are split per element (as in
    :func:`vmap`), so random initialisations differ along the axis. ``fun`` is traced on every
    call (twice: once abstractly to find its States), as each call must create new States.

    Args:
        fun: the function.
        in_axes, out_axes, axis_name, axis_size, spmd_axis_name: as :func:`vmap`.
        state_tag: stored as ``metadata['tag']`` of every State created.
        state_to_exclude: a filter of created States that are shared, not vectorised; their
            values must not depend on the mapped inputs.
        in_states, out_states: not supported (there are no States to declare yet).

    Returns:
        The vectorised function (or a decorator when ``fun`` is omitted).

    Raises:
        ValueError: ``in_states``/``out_states`` given, ``axis_size`` not positive, or as
            :func:`vmap`.
        BatchAxisError: an excluded State whose value depends on the mapped inputs, or as
            :func:`vmap`.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> made = []
        >>> @facade.transform.vmap_new_states(in_axes=0, axis_size=4)
        ... def build(x):
        ...     scratch = facade.ShortTermState(jnp.zeros(()))
        ...     scratch.value = scratch.value + x
        ...     made.append(scratch)
        ...     return scratch.value
        >>> build(jnp.arange(4.0))
        Array([0., 1., 2., 3.], dtype=float32)
        >>> made[-1].value
        Array([0., 1., 2., 3.], dtype=float32)
    """
    where = "vmap_new_states"
    if in_states is not None or out_states is not None:
        raise ValueError(
            f"{where}: in_states/out_states are not used: it maps the States the function "
            "creates. Use facade.transform.vmap to batch existing States."
        )

    def make(f: Callable[..., Any]) -> _NewStatesMapped:
        spec = Spec(
            f,
            where,
            in_axes,
            out_axes,
            axis_name,
            axis_size,
            spmd_axis_name,
            {},
            {},
            new_states=True,
            exclude=state_to_exclude,
            state_tag=state_tag,
        )
        return _NewStatesMapped(spec)

    return make if fun is None else make(fun)


# --- map ------------------------------------------------------------------------------------


def _map_traced(f: Callable[..., Any], batch_size: int | None, *xs: Any) -> Any:
    where = "map"
    n = leading_length(xs, None, where)
    if batch_size is None:
        return _for_loop_traced(f, None, False, 1, None, None, where, *xs)
    slices = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a)[1:], jnp.result_type(a)), xs)
    d, _ = discover(f, slices, {})
    written = [s for s in d.writes if not isinstance(s, RandomState)]
    if written:
        names = ", ".join(s._describe() for s in written)
        raise ValueError(
            f"{where}: with batch_size, f runs batched and must not write States other than "
            f"random ones; it writes {names}. Use map without batch_size (sequential, States "
            "carried from one element to the next), or vmap with out_states."
        )
    lanes = vmap(f)
    full = n // batch_size * batch_size
    parts = []
    if full:
        chunks = jax.tree.map(
            lambda a: a[:full].reshape(full // batch_size, batch_size, *np.shape(a)[1:]), xs
        )
        ys = _for_loop_traced(lanes, None, False, 1, None, None, where, *chunks)
        parts.append(jax.tree.map(lambda y: y.reshape(full, *y.shape[2:]), ys))
    if full < n:
        parts.append(lanes(*jax.tree.map(lambda a: a[full:], xs)))
    if len(parts) == 1:
        return parts[0]
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), *parts)


def map(f: Callable[..., Any], *xs: Any, batch_size: int | None = None) -> Any:
    """Apply a stateful ``f`` to each slice of ``xs`` along their leading axis, in sequence.

    Without ``batch_size`` this is :func:`for_loop`: one element after another, States carried
    from one to the next (like ``jax.lax.map``). With ``batch_size``, ``batch_size`` elements
    at a time go through :func:`vmap`, the remainder in one more vmapped call; ``f`` may then
    draw random numbers but must not write other States (as in brainstate).

    Args:
        f: the function of one slice of each of ``xs``.
        *xs: pytrees whose leaves share a leading axis.
        batch_size: the number of elements vectorised together, or None.

    Returns:
        The outputs of ``f``, stacked along a leading axis.

    Raises:
        TypeError: ``f`` not callable, ``batch_size`` not an int.
        ValueError: ``xs`` with different leading axes, ``batch_size`` below 1, or (with
            ``batch_size``) ``f`` writes a non-random State.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> xs = jnp.arange(6.0).reshape(6, 1)
        >>> facade.transform.map(lambda row: row / (1.0 + jnp.linalg.norm(row)), xs,
        ...                      batch_size=4).shape
        (6, 1)
    """
    where = "map"
    if not callable(f):
        raise TypeError(f"{where}: f must be callable, got {type(f).__name__}")
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise TypeError(f"{where}: batch_size must be an int or None, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size}")
        batch_size = int(batch_size)
    for path, leaf in jax.tree_util.tree_leaves_with_path(xs):
        if np.ndim(leaf) == 0:
            raise ValueError(
                f"{where}: xs{jax.tree_util.keystr(path)} is 0-d (a scalar); every leaf of xs "
                "needs a leading axis to map over"
            )
    run = functools.partial(_map_traced, f, batch_size)
    return sites.call((where, batch_size), run, xs, fns=(f,))


# --- unvmap -------------------------------------------------------------------------------------

_REDUCTIONS: dict[str, Callable[[Any], Any]] = {
    "all": jnp.all,
    "any": jnp.any,
    "max": jnp.max,
    "none": lambda x: x,
}

# One primitive for the four reductions: outside any vmap it is the reduction of its operand;
# under vmap its batching rule applies it to the whole batched operand, so the result is
# unbatched (nested vmaps remove each level in turn).
_unvmap_p = Primitive("facade_unvmap")


def _unvmap_impl(x: Any, *, op: str) -> Any:
    return _REDUCTIONS[op](x)


def _unvmap_abstract(x: Any, *, op: str) -> Any:
    if op == "none":
        return x
    dtype = np.dtype(bool) if op in ("all", "any") else x.dtype
    return jax.core.ShapedArray((), dtype)


def _unvmap_batched(args: Any, dims: Any, *, op: str) -> Any:
    (x,), (dim,) = args, dims
    if dim is not None:
        x = jnp.moveaxis(x, dim, 0)
    return _unvmap_p.bind(x, op=op), None


_unvmap_p.def_impl(_unvmap_impl)
_unvmap_p.def_abstract_eval(_unvmap_abstract)
batching.primitive_batchers[_unvmap_p] = _unvmap_batched
mlir.register_lowering(_unvmap_p, mlir.lower_fun(_unvmap_impl, multiple_results=False))


def unvmap(x: Any, op: str = "any") -> Any:
    """Reduce an array over all its elements and every vmapped axis: an unbatched result.

    Inside :func:`vmap` (or ``jax.vmap``), ``unvmap(x, 'any')`` is True if any element of any
    batch element's ``x`` is; use it to stop a batched ``while_loop`` when every element is
    done (``'all'``), or to take the largest value across the batch (``'max'``). ``'none'``
    returns all batch elements' ``x`` stacked on a leading axis, as an unbatched value.
    Outside any vmap it is ``jnp.all``/``jnp.any``/``jnp.max`` (or the identity).

    Args:
        x: one array (not a pytree).
        op: ``'all'``, ``'any'``, ``'max'`` or ``'none'``.

    Returns:
        A scalar (a boolean for ``'all'``/``'any'``), or for ``'none'`` the stacked ``x``.

    Raises:
        ValueError: an unknown ``op``.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> xs = jnp.array([[1.0, 5.0], [3.0, -2.0]])
        >>> jax.vmap(lambda r: facade.transform.unvmap(r, op="max"))(xs)
        Array([5., 5.], dtype=float32)
        >>> facade.transform.unvmap(xs > 0, op="all")
        Array(False, dtype=bool)
    """
    if op not in _REDUCTIONS:
        raise ValueError(f"unvmap: op must be one of {tuple(_REDUCTIONS)}, got {op!r}")
    return _unvmap_p.bind(jnp.asarray(x), op=op)


__all__ = ["map", "unvmap", "vmap", "vmap_new_states"]
