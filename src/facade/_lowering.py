"""Lowering a stateful call to one compiled pure program per call signature.

For a stateful ``fn`` and one call signature (tree structure of the arguments and the values
of their non-array leaves):

1. guess which states the call reads and writes (the grad_states, or the last signature's);
   the first trace checks the guess and, when wrong, is itself the discovery to rebuild from;
2. build ``program(state_values, kwargs, *args) -> (result, written_values)``, in which
   states take their values from a frame (see ``_state``) instead of their own slot;
3. compile it with ``jax.jit`` and keep it in a cache entry for that signature;
4. per call: read the states' values, call the compiled program, assign the written values.

A transform plugs in through ``body(pure, grad_values, kwargs, args) -> (result, written)``,
where ``pure(grad_values, kwargs, *args) -> (out, written)`` is ``fn`` with the differentiated
states given explicitly (``written``: values of the states ``fn`` wrote, collected in
``pure.record`` at trace time). Nothing here knows about differentiation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._state import ARRAY_TYPES, Frame, State, active_frames, frame

Body = Callable[..., tuple[Any, Sequence[Any]]]


# Leaves that are dynamic and hold nothing static: a call made only of these needs no signature.
_PLAIN_TYPES = frozenset({type(jnp.zeros(())), np.ndarray, float, int, complex, bool})


class _Signature:
    """The parts of a call that a trace depends on beyond array shapes and dtypes.

    ``static_args``: the arguments marked static (whole); ``static_leaves``: the leaves JAX
    cannot trace (strings, functions, objects), by position among the other arguments' leaves.
    """

    __slots__ = ("treedef", "static_args", "static_leaves", "key")
    treedef: Any

    def __init__(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], static_argnums: frozenset[int]
    ):
        self.static_args = tuple((i, args[i]) for i in sorted(static_argnums) if i < len(args))
        if self.static_args:
            args = tuple(None if i in static_argnums else a for i, a in enumerate(args))
        leaves, self.treedef = jax.tree.flatten((args, kwargs))
        self.static_leaves = tuple(
            (n, x) for n, x in enumerate(leaves) if not isinstance(x, ARRAY_TYPES)
        )
        try:
            self.key: Any = (self.treedef, self.static_args, self.static_leaves)
            hash(self.key)
        except TypeError:  # an unhashable static value: this call is lowered afresh
            self.key = None

    @property
    def has_statics(self) -> bool:
        return bool(self.static_args or self.static_leaves)


def _split(
    args: tuple[Any, ...], kwargs: dict[str, Any], sig: _Signature
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The dynamic parts of ``(args, kwargs)``: static leaves and static arguments become None."""
    if not sig.has_statics:
        return args, kwargs
    marked = {i for i, _ in sig.static_args}
    args = tuple(None if i in marked else a for i, a in enumerate(args))
    leaves = jax.tree.leaves((args, kwargs))
    static = {n for n, _ in sig.static_leaves}
    return jax.tree.unflatten(
        sig.treedef, [None if n in static else x for n, x in enumerate(leaves)]
    )


