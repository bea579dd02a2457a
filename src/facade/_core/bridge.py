"""The bridge: a stateful call as a pure function of explicit state values.

This is the one place that knows how States become values. For a stateful ``fn`` and one call
signature:

1. **Discovery** (:class:`Discovery`): the states the call touches, in order of first use
   (some given states first, e.g. the grad_states), which of them it reads (observes the value
   they had on entry) and which it writes. A trace records these in its frame (``_state``).
2. **The pure function** (:class:`Pure`): ``pure(state_values, *args, **kwargs) -> (out,
   written_values)``, where ``state_values`` holds one value per discovered state and
   ``written_values`` one per written state. Inside, a frame maps each state to its value, so
   every read and write goes through it; nothing touches a State's own slot. Each trace of
   ``pure`` also records what it really touched, so a discovery that was a guess is checked.

A state-aware transform is then a small function of ``pure``: it maps it through one JAX
transform (``jax.grad``, ``lax.scan``, ``jax.vmap``, ...). Called inside another facade trace,
it reads the states' current values through ``State.value`` (:func:`read_values`), so the
outer trace records them, and writes the results back through it (:func:`write_values`); its
writes then land in the outer frame. Called eagerly, the same function is compiled once per
call signature by ``_lowering.Lowering``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._state import (
    ARRAY_TYPES,
    Frame,
    State,
    active_frames,
    current_trace,
    frame,
    is_abstract,
    late_input,
    peek,
    raw_nested_reads,
    value_in,
)
from . import keys as _sites
from .keys import DeadState, Signature

# Leaves a trace takes as inputs: arrays, numbers, and abstract values (for abstract discovery).
_DYNAMIC_TYPES = (*ARRAY_TYPES, jax.ShapeDtypeStruct)


class Discovery:
    """What one call touches: its states in a fixed order, which it reads, which it writes.

    ``states``: every state read or written (given ``first`` states first, then by first use);
    ``writes``: the written ones, in order of first write; ``reads``: those whose value on entry
    the call observes. States the call creates are local to it and appear nowhere.
    """

    __slots__ = ("states", "writes", "reads", "created", "late")

    def __init__(
        self, states: Iterable[State], writes: Iterable[State], reads: Iterable[State] = ()
    ):
        self.states = tuple(states)
        self.writes = tuple(writes)
        self.reads = frozenset(reads)
        # Weak references to the States the trace created holding a tracer: if one is still
        # alive once the trace is over, the function stored it somewhere (see ``escaped``).
        self.created: tuple[Callable[[], Any], ...] = ()
        # A trace's own discovery, when its frame took late inputs: the States it made inputs
        # and the ones it wrote besides those expected (see ``Pure``).
        self.late: tuple[tuple[State, ...], tuple[State, ...]] | None = None

    @classmethod
    def of(cls, f: Frame, first: Sequence[State] = ()) -> Discovery:
        """The discovery a finished trace recorded in its frame ``f``."""
        created = f.created
        given = set(first)
        rest = [s for s in f.touched if s not in given and s not in created]
        d = cls(
            (*first, *rest),
            [s for s in f.writes if s not in created],
            [s for s in f.reads if s not in created],
        )
        d.created = tuple(weakref.ref(s) for s in created if is_abstract(s._value))
        return d

    def escaped(self) -> list[State]:
        """The States the trace created (holding a tracer) that outlived it."""
        return [s for s in (r() for r in self.created) if s is not None]

    def with_writes(self, states: Sequence[State]) -> Discovery:
        """This discovery with ``states`` (already among its states) written as well."""
        if not states:
            return self
        return Discovery(self.states, dict.fromkeys((*self.writes, *states)), self.reads)

    @classmethod
    def union(cls, parts: Sequence[Discovery]) -> Discovery:
        """The states any of ``parts`` touches, in order of first appearance."""
        states = dict.fromkeys(s for d in parts for s in d.states)
        writes = dict.fromkeys(s for d in parts for s in d.writes)
        return cls(states, writes, {s for d in parts for s in d.reads})

    def covers(self, other: Discovery) -> bool:
        """Whether a program built on this discovery is right for a trace that found ``other``."""
        return set(other.states) <= set(self.states) and set(other.writes) <= set(self.writes)

    def __repr__(self) -> str:
        names = [s.name or type(s).__name__ for s in self.states]
        return f"Discovery(states={names}, writes={len(self.writes)}, reads={len(self.reads)})"


def _late_writes(f: Frame, d: Discovery | WeakDiscovery) -> tuple[tuple[State, ...], list[Any]]:
    """The States a trace taking late inputs wrote that ``d`` does not list as written, and
    their values: outputs of its program after those of ``d.writes``. A written State is an
    input too (every discovered State is), given one if it has none yet."""
    listed, inputs = set(d.writes), set(d.states)
    states, values = [], []
    for s in f.writes:
        if s in listed or s in f.created:
            continue
        value = f.values.get(s, _UNWRITTEN)  # written in an inner frame only: unchanged here
        if s not in inputs and s not in f.late:  # type: ignore[operator]
            if late_input(s, f) is None:
                continue  # cannot be an input: not covered, traced again
        states.append(s)
        values.append(f.values[s] if value is _UNWRITTEN else value)
    return tuple(states), values


_UNWRITTEN = object()


class WeakDiscovery:
    """A discovery that holds its states weakly (for programs kept in caches)."""

    __slots__ = ("_states", "_writes")

    def __init__(self, d: Discovery):
        self._states = tuple(weakref.ref(s) for s in d.states)
        self._writes = tuple(weakref.ref(s) for s in d.writes)

    @property
    def states(self) -> tuple[State, ...]:
        return alive(self._states)

    @property
    def writes(self) -> tuple[State, ...]:
        return alive(self._writes)


def alive(refs: Sequence[Callable[[], Any]]) -> tuple[Any, ...]:
    states = tuple(r() for r in refs)
    if any(s is None for s in states):
        raise DeadState
    return states


def fresh_jax_traces() -> None:
    """Make JAX trace raw control-flow bodies again if one was seen reading a State.

    ``jax.lax.scan`` and friends cache a traced body by function identity, together with the
    values it closed over. A body that reads a State closes over the value the State had in
    that trace (a tracer of it); reused by a later trace, it would read a dead tracer, or the
    read would go unrecorded. So once such a read has been seen, each new facade trace starts
    with that cache empty. It costs tracing time only, and only for code that does this.
    """
    if raw_nested_reads[0]:
        from jax._src.interpreters import partial_eval

        partial_eval.trace_to_jaxpr.cache_clear()


class Pure:
    """``fn`` as ``pure(state_values, *args, **kwargs) -> (out, written_values)``.

    Args:
        fn: the stateful function (called with the rebuilt arguments).
        discovery: the states the values stand for, and which are written.
        sig: when given, ``args``/``kwargs`` are its dynamic parts and are rebuilt first.
        first: returns the states a trace's own discovery puts first (see :class:`Discovery`);
            a function, so that a cached program need not hold them.

    Every trace leaves its own discovery in ``traced``, keyed by the tracing thread (so two
    threads tracing new shapes at once never read each other's), for the caller to check.
    """

    __slots__ = ("fn", "discovery", "sig", "first", "traced", "late_inputs", "root", "__weakref__")

    def __init__(
        self,
        fn: Callable[..., Any],
        discovery: Discovery | WeakDiscovery,
        sig: Signature | None = None,
        first: Callable[[], Sequence[State]] = tuple,
        late_inputs: bool = False,
    ):
        self.fn, self.discovery, self.sig, self.first = fn, discovery, sig, first
        self.traced: dict[int, list[Discovery]] = {}
        # Whether a State the discovery left out may become an input of the program ``jax.jit``
        # traces (see ``_state.late_input``): the program is then traced through ``rooted``,
        # which keeps its jit trace in ``root``. Its trace's discovery says which (``late``).
        self.late_inputs = late_inputs
        self.root: Any = None

    def rooted(self, program: Callable[..., Any]) -> Callable[..., Any]:
        """``program``, keeping the trace ``jax.jit`` traces it in as the one late inputs are
        added to (``pure`` may run under transforms inside it: ``jax.grad``, ``jax.vmap``)."""

        @functools.wraps(program)
        def rooted(*args: Any, **kwargs: Any) -> Any:
            self.root = current_trace()
            try:
                return program(*args, **kwargs)
            finally:
                self.root = None

        return rooted

    def __call__(self, state_values: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        fresh_jax_traces()
        if self.sig is not None:
            args, kwargs = self.sig.rebuild(args, kwargs)
        d = self.discovery
        with frame(dict(zip(d.states, state_values, strict=True))) as f:
            if self.root is not None:
                f.takes_late_inputs(self.root)
            late = None
            try:
                out = self.fn(*args, **kwargs)
                written = [f.values[s] for s in d.writes]
                if f.late is not None:
                    late_writes, late_written = _late_writes(f, d)
                    written += late_written
                    if f.late or late_writes:
                        late = (tuple(f.late), late_writes)
            finally:
                found = Discovery.of(f, self.first())
                found.late = late
                f.values = {}  # the trace's values must not outlive it
        self.traced.setdefault(threading.get_ident(), []).append(found)
        return out, written

    def values_of(self, state_values: Sequence[Any], states: Sequence[State]) -> list[Any]:
        """The values standing for ``states`` among ``state_values`` (one per discovered
        State), found by identity: no transform relies on where a State sits."""
        at = {s: i for i, s in enumerate(self.discovery.states)}
        return [state_values[at[s]] for s in states]

    def replaced(
        self, state_values: Sequence[Any], states: Sequence[State], new: Sequence[Any]
    ) -> list[Any]:
        """``state_values`` with the values of ``states`` (found by identity) replaced."""
        at = {s: i for i, s in enumerate(self.discovery.states)}
        out = list(state_values)
        for s, v in zip(states, new, strict=True):
            out[at[s]] = v
        return out

    def take_trace(self) -> Discovery | None:
        """What this thread's traces of ``pure`` touched since the last call (every trace:
        JAX may trace a body more than once), or None if it was not traced."""
        if not self.traced:
            return None
        found = self.traced.pop(threading.get_ident(), None)
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        union = Discovery.union(found)
        union.created = tuple(r for d in found for r in d.created)
        return union

    def check_traces(self, where: str) -> None:
        """The one post-trace check of a transform's body: raise if its traces touched States
        its discovery did not cover (their values would be stale or lost)."""
        found = self.take_trace()
        d = self.discovery
        if found is not None and not Discovery(d.states, d.writes).covers(found):
            extra = [s for s in found.states if s not in set(d.states)]
            extra += [s for s in found.writes if s not in set(d.writes)]
            raise RuntimeError(
                f"{where}: the function touched {state_names(dict.fromkeys(extra))} when traced "
                "but not when its States were discovered; the States a function touches must "
                "depend only on the shapes of its arguments"
            )


_shared = threading.local()


@contextlib.contextmanager
def shared_discoveries() -> Iterator[None]:
    """Within the block, a body discovered again with the same arguments' shapes reuses its
    first discovery. A lowering traces its program twice when its first guess was wrong; the
    loops in it would otherwise discover their bodies twice as well. Nothing can change the
    States in between: both traces run in one call, on this thread."""
    if getattr(_shared, "table", None) is not None:
        yield
        return
    _shared.table = {}
    try:
        yield
    finally:
        _shared.table = None


def _avals(tree: Any) -> tuple[Any, ...]:
    return tuple((np.shape(x), str(jnp.result_type(x))) for x in jax.tree.leaves(tree))


# A value provider's answer for a State it leaves to the enclosing context.
OUTER = object()

# What a State reads in a probe's frame: ``values(state, value_in_enclosing_context)`` gives
# its value there (a per-lane slice, a per-shard placeholder, zeros of an abstract value), or
# ``OUTER`` to read it from the enclosing context.
Values = Callable[[State, Any], Any]


class ProvidedValues(dict):  # type: ignore[type-arg]
    """A probe frame's values: a State's value comes from ``values`` the first time the State
    is looked up (``State.value`` asks each frame ``state in frame.values``), or is left to the
    enclosing context (``outer``) when ``values`` answers ``OUTER``."""

    __slots__ = ("outer", "provide")

    def __init__(self, outer: Sequence[Frame], provide: Values):
        super().__init__()
        self.outer, self.provide = outer, provide

    def __contains__(self, s: object) -> bool:
        if dict.__contains__(self, s):
            return True
        if not isinstance(s, State):
            return False
        value = self.provide(s, value_in(s, self.outer))
        if value is OUTER:
            return False
        self[s] = value
        return True


def discover(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    first: Sequence[State] = (),
    static_argnums: frozenset[int] = frozenset(),
    *,
    values: Values | None = None,
    under: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
    finish: Callable[[Frame, Any], None] | None = None,
) -> tuple[Discovery, Any]:
    """Trace ``fn(*args, **kwargs)`` abstractly (no FLOPs); return its discovery and output.

    The one probe of the facade: every transform learns the States a call touches here.
    Arguments may be arrays or ``jax.ShapeDtypeStruct``s. Nothing is written to any State.

    Args:
        fn, args, kwargs: the call; ``static_argnums`` are positions kept static.
        first: States put first in the discovery (see :class:`Discovery`).
        values: what a State reads in the probe's frame (see ``Values``); by default every
            State reads its value in the enclosing context.
        under: runs the probe inside a wrapping transform (``jax.vmap``, ``jax.shard_map``):
            ``under(probe)`` is the function ``jax.eval_shape`` runs on the dynamic arguments;
            it calls ``probe(args, kwargs, values)`` inside the transform, with a value
            provider made there (one that slices by the lane index, say), and returns what
            ``discover`` returns as the output.
        finish: called as ``finish(frame, out)`` when ``fn`` returned, before the frame is
            dropped: the values it holds are the call's (tracers of the wrapping transform),
            e.g. to see which writes are batched.

    Returns:
        The discovery, and (without ``under``) the output as ``jax.ShapeDtypeStruct`` leaves,
        its non-array leaves as None.
    """
    sig = Signature(args, kwargs, static_argnums)
    args_dyn, kw_dyn = sig.split(args, kwargs)
    table = getattr(_shared, "table", None)
    memo_key = None
    # The memo covers the plain probe only: one with a value provider, a wrapping transform or
    # a callback depends on more than the function and the arguments' shapes.
    plain = values is None and under is None and finish is None
    if plain and table is not None and sig.key is not None:
        memo_key = (
            _sites.function_key(fn, shapes=True),
            sig.key,
            _avals((args_dyn, kw_dyn)),
            tuple(first),
        )
        try:
            hit = table.get(memo_key)
        except TypeError:  # an unhashable part: discover afresh
            memo_key, hit = None, None
        if hit is not None:
            return hit  # type: ignore[no-any-return]
    found: list[Discovery] = []
    outer = tuple(active_frames())

    def probe(a: tuple[Any, ...], kw: dict[str, Any], provide: Values | None = values) -> Any:
        fresh_jax_traces()
        real_args, real_kwargs = sig.rebuild(a, kw)
        with frame(None if provide is None else ProvidedValues(outer, provide)) as f:
            try:
                out = fn(*real_args, **real_kwargs)
                if finish is not None:
                    finish(f, out)
            finally:
                found.append(Discovery.of(f, first))
                f.values = {}
        return _arrays_only(out)

    out_shapes = jax.eval_shape(probe if under is None else under(probe), args_dyn, kw_dyn)
    if memo_key is not None and table is not None:
        table[memo_key] = (found[0], out_shapes)
    return found[0], out_shapes


def _arrays_only(tree: Any) -> Any:
    """``tree`` with its non-array leaves (which ``eval_shape`` cannot return) as None."""
    return jax.tree.map(lambda x: x if isinstance(x, ARRAY_TYPES) else None, tree)


def read_values(d: Discovery) -> list[Any]:
    """The current values of ``d.states`` inside an outer trace, recording the reads there.

    A state the call only writes is looked at without recording a read: its entry value does
    not matter to the call.
    """
    reads = d.reads
    return [s.value if s in reads else peek(s) for s in d.states]


def read_all(states: Sequence[State]) -> list[Any]:
    """The current values of ``states``, each recorded as read in the enclosing frames."""
    return [s.value for s in states]


def write_values(states: Sequence[State], values: Sequence[Any]) -> None:
    """Write ``values`` to ``states`` in the current context (an outer frame, or for real)."""
    for s, v in zip(states, values, strict=True):
        s.value = v


class Carry:
    """The states of a discovery split for a loop or a branch: carried ones and fixed ones.

    The carried states are the written ones: a loop passes their values from one iteration to
    the next, branches return them. The fixed ones are only read: inputs closed over.
    """

    __slots__ = ("discovery", "fixed", "carried", "_where")

    def __init__(self, d: Discovery):
        self.discovery = d
        written = set(d.writes)
        self.carried = d.writes
        self.fixed = tuple(s for s in d.states if s not in written)
        index = {s: i for i, s in enumerate(self.fixed)}
        windex = {s: i for i, s in enumerate(self.carried)}
        self._where = [(s in written, windex[s] if s in written else index[s]) for s in d.states]

    def merge(self, fixed: Sequence[Any], carried: Sequence[Any]) -> list[Any]:
        """Values in the discovery's order, from the fixed and the carried ones."""
        return [carried[i] if w else fixed[i] for w, i in self._where]

    def read(self) -> tuple[list[Any], list[Any]]:
        """The current values of the fixed and the carried states, recorded as reads."""
        return read_all(self.fixed), read_all(self.carried)


