"""The engine of state-aware batching: a stateful call's States through one ``jax.vmap``.

The public transforms (``_vmap``: ``vmap``, ``vmap2``, ``vmap_new_states``) record their options
in a :class:`Spec`; a mapped call then runs in three steps (:func:`vmap_call`):

1. **Batch size.** The mapped arguments and the declared ``in_states`` give the size of the
   mapped axis; sizes that disagree are reported with the argument or State each came from.
2. **Probe.** The bridge's ``discover`` traces the function abstractly under ``jax.vmap`` (no
   FLOPs), with a value provider that gives each State its per-lane value: a slice of a
   batched state, one key per lane for a random state; any other State is read from the
   enclosing context, unbatched. It records the States the function touches, and its
   ``finish`` callback which of the writes hold batched values.
3. **Map.** The bridge's ``pure`` goes through one ``jax.vmap``: batched states enter at their
   axis, random states as one key per lane, the rest unbatched; written states leave at their
   declared axis, or unbatched. Only then is anything written, in the enclosing context (an
   outer facade trace, or for real), so a failure anywhere leaves every State as it was.

Random states: a ``RandomState`` the function touches (and that is not itself declared batched)
with key ``k`` gives lane ``i`` the key ``lanes[i]`` of ``new, *lanes = split(k, B + 1)``, and
holds ``new`` after the call. The lanes therefore draw what a Python loop would draw after
``state.set_key(lanes[i])``, and two calls draw differently.

Called eagerly, a held ``vmap``/``vmap2`` object keeps its programs (``_core.sites.HeldTransform``);
``vmap_new_states`` traces on every call, because every call must create new States.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.interpreters.batching import BatchTrace

from .._core.bridge import (
    OUTER,
    Discovery,
    Pure,
    Signature,
    discover,
    read_values,
    write_values,
)
from .._filters import to_predicate
from .._state import Frame, State, active_frames, current_trace, value_in
from ..compat._catch import _add_tag
from ..random import RandomState

_NOT = object()  # "not declared": distinct from an axis of None ("declared unbatched")


class BatchAxisError(ValueError):
    """A State's batch axis is inconsistent: written batched where nothing declares its axis,
    declared with two different axes, or declared batched with a value that has no such axis.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> total = facade.State(jnp.zeros(()), name="total")
        >>> def add(x):
        ...     total.value = total.value + x
        >>> try:
        ...     facade.transform.vmap(add)(jnp.arange(3.0))
        ... except facade.transform.BatchAxisError as e:
        ...     print("out_states" in str(e), float(total.value))
        True 0.0
    """


# --- declarations: in_states / out_states and filters --------------------------------------


def _states_of(group: Any, name: str, where: str) -> list[State]:
    if isinstance(group, State):
        return [group]
    if isinstance(group, dict):
        group = list(group.values())
    if not isinstance(group, list | tuple | set | frozenset):
        raise TypeError(
            f"{where}: {name} must be a State, a list, tuple or dict of States, or a dict from "
            f"axes to those; got {type(group).__name__}: {group!r}"
        )
    return [s for g in group for s in _states_of(g, name, where)]


def _is_axis(key: Any) -> bool:
    return key is None or (isinstance(key, int) and not isinstance(key, bool))


def declared_states(spec: Any, name: str, where: str) -> dict[State, int | None]:
    """``in_states``/``out_states`` as ``{state: axis}``: a dict keyed by axes maps each axis to
    States; anything else (a State, a list, a dict of States such as ``model.states()``) means
    axis 0. A State given twice with different axes raises :class:`BatchAxisError`."""
    if spec is None:
        return {}
    if isinstance(spec, dict) and spec and all(_is_axis(k) for k in spec):
        pairs = [(a, s) for a, g in spec.items() for s in _states_of(g, f"{name}[{a}]", where)]
    else:
        pairs = [(0, s) for s in _states_of(spec, name, where)]
    axes: dict[State, int | None] = {}
    for axis, s in pairs:
        if s in axes and axes[s] != axis:
            raise BatchAxisError(
                f"{where}: {s._describe()} is declared in {name} twice, with axes {axes[s]} and "
                f"{axis}; give each State one axis"
            )
        axes[s] = axis
    return axes


def filter_axes(spec: Any, name: str, where: str) -> list[tuple[int | None, Any]]:
    """``state_in_axes``/``state_out_axes`` of vmap2 as ``[(axis, predicate)]``."""
    if spec is None:
        return []
    if not (isinstance(spec, dict) and all(_is_axis(k) for k in spec)):
        spec = {0: spec}
    out = []
    for axis, flt in spec.items():
        try:
            out.append((axis, _predicate(flt)))
        except TypeError as e:
            raise TypeError(f"{where}: {name}[{axis}]: {e}") from None
    return out


def _predicate(flt: Any) -> Any:
    """A filter, or a State or collection of States matched by identity, as a predicate."""
    if isinstance(flt, State) or (
        isinstance(flt, list | tuple | set) and flt and all(isinstance(s, State) for s in flt)
    ):
        chosen = frozenset([flt] if isinstance(flt, State) else flt)
        return lambda path, state: state in chosen
    return to_predicate(flt)


class Spec:
    """A vmapped function and all its options; the per-state rules are its methods."""

    def __init__(
        self,
        fn: Callable[..., Any],
        where: str,
        in_axes: Any,
        out_axes: Any,
        axis_name: Any,
        axis_size: int | None,
        spmd_axis_name: Any,
        state_in: dict[State, int | None],
        state_out: dict[State, int | None],
        in_filters: Sequence[tuple[int | None, Any]] = (),
        out_filters: Sequence[tuple[int | None, Any]] = (),
        policy: str = "raise",
        new_states: bool = False,
        exclude: Any = None,
        state_tag: str | None = None,
        new_filters: Sequence[tuple[int | None, Any]] = (),
        mapping_fn: Callable[..., Any] | None = None,
        mapping_kwargs: dict[str, Any] | None = None,
        static_argnums: Sequence[int] = (),
        static_argnames: Sequence[str] = (),
    ):
        if not callable(fn):
            raise TypeError(f"{where}: the function must be callable, got {type(fn).__name__}")
        _check_axis_size(axis_size, where)
        for s, a in state_in.items():
            if s in state_out and state_out[s] != a:
                raise BatchAxisError(
                    f"{where}: {s._describe()} has axis {a} in in_states but {state_out[s]} in "
                    "out_states; a batched State keeps its axis"
                )
        self.fn, self.where = fn, where
        self.in_axes = tuple(in_axes) if isinstance(in_axes, list) else in_axes
        self.out_axes, self.axis_name, self.axis_size = out_axes, axis_name, axis_size
        self.spmd_axis_name = spmd_axis_name
        self.state_in, self.state_out = state_in, state_out
        self.in_filters, self.out_filters = tuple(in_filters), tuple(out_filters)
        self.policy, self.new_states, self.state_tag = policy, new_states, state_tag
        self.exclude = None if exclude is None else to_predicate(exclude)
        # Created States (``new_states``): the first filter that matches gives the axis; the
        # excluded ones are shared (None); every other one gets axis 0.
        self.new_filters = tuple(new_filters)
        self.new_axes_order = list(dict.fromkeys([None, *(a for a, _ in new_filters), 0]))
        # The mapping primitive of the call (the probe always runs under jax.vmap: the batch
        # dimensions it finds are the same under jax.pmap). None: jax.vmap.
        self.mapping_fn, self.mapping_kwargs = mapping_fn, dict(mapping_kwargs or {})
        self.static_argnums, self.static_argnames = tuple(static_argnums), tuple(static_argnames)

    def new_axis(self, s: State) -> int | None:
        """The axis a State the function creates is written back with (``new_states``)."""
        if self.exclude is not None and self.exclude((), s):
            return None
        for axis, pred in self.new_filters:
            if pred((), s):
                return axis
        return 0

    def in_axis(self, s: State) -> Any:
        """The axis ``s`` is batched on when it enters (None: unbatched; ``_NOT``: undeclared)."""
        if s in self.state_in:
            return self.state_in[s]
        for axis, pred in self.in_filters:
            if pred((), s):
                return axis
        return _NOT

    def out_axis(self, s: State) -> Any:
        """The axis ``s`` is written back with (a batched input keeps its axis)."""
        if s in self.state_out:
            return self.state_out[s]
        for axis, pred in self.out_filters:
            if pred((), s):
                return axis
        return self.in_axis(s)

    def is_random(self, s: State) -> bool:
        """Whether ``s`` gets one key per lane: a random state not itself declared batched."""
        return isinstance(s, RandomState) and self.in_axis(s) is _NOT


def _check_axis_size(axis_size: Any, where: str) -> None:
    if axis_size is None:
        return
    if isinstance(axis_size, bool) or not isinstance(axis_size, int | np.integer):
        raise TypeError(f"{where}: axis_size must be an int or None, got {axis_size!r}")
    if axis_size < 1:
        raise ValueError(f"{where}: axis_size must be a positive int, got {axis_size}")


# --- arguments: in_axes, and the size of the mapped axis -----------------------------------


class _Axes:
    """The axes of the leaves of one subtree (a leaf to ``jax.tree``: not a pytree node)."""

    __slots__ = ("axes",)

    def __init__(self, axes: list[Any]):
        self.axes = axes


def _leaf_axes(prefix: Any, tree: Any) -> list[Any]:
    """The axis of every leaf of ``tree`` from ``prefix``, a prefix tree of ``tree``."""
    boxed = jax.tree.map(
        lambda a, sub: _Axes([a] * len(jax.tree.leaves(sub))),
        prefix,
        tree,
        is_leaf=lambda x: x is None,
    )
    return [a for box in jax.tree.leaves(boxed) for a in box.axes]


def _arg_axes(in_axes: Any, args: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    """One ``in_axes`` entry per positional argument."""
    if not isinstance(in_axes, tuple):
        return (in_axes,) * len(args)
    if len(in_axes) != len(args):
        raise ValueError(
            f"{where}: in_axes has {len(in_axes)} entries but the function was called with "
            f"{len(args)} positional arguments; give one entry per argument, or one int or None "
            "for all of them"
        )
    return in_axes


def _axis_size_of(name: str, leaf: Any, axis: Any, where: str, hint: str = "") -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"{where}: the axis of {name} must be an int or None, got {axis!r}")
    shape = np.shape(leaf)
    if not -len(shape) <= axis < len(shape):
        raise ValueError(
            f"{where}: {name} has shape {tuple(shape)}, which has no axis {axis} to map over{hint}"
        )
    return int(shape[axis])


def _arg_sizes(
    per_arg: tuple[Any, ...], args: tuple[Any, ...], kwargs: dict[str, Any], where: str
) -> list[tuple[str, int]]:
    """``(name, size)`` of every mapped leaf of the arguments; keyword arguments on axis 0."""
    sizes = []
    for i, (prefix, arg) in enumerate(zip(per_arg, args, strict=True)):
        try:
            axes = _leaf_axes(prefix, arg)
        except ValueError as e:
            raise ValueError(
                f"{where}: in_axes[{i}] = {prefix!r} does not match the structure of argument "
                f"{i} ({jax.tree.structure(arg)}): {e}"
            ) from None
        for (path, leaf), axis in zip(jax.tree_util.tree_leaves_with_path(arg), axes, strict=True):
            if axis is not None:
                name = f"args[{i}]{jax.tree_util.keystr(path)}"
                hint = "; use in_axes=None for an argument that is not mapped"
                sizes.append((name, _axis_size_of(name, leaf, axis, where, hint)))
    for path, leaf in jax.tree_util.tree_leaves_with_path(kwargs):
        name = f"kwargs{jax.tree_util.keystr(path)}"
        hint = "; keyword arguments are mapped over axis 0, as jax.vmap maps them"
        sizes.append((name, _axis_size_of(name, leaf, 0, where, hint)))
    return sizes


def _state_sizes(s: State, value: Any, axis: int, where: str) -> list[tuple[str, int]]:
    name = s._describe()
    return [
        (name, _axis_size_of(f"{name} (declared batched on axis {axis})", leaf, axis, where))
        for leaf in jax.tree.leaves(value)
    ]


def _batch_size(sources: list[tuple[str, int]], axis_size: int | None, where: str) -> int:
    if axis_size is not None:
        sources = [("axis_size", int(axis_size)), *sources]
    distinct = {n for _, n in sources}
    if len(distinct) > 1:
        detail = ", ".join(f"{name}: {n}" for name, n in sources)
        (first, n0), (other, n1) = sources[0], next(x for x in sources if x[1] != sources[0][1])
        raise ValueError(
            f"{where}: the mapped axes have different sizes ({detail}): {first} ({n0}) "
            f"conflicts with the mapped size {n1} of {other}"
        )
    if not distinct:
        raise ValueError(
            f"{where}: nothing to map over: no argument is mapped (in_axes) and no State is "
            "declared batched; give axis_size"
        )
    return distinct.pop()


# --- the probe: which States the call touches, and which writes are batched ----------------


def is_batched(value: Any, trace: Any) -> bool:
    """Whether a leaf of ``value`` is batched over the mapped axis of the vmap ``trace``."""
    return batch_dim(value, trace) is not None


def batch_dim(value: Any, trace: Any) -> int | None:
    """The axis along which ``value`` is batched in the vmap ``trace`` (its first batched
    leaf's), or None when no leaf is batched."""
    if not isinstance(trace, BatchTrace):
        return None
    for x in jax.tree.leaves(value):
        dim = trace.to_batch_info(x)[1]
        if dim is not None:
            return int(dim)
    return None


def _lane_maker(spec: Spec, n: int) -> Callable[[State, Any, Any], Any]:
    def make(s: State, value: Any, lane: Any) -> Any:
        axis = spec.in_axis(s)
        if axis is not _NOT and axis is not None:
            sizes = _state_sizes(s, value, axis, spec.where)
            _batch_size([("the mapped axis", n), *sizes], None, spec.where)
            return jax.tree.map(lambda v: jnp.take(v, lane, axis=axis), value)
        if spec.is_random(s):
            return jnp.take(jax.random.split(value, n + 1)[1:], lane, axis=0)
        return OUTER

    return make


def _probe(
    spec: Spec,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    in_axes: Any,
    n: int,
) -> tuple[Discovery, dict[State, int]]:
    """The States the call touches and, for each of its writes that is batched, the axis it is
    batched on, found by the bridge's probe run under ``jax.vmap``: each State reads its
    per-lane value there."""
    make = _lane_maker(spec, n)
    batched: dict[State, int] = {}

    def under(probe: Callable[..., Any]) -> Callable[..., Any]:
        def lane_probe(lane: Any, a: tuple[Any, ...], kw: dict[str, Any]) -> None:
            probe(a, kw, lambda s, v: make(s, v, lane))

        mapped = _jax_vmap(spec, lane_probe, (0, in_axes, 0), None, n)
        return lambda a, kw: mapped(jnp.arange(n, dtype=jnp.int32), a, kw)

    def finish(f: Frame, out: Any) -> None:
        for s in f.writes:
            dim = None if s in f.created else batch_dim(dict.get(f.values, s), f.trace)
            if dim is not None:
                batched[s] = dim

    with _in_probe(spec.new_states):
        d, _ = discover(fn, args, kwargs, under=under, finish=finish)
    return d, batched


_probe_depth = threading.local()


@contextlib.contextmanager
def _in_probe(active: bool) -> Iterator[None]:
    """Mark the probe of a function that creates States (see ``in_new_state_probe``)."""
    if not active:
        yield
        return
    _probe_depth.n = getattr(_probe_depth, "n", 0) + 1
    try:
        yield
    finally:
        _probe_depth.n -= 1


def in_new_state_probe() -> bool:
    """Whether the caller runs inside the probe of ``vmap_new_states``/``vmap2_new_states``/
    ``pmap2_new_states``: the abstract pass that finds the States the function touches before
    the mapped pass. States created there are thrown away; code with a one-shot side effect
    bound to the States it creates (caching a compiled graph over them, say) should skip it
    while this returns True.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> seen = []
        >>> def build(x):
        ...     seen.append(facade.transform.in_new_state_probe())
        ...     return facade.ShortTermState(x).value
        >>> _ = facade.transform.vmap_new_states(build)(jnp.arange(3.0))
        >>> seen, facade.transform.in_new_state_probe()
        ([True, False], False)
    """
    return getattr(_probe_depth, "n", 0) > 0


def _mapped(spec: Spec, fn: Callable[..., Any], in_axes: Any, out_axes: Any, n: int) -> Any:
    """``fn`` under the call's mapping primitive (``jax.vmap`` unless ``mapping_fn`` says)."""
    if spec.mapping_fn is None:
        return _jax_vmap(spec, fn, in_axes, out_axes, n)
    return spec.mapping_fn(
        fn,
        in_axes=in_axes,
        out_axes=out_axes,
        axis_name=spec.axis_name,
        axis_size=n,
        **spec.mapping_kwargs,
    )


def _jax_vmap(spec: Spec, fn: Callable[..., Any], in_axes: Any, out_axes: Any, n: int) -> Any:
    # ``mapping_kwargs`` of a StatefulMapping over jax.vmap go to jax.vmap (probe included).
    options = {"spmd_axis_name": spec.spmd_axis_name}
    if spec.mapping_fn is None:
        options.update(spec.mapping_kwargs)
    return jax.vmap(
        fn, in_axes=in_axes, out_axes=out_axes, axis_name=spec.axis_name, axis_size=n, **options
    )


# --- the plan: each State's role in the mapped call -----------------------------------------


def _undeclared_error(spec: Spec, s: State) -> BatchAxisError:
    declare = "out_states" if spec.where in ("vmap", "vmap_new_states") else "state_out_axes"
    return BatchAxisError(
        f"{spec.where}: {s._describe()} is written with a value batched over the mapped axis, "
        f"but {declare} does not give it a batch axis, so its new value has nowhere to go. "
        f"Declare it in {declare} (and in the in_states too if each element should start from "
        "its own value), or write it a value that does not depend on the mapped inputs. The "
        "State keeps its value."
    )


# An undeclared read-modify-write State of the 'auto' policy whose size did not fit the batch
# warns once (it gains a batch axis, rarely what was meant).
_WARNED: weakref.WeakSet[State] = weakref.WeakSet()


def _axis_length(value: Any, axis: int) -> int | None:
    leaves = jax.tree.leaves(value)
    if not leaves:
        return None
    shape = np.shape(leaves[0])
    return int(shape[axis]) if -len(shape) <= axis < len(shape) else None


class _Plan:
    """Where each State of a discovery goes in the mapped call: its input axis, its output."""

    def __init__(self, spec: Spec, d: Discovery, batched: dict[State, int], n: int):
        self.discovery = d
        self.random = [s for s in d.states if spec.is_random(s)]
        randoms = set(self.random)
        in_axes = {
            s: 0 if s in randoms else (None if spec.in_axis(s) is _NOT else spec.in_axis(s))
            for s in d.states
        }
        self.mapped: list[State] = []  # written back with a batch axis ...
        self.mapped_axes: list[int] = []  # ... this one
        self.plain: list[State] = []  # written back unbatched
        for s in d.writes:
            axis = spec.out_axis(s)
            if axis is not _NOT and axis is not None:
                self.mapped.append(s)
                self.mapped_axes.append(axis)
            elif s in randoms:
                pass  # the lanes' keys are dropped; the state moves on to a fresh key
            elif s in batched:
                if axis is None or spec.policy == "raise":
                    raise _undeclared_error(spec, s)
                dim = batched[s]
                if spec.policy == "warn":
                    warnings.warn(
                        f"{spec.where}: {s._describe()} is written batched without a declared "
                        f"axis; it is written back with a batch axis {dim}",
                        UserWarning,
                        stacklevel=4,
                    )
                elif spec.policy == "auto" and s in d.reads:
                    # A read-modify-write State: when its value already has the batch size on
                    # that axis, each element reads and writes its own slice; otherwise it
                    # gains the batch axis (decided from the value at every trace, so a later
                    # call that finds the batch axis in place keeps it).
                    if _axis_length(value_in(s, active_frames()), dim) == n:
                        in_axes[s] = dim
                    elif s not in _WARNED:
                        _WARNED.add(s)
                        warnings.warn(
                            f"{spec.where}: {s._describe()} is read and written with a batched "
                            f"value but no state axes declare it, and its size on axis {dim} "
                            f"is not the mapped size {n}; it is written back with a new batch "
                            f"axis {dim}. Declare it in state_in_axes/state_out_axes if each "
                            "element should read and write its own slice.",
                            UserWarning,
                            stacklevel=4,
                        )
                self.mapped.append(s)
                self.mapped_axes.append(dim)
            else:
                self.plain.append(s)
        self.in_axes = [in_axes[s] for s in d.states]
        self.advanced = [s for s in self.random if s not in set(self.mapped)]


# --- the mapped call --------------------------------------------------------------------------


def vmap_traced(spec: Spec, *args: Any, **kwargs: Any) -> Any:
    return vmap_call(spec, args, kwargs, [])


def _close_statics(
    spec: Spec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Any]:
    """The function with its static arguments closed over (neither traced nor mapped), the
    remaining arguments, and ``in_axes`` without the static positions' entries."""
    where, n = spec.where, len(args)
    nums = set()
    for i in spec.static_argnums:
        if not -n <= i < n:
            raise ValueError(
                f"{where}: static_argnums contains {i}, but the function was called with {n} "
                "positional arguments"
            )
        nums.add(i % n)
    fixed = {i: args[i] for i in nums}
    fixed_kw = {k: kwargs[k] for k in spec.static_argnames if k in kwargs}

    def fn(*dyn: Any, **kw: Any) -> Any:
        rest = iter(dyn)
        full = [fixed[i] if i in fixed else next(rest) for i in range(n)]
        return spec.fn(*full, **kw, **fixed_kw)

    in_axes = spec.in_axes
    if isinstance(in_axes, tuple) and len(in_axes) == n:
        in_axes = tuple(a for i, a in enumerate(in_axes) if i not in nums)
    dyn_args = tuple(a for i, a in enumerate(args) if i not in nums)
    dyn_kwargs = {k: v for k, v in kwargs.items() if k not in fixed_kw}
    return fn, dyn_args, dyn_kwargs, in_axes


def vmap_call(
    spec: Spec, args: tuple[Any, ...], kwargs: dict[str, Any], created: list[State]
) -> Any:
    """The mapped call; ``created`` receives the States the function creates (new_states)."""
    where = spec.where
    fn, spec_in_axes = spec.fn, spec.in_axes
    if spec.static_argnums or spec.static_argnames:
        fn, args, kwargs, spec_in_axes = _close_statics(spec, args, kwargs)
    sig = Signature(args, kwargs)
    args_dyn, kw_dyn = sig.split(args, kwargs)
    per_arg = _arg_axes(spec_in_axes, args_dyn, where)
    sources = _arg_sizes(per_arg, args_dyn, kw_dyn, where)
    for s, axis in spec.state_in.items():
        if axis is not None:
            sources += _state_sizes(s, value_in(s, active_frames()), axis, where)
    n = _batch_size(sources, spec.axis_size, where)
    in_axes = spec_in_axes if isinstance(spec_in_axes, tuple) else per_arg
    d, batched = _probe(spec, fn, args, kwargs, in_axes, n)
    plan = _Plan(spec, d, batched, n)

    # Inputs: every state's current value (read through the enclosing frames), one key per
    # lane for the random states.
    values = read_values(d)
    new_keys = []
    for s in plan.random:
        i = d.states.index(s)
        keys = jax.random.split(s.value, n + 1)
        values[i] = keys[1:]
        new_keys.append(keys[0])

    body = _capturing(spec, fn, created) if spec.new_states else fn
    pure = Pure(body, d, sig)
    index = {s: i for i, s in enumerate(d.writes)}
    order = spec.new_axes_order

    def lane(values: list[Any], a: tuple[Any, ...], kw: dict[str, Any], *_: Any) -> Any:
        out, written = pure(values, *a, **kw)
        trace = current_trace()
        plain = [written[index[s]] for s in plan.plain]
        for s, v in zip(plan.plain, plain, strict=True):
            if is_batched(v, trace):  # the probe saw it unbatched: a guard, never expected
                raise _undeclared_error(spec, s)
        new: Any = tuple([] for _ in order)
        if spec.new_states:
            out, new = out
            _check_shared(spec, new[0], created, trace)
        return out, [written[index[s]] for s in plan.mapped], plain, new

    out_axes = (spec.out_axes, plan.mapped_axes, None, tuple(order))
    inputs: tuple[Any, ...] = (values, args_dyn, kw_dyn)
    lane_axes: tuple[Any, ...] = (plan.in_axes, in_axes, 0)
    if spec.mapping_fn is not None:
        # jax.pmap needs a mapped input even when nothing else is mapped: the lanes' indices.
        inputs, lane_axes = (*inputs, jnp.arange(n)), (*lane_axes, 0)
    mapped = _mapped(spec, lane, lane_axes, out_axes, n)
    out, mapped_values, plain_values, new_values = mapped(*inputs)
    pure.check_traces(where)
    write_values(plan.mapped, mapped_values)
    write_values(plan.plain, plain_values)
    write_values(plan.advanced, new_keys)
    if spec.new_states:
        for axis, group in zip(order, new_values, strict=True):
            write_values([s for s in created if spec.new_axis(s) == axis], group)
    return out


def _capturing(spec: Spec, fn: Callable[..., Any], created: list[State]) -> Callable[..., Any]:
    """``fn`` also returning the values of the States it creates, grouped by their axes in
    ``spec.new_axes_order`` (new_states)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        f = active_frames()[-1]  # the frame of the pure function: the States' values live there
        new = [s for s in f.created if dict.__contains__(f.values, s)]
        created[:] = new
        if spec.state_tag is not None:
            for s in new:  # added to the tags an enclosing ``catch_new_states`` gave
                _add_tag(s, spec.state_tag)
        groups = tuple(
            [f.values[s] for s in new if spec.new_axis(s) == axis] for axis in spec.new_axes_order
        )
        return out, groups

    return run


def _check_shared(spec: Spec, values: list[Any], created: list[State], trace: Any) -> None:
    """The created States shared by every element (axis None) must not depend on the lanes."""
    shared = [s for s in created if spec.new_axis(s) is None]
    for s, v in zip(shared, values, strict=True):
        if is_batched(v, trace):
            why = "excluded by state_to_exclude" if spec.exclude is not None else "given axis None"
            raise BatchAxisError(
                f"{spec.where}: {s._describe()} is {why}, so it is shared by every element, "
                "but its value depends on the mapped inputs"
            )


__all__ = ["BatchAxisError", "in_new_state_probe"]