def _rebuild(
    args_dyn: tuple[Any, ...], kw_dyn: dict[str, Any], sig: _Signature
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Inverse of :func:`_split`, at trace time."""
    if not sig.has_statics:
        return tuple(args_dyn), kw_dyn
    leaves = sig.treedef.flatten_up_to((tuple(args_dyn), kw_dyn))
    for n, x in sig.static_leaves:
        leaves[n] = x
    args, kwargs = jax.tree.unflatten(sig.treedef, leaves)
    if sig.static_args:
        marked = dict(sig.static_args)
        args = tuple(marked.get(i, a) for i, a in enumerate(args))
    return args, kwargs


class _Pure:
    """``fn`` with the differentiated states' values as an explicit first argument."""

    def __init__(self, fn: Callable[..., Any], grad_states: Sequence[State], sig: _Signature):
        self.fn, self.grad_states, self.sig = fn, grad_states, sig
        self.record: list[State] = []

    def __call__(
        self, grad_values: Sequence[Any], kw_dyn: dict[str, Any], *args_dyn: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        args, kwargs = _rebuild(args_dyn, kw_dyn, self.sig)
        with frame(dict(zip(self.grad_states, grad_values, strict=True))) as f:
            out = self.fn(*args, **kwargs)
        self.record[:] = list(f.writes)
        return out, tuple(f.values[s] for s in self.record)


class Entry:
    """One call signature, lowered: the states it reads and writes and its compiled program."""

    __slots__ = ("inputs", "writes", "compiled", "stale")

    def __init__(self, inputs: tuple[State, ...], writes: tuple[State, ...]):
        self.inputs, self.writes = inputs, writes
        self.compiled: Any = None
        # Set by a trace that touched other states than ``inputs``/``writes``: all it touched.
        self.stale: tuple[tuple[State, ...], tuple[State, ...]] | None = None


def _run_body(
    fn: Callable[..., Any],
    grad_states: Sequence[State],
    body: Body,
    sig: _Signature,
    f: Any,
    kw_dyn: dict[str, Any],
    args_dyn: tuple[Any, ...],
) -> Any:
    """Run ``body`` inside frame ``f``; fold the states ``pure`` wrote into ``f``."""
    pure = _Pure(fn, grad_states, sig)
    result, written = body(pure, [f.values[s] for s in grad_states], kw_dyn, args_dyn)
    for s, v in zip(pure.record, written, strict=True):
        f.values[s] = v
    return result


def discover(
    run: Callable[[Frame, dict[str, Any], tuple[Any, ...]], Any],
    args_dyn: tuple[Any, ...],
    kw_dyn: dict[str, Any],
    values: dict[State, Any] | None = None,
) -> Frame:
    """Run ``run(frame, kwargs, args)`` abstractly (no FLOPs) in a new frame; return the frame.

    Used by ``StateFinder``; transforms discover through their first trace instead.

    The frame records, in order of first use, every state read and written; nothing is
    written to any State.
    """
    found: list[Frame] = []

    def probe(kw: dict[str, Any], *a: Any) -> None:
        with frame(dict(values) if values else None) as f:
            try:
                run(f, kw, a)
            finally:
                f.values = {}  # the abstract trace's values must not outlive it
        found.append(f)

    jax.eval_shape(probe, kw_dyn, *args_dyn)
    return found[0]


class Lowering:
    """The cache of lowered call signatures for one stateful function and one transform.

    Args:
        fn: the user's stateful function.
        body: the transform, as described in the module docstring.
        grad_states: the states whose values ``body`` differentiates (may be empty).
        on_discovered: called with the ``(reads, writes)`` of each trace; raises to reject.
        jit_kwargs: extra arguments for ``jax.jit`` (e.g. ``donate_argnums``).
        static_argnums: positional arguments treated as static (hashable, part of the key).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        body: Body,
        grad_states: Sequence[State] = (),
        *,
        on_discovered: Callable[[dict[State, None], dict[State, None]], None] | None = None,
        jit_kwargs: dict[str, Any] | None = None,
        static_argnums: frozenset[int] = frozenset(),
    ):
        self.fn = fn
        self.body = body
        self.grad_states = tuple(grad_states)
        self.on_discovered = on_discovered
        self.jit_kwargs = jit_kwargs or {}
        self.static_argnums = static_argnums
        self.cache: dict[Any, Entry] = {}
        # The states the last lowered signature touched: the first guess for a new signature.
        self._guess: tuple[tuple[State, ...], tuple[State, ...]] = ((), ())

    def _lower(self, sig: _Signature, reads: Iterable[State], writes: Iterable[State]) -> Entry:
        """The entry of one signature, assuming its calls read ``reads`` and write ``writes``.

        Nothing is traced here. Each trace of the program checks the assumption: a trace that
        touches other states completes anyway and records everything it touched in
        ``entry.stale``, a complete discovery to lower again from. (It is flagged, not raised:
        JAX 0.10 never frees an aborted trace that captured array constants.) So a first call
        traces once when the guess (the grad_states, or the last signature's states) is right,
        and twice otherwise.
        """
        fn, grad_states, body = self.fn, self.grad_states, self.body
        on_discovered = self.on_discovered
        inputs = grad_states + tuple(s for s in reads if s not in set(grad_states))
        outputs = tuple(writes)
        known_inputs, known_outputs = set(inputs), set(outputs)
        entry = Entry(inputs, outputs)

        def program(values: Sequence[Any], kw: dict[str, Any], *a: Any) -> tuple[Any, list[Any]]:
            with frame(dict(zip(inputs, values, strict=True))) as f:
                result = _run_body(fn, grad_states, body, sig, f, kw, a)
            if not (set(f.reads) <= known_inputs and set(f.writes) == known_outputs):
                entry.stale = (tuple(f.reads), tuple(f.writes))
                return result, []  # a program never used: the caller lowers again
            if on_discovered is not None:
                on_discovered(f.reads, f.writes)
            return result, [f.values[s] for s in outputs]

        entry.compiled = jax.jit(program, **self.jit_kwargs)
        return entry

    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, _Signature | None]:
        """The cache key of a call, and its signature when computing the key needed one.

        The common call, positional arrays or numbers only, is keyed by its arity alone
        (nothing in it is static), which skips flattening the arguments on every call.
        """
        if not kwargs and not self.static_argnums:
            for a in args:
                if type(a) not in _PLAIN_TYPES:
                    break
            else:
                return len(args), None
        sig = _Signature(args, kwargs, self.static_argnums)
        return sig.key, sig

    def _entry(
        self,
        key: Any,
        sig: _Signature,
        args_dyn: tuple[Any, ...],
        kw_dyn: dict[str, Any],
        nested: bool,
    ) -> Entry:
        entry = self.cache.get(key) if key is not None else None
        if entry is None:
            entry = self._lower(sig, *self._guess)
            # Trace now (the call reuses this trace); a wrong guess is rebuilt untraced.
            entry.compiled.trace(self._values(entry, nested), kw_dyn, *args_dyn)
            if entry.stale is not None:
                entry = self._lower(sig, *entry.stale)
                self._guess = (entry.inputs, entry.writes)
            if key is not None:
                self.cache[key] = entry
        return entry

    @staticmethod
    def _values(entry: Entry, nested: bool) -> list[Any]:
        # Inside an outer facade trace, reads go through ``.value`` so that it records them.
        return [s.value for s in entry.inputs] if nested else [s._value for s in entry.inputs]

    def _run(
        self, entry: Entry, nested: bool, args_dyn: tuple[Any, ...], kw_dyn: dict[str, Any]
    ) -> tuple[Any, list[Any]]:
        return entry.compiled(self._values(entry, nested), kw_dyn, *args_dyn)

    def __call__(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        check: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run one call; ``check(result)`` may raise before any state is written."""
        key, sig = self._key(args, kwargs)
        entry = self.cache.get(key) if key is not None else None
        nested = bool(active_frames())
        if entry is None:
            sig = sig or _Signature(args, kwargs, self.static_argnums)
            args_dyn, kw_dyn = _split(args, kwargs, sig)
            entry = self._entry(key, sig, args_dyn, kw_dyn, nested)
        else:
            args_dyn, kw_dyn = (args, kwargs) if sig is None else _split(args, kwargs, sig)
        result, written = self._run(entry, nested, args_dyn, kw_dyn)
        if entry.stale is not None:
            # A later trace (new shapes) touched other states: its results used stale inputs.
            entry = self._lower(sig or _Signature(args, kwargs, self.static_argnums), *entry.stale)
            if key is not None:
                self.cache[key] = entry
            result, written = self._run(entry, nested, args_dyn, kw_dyn)
            if entry.stale is not None:
                raise RuntimeError(
                    f"{getattr(self.fn, '__name__', self.fn)!r} touches different states "
                    "on every trace; facade transforms need a stable set of states"
                )
            self._guess = (entry.inputs, entry.writes)
        if check is not None:
            check(result)
        if entry.writes:
            if nested:
                for s, v in zip(entry.writes, written, strict=True):
                    s.value = v
            else:
                _check_concrete(entry.writes, written, self.fn)
                for s, v in zip(entry.writes, written, strict=True):
                    s._value = v
        return result


def _check_concrete(states: Sequence[State], values: Sequence[Any], fn: Any) -> None:
    """Refuse to store a tracer of a JAX transform the facade does not own (jax.jit, vmap, scan).

    Called before any state is assigned, so a refusal leaves every State as it was.
    """
    for s, v in zip(states, values, strict=True):
        if isinstance(v, jax.core.Tracer) or (
            not isinstance(v, jax.Array)
            and any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(v))
        ):
            raise RuntimeError(
                f"{getattr(fn, '__name__', fn)!r} writes {s._describe()} inside a JAX "
                "transformation (jax.jit, jax.vmap, jax.lax.scan, ...) that the facade cannot "
                "thread states through, so its new value would be a tracer. Use "
                "facade.transform.jit around the whole computation, or pass and return the "
                "value explicitly."
            )