def _aval(x: Any) -> tuple[Any, Any]:
    return np.shape(x), np.dtype(jnp.result_type(x))


def same_avals(old: Any, new: Any) -> bool:
    """Whether two pytrees have the same structure and leaf shapes and dtypes."""
    same_structure: bool = jax.tree.structure(old) == jax.tree.structure(new)  # type: ignore[operator]
    return same_structure and all(
        _aval(a) == _aval(b)
        for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new), strict=True)
    )


def check_carried(
    states: Sequence[State], before: Sequence[Any], after: Sequence[Any], where: str
) -> None:
    """Raise TypeError naming the State whose written value changed structure, shape or dtype."""
    for s, old, new in zip(states, before, after, strict=True):
        if not same_avals(old, new):
            raise TypeError(
                f"{where}: {s._describe()} is written with {describe_avals(new)} but held "
                f"{describe_avals(old)} on entry; {where} carries each State with a fixed "
                "structure, shape and dtype"
            )


def describe_avals(tree: Any) -> str:
    """``float32[3]``-style text for the leaves of ``tree``, for error messages."""
    return str(jax.tree.map(lambda x: f"{np.dtype(jnp.result_type(x))}{list(np.shape(x))}", tree))


def state_names(states: Iterable[State]) -> str:
    return ", ".join(s._describe() for s in states)
