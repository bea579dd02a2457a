"""The one route from a state-aware transform to a compiled program, and the rule for reuse.

**The reuse rule.** A trace bakes in every Python value it touched: globals, closure cells,
attributes reached through objects, ``environ`` settings, which State objects an attribute led
to. A compiled program is reused only when everything its trace depended on is known to be
unchanged:

* A transform the user **holds** and calls again (``f = jit(g)``, ``@jit`` on a method, a
  stored ``grad(...)``, ``vmap(f)`` or ``checkpoint(f)``) keeps its traces in a
  :class:`Lowering`, keyed as ``jax.jit`` keys its own: the arguments' structure, shapes,
  dtypes and static values. Python values its function captures (closure cells, globals,
  attributes reached through captured objects) are baked in at trace time, as ``jax.jit``
  documents. Two guards go beyond ``jax.jit``: the ``environ`` settings the trace read are
  compared on each call after any setting changed (a changed ``dt`` or ``fit`` traces again),
  and a ``Module`` passed as an argument (``self`` of a jitted method included) is keyed by
  its plain attributes' values and its States' and arrays' identities
  (``keys.module_key``).
* A transform **called anew** (``for_loop(f, xs)``, ``cond``, ``scan``, ``while_loop`` called
  eagerly; ``vmap(f)(x)`` or ``grad(f, ...)(x)`` built in the step) traces its function on
  every call, through a fresh :class:`Lowering` (:func:`call`): the trace is the only full
  record of what it computes.

Either way the traced program then goes to ``lowering.executable``, which reuses the compiled
executable of an identical program (same equations and literals, callbacks by the identity of
their Python functions, constants passed as arguments by shape and dtype). So an unchanged call
never recompiles, and a changed one is never stale.

Per call a held transform: finds its entry (one dict lookup for a call of plain arrays), reads
its States' values, runs the executable and assigns the written values. Inside another facade
trace it is traced in place (its program becomes part of the outer one).
"""

from __future__ import annotations

import functools
import logging
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax._src import config
from jax._src.array import ArrayImpl

from .. import environ
from .._state import State, _local, is_abstract, peek
from . import lowering
from .bridge import Discovery, Pure, WeakDiscovery, alive, shared_discoveries
from .bridge import _shared as _shared_state
from .keys import DeadState, Signature

Program = Callable[..., tuple[Any, Sequence[Any]]]
Lower = Callable[[Pure], Program]

# The concrete array class, named without computing anything: importing the facade must not
# start JAX's backend (jax.distributed.initialize may come after it).
_ARRAY_IMPL = ArrayImpl
# Leaves that are dynamic and hold nothing static: a call made only of these is keyed by their
# shapes and dtypes alone.
PLAIN_TYPES = frozenset({_ARRAY_IMPL, np.ndarray, float, int, complex, bool})
_PYTHON_SCALARS = frozenset({float, int, complex, bool})

log = logging.getLogger("facade.transform")
EXPLAIN = "explain_retrace"
"""The ``environ`` setting that makes every trace of a held transform log why it happened."""


def _aval_key(x: Any) -> Any:
    t = type(x)
    if t is _ARRAY_IMPL:
        return x.aval
    if t in _PYTHON_SCALARS:
        return t  # weakly typed: the value is not part of the trace
    if isinstance(x, jax.Array):
        return jax.typeof(x)  # a tracer of an enclosing raw JAX trace
    return (np.shape(x), np.result_type(x).str)


class Entry:
    """One traced call signature: its states (weakly), executable, constants and the
    ``environ`` settings its trace read."""

    __slots__ = (
        *("refs", "write_refs", "exe", "consts", "regroup"),
        *("settings", "settings_version", "d", "arity", "plain"),
    )

    def __init__(
        self, d: Discovery, exe: Any, consts: list[Any], regroup: Any, settings: dict[str, Any]
    ):
        self.refs = tuple(weakref.ref(s) for s in d.states)
        self.write_refs = tuple(weakref.ref(s) for s in d.writes)
        self.exe, self.consts, self.regroup = exe, consts, regroup
        self.settings, self.settings_version = settings, environ.version()
        self.d = WeakDiscovery(d)
        # The number of arguments of the call it was traced for, when they were all plain
        # arrays or numbers (set by the lowering), else -1: the fast path is for such calls.
        self.arity = -1
        # Its result needs neither regrouping nor writes: the fast path returns it as it is.
        self.plain = regroup is None and not d.writes

    def settings_changed(self) -> str | None:
        """The first ``environ`` setting read by the trace whose value changed, else None."""
        if not self.settings or self.settings_version == environ.version():
            return None
        changed = environ.changed_setting(self.settings)
        if changed is None:
            self.settings_version = environ.version()
        return changed


class Lowering:
    """The traced and compiled call signatures of one stateful function under one transform.

    Args:
        lower: ``lower(pure) -> program``: the transform as a function of the bridge's pure
            function; ``program(state_values, *args, **kwargs) -> (result, written_values)``.
        first: states put first in every discovery, in this order (e.g. the grad_states).
        own_writes: states among ``first`` that the program writes itself, outside the user's
            function (the random key ``fwd_grad`` draws its directions with).
        check: ``check(found, first)`` is called with the discovery of every trace; it raises
            to reject the call (nothing is written).
        static_argnums, static_argnames: arguments that are static (hashable, in the key).
        jit_kwargs: ``jax.jit`` options for the program, a function of the number of
            positional arguments (see :func:`program_jit_kwargs`).
        name: the compiled program's name (``jit(..., name=)``).
        label: how errors name the call (e.g. ``for_loop(step)``); the function's name if None.
        hint: for a transform often built anew: a key (e.g. the transform and the code of its
            function, see :func:`hint`) under which the states of the last trace are kept as
            the first guess of the next new transform's trace. The trace checks the guess, so a
            wrong one costs a second trace, never a wrong program.
        fast: whether the transform object owning it may call its only signature's executable
            straight away (see ``Transformed.__call__``); not when each call needs more checks.
    """

    def __init__(
        self,
        lower: Lower,
        first: Sequence[State] = (),
        *,
        own_writes: Sequence[State] = (),
        check: Callable[[Discovery, tuple[State, ...]], None] | None = None,
        static_argnums: Sequence[int] = (),
        static_argnames: Sequence[str] = (),
        jit_kwargs: Callable[[int], dict[str, Any]] | None = None,
        name: str | None = None,
        hint: Any = None,
        label: str | None = None,
        fast: bool = True,
    ):
        self.lower = lower
        self.label = label
        self._first = tuple(weakref.ref(s) for s in first)
        self._own_writes = tuple(weakref.ref(s) for s in own_writes)
        self.check = check
        self.static_argnums = tuple(static_argnums)
        self.static_argnames = frozenset(static_argnames)
        self.jit_kwargs = jit_kwargs
        self.name = name
        self.cache: dict[Any, Entry] = {}
        # While there is one entry, traced for plain arguments: the entry a transform object
        # calls straight away (``Transformed.__call__``), if ``fast`` allows it.
        self.fast_calls = fast
        self.fast: Entry | None = None
        # The states of the last trace: the first guess for a new signature.
        self.hint = hint
        self.last: WeakDiscovery | None = _GUESSES.get(hint) if hint is not None else None

    def first(self) -> tuple[State, ...]:
        return alive(self._first)

    # --- keys ----------------------------------------------------------------------------

    def _signature(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Signature:
        nums = frozenset(i % len(args) for i in self.static_argnums if -len(args) <= i < len(args))
        return Signature(args, kwargs, nums, self.static_argnames)

    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Signature | None]:
        """The cache key of a call, and its signature when computing the key needed one.

        The common call, positional arrays or numbers only, is keyed by their shapes and
        dtypes alone (nothing in it is static), which skips flattening the arguments.
        """
        if not kwargs and not self.static_argnums:
            for a in args:
                if type(a) not in PLAIN_TYPES:
                    break
            else:
                return (None, tuple(map(_aval_key, args))), None
        sig = self._signature(args, kwargs)
        if sig.key is None:
            return None, sig
        args_dyn, kw_dyn = sig.split(args, kwargs)
        return (sig.key, tuple(map(_aval_key, jax.tree.leaves((args_dyn, kw_dyn))))), sig

    # --- the call ------------------------------------------------------------------------

    def __call__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        check_result: Callable[[Any], None] | None = None,
        inputs: Any = None,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` through its program; ``check_result(result)`` may raise
        before any state is written. ``inputs`` (a pytree of arrays: ``jvp``'s tangents) are
        the transform's own inputs, not the function's: the program is then called as
        ``program(state_values, inputs, *args, **kwargs)``, and the call is not kept (a
        transform with inputs of its own is called anew)."""
        if _local.frames:
            return self._nested(fn, args, kwargs, check_result, inputs)
        if inputs is not None:
            return self._run_new(fn, None, None, args, kwargs, check_result, inputs)
        key, sig = self._key(args, kwargs)
        entry = self.cache.get(key) if key is not None else None
        if entry is not None:
            changed = entry.settings_changed()
            if changed is not None:
                self._explain(fn, f"environ setting {changed!r} changed")
                entry = None
        if entry is None:
            return self._run_new(fn, key, sig, args, kwargs, check_result)
        args_dyn, kw_dyn = (args, kwargs) if sig is None else sig.split(args, kwargs)
        try:
            values = [r()._value for r in entry.refs]  # type: ignore[union-attr]
            out = entry.exe(values, *args_dyn, entry.consts, **kw_dyn)
        except AttributeError:  # a State of the entry was collected: trace again
            if not _dead(entry.refs):
                raise
            self._explain(fn, "a State its trace read was garbage-collected")
            return self._run_new(fn, key, sig, args, kwargs, check_result)
        except lowering.ShapesChanged as err:
            self._explain(fn, _shape_cause(err, entry))
            return self._run_new(fn, key, sig, args, kwargs, check_result)
        return self._done(fn, entry, out, check_result)

    def _done(
        self, fn: Any, entry: Entry, out: Any, check_result: Callable[[Any], None] | None
    ) -> Any:
        """The result of a call of ``entry``'s executable (``out``), its writes carried out."""
        result, written = lowering.regrouped(out, entry.regroup)
        if check_result is not None:
            check_result(result)
        write_refs = entry.write_refs
        if write_refs:
            _check_concrete(write_refs, written, self, fn)
            for r, v in zip(write_refs, written, strict=True):
                r()._value = v  # type: ignore[union-attr]
        return result

    def _run_new(
        self,
        fn: Callable[..., Any],
        key: Any,
        sig: Signature | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        check_result: Callable[[Any], None] | None,
        inputs: Any = None,
    ) -> Any:
        """Trace this call, find its executable, run it and remember the entry."""
        if not self.cache:
            self._explain(fn, "new function")
        elif key is not None and key not in self.cache:
            self._explain(fn, _key_cause(key, self.cache))
        entry, args_dyn, kw_dyn, values = self._entry(fn, sig, args, kwargs, inputs=inputs)
        if key is not None and not lowering.consts_hold_tracers(entry.consts):
            self.cache[key] = entry
            if sig is None:  # a call of plain arrays or numbers (see ``_key``)
                entry.arity = len(args)
        one = self.fast_calls and len(self.cache) == 1 and entry.arity >= 0
        self.fast = entry if one else None
        out = entry.exe(values, *args_dyn, entry.consts, **kw_dyn)
        return self._done(fn, entry, out, check_result)

    def _entry(
        self,
        fn: Callable[..., Any],
        sig: Signature | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        nested: bool = False,
        inputs: Any = None,
    ) -> tuple[Entry, tuple[Any, ...], dict[str, Any], list[Any]]:
        sig = sig or self._signature(args, kwargs)
        args_dyn, kw_dyn = _dynamic(sig, args, kwargs, inputs)
        options = self._options(sig)
        with environ.recording() as settings, shared_discoveries():
            traced, d, found = self._trace(fn, sig, args_dyn, kw_dyn, options)
        if not nested and found is not None:
            _refuse_escaped(found, self._label(fn))
        exe, consts, regroup = lowering.executable(traced, options, self.name)
        entry = Entry(d, exe, consts, regroup, settings)
        self._remember(entry.d)
        if nested:  # read through ``.value``, so that the enclosing trace records the reads
            values = [s.value if s in d.reads else peek(s) for s in d.states]
        else:
            values = [s._value for s in d.states]
        return entry, args_dyn, kw_dyn, values

    def _options(self, sig: Signature) -> dict[str, Any]:
        """The ``jax.jit`` options of the program for this call's signature."""
        return {} if self.jit_kwargs is None else self.jit_kwargs(sig.num_args)

    def _trace(
        self,
        fn: Callable[..., Any],
        sig: Signature,
        args_dyn: tuple[Any, ...],
        kw_dyn: Any,
        options: dict[str, Any],
    ) -> tuple[Any, Discovery, Discovery | None]:
        """Trace the program on the guessed states; again on the states found, if different."""
        guess = self._guess()
        own = alive(self._own_writes)
        for attempt in range(2):
            d = guess.with_writes(own)
            values = [peek(s) for s in d.states]
            _check_not_abstract(d.states, values)
            # The first attempt lets States it did not guess become inputs as it reads them
            # (JAX's own checks insist on a jaxpr's argument names matching its inputs).
            late = attempt == 0 and not config.enable_checks.value
            pure = Pure(fn, d, sig, self.first, late_inputs=late)
            program = pure.rooted(self.lower(pure)) if late else self.lower(pure)
            traced = lowering.Program.trace(program, options, values, *args_dyn, **kw_dyn)
            found = pure.take_trace()
            if found is None:  # the transform did not call the function (nothing to check)
                return traced, d, None
            if self.check is not None:
                self.check(found, self.first())
            if found.late is not None or traced.added_inputs():
                moved = _with_late(d, found, traced, values, args_dyn, kw_dyn)
                if moved is None:  # traced again, on the States found
                    guess = found
                    continue
                d, traced = moved
            if d.covers(found):
                return traced, d, found
            if attempt:
                raise RuntimeError(
                    f"{self._label(fn)!r} touches different states on every trace; facade "
                    "transforms need the same states for the same arguments"
                )
            guess = found
        raise AssertionError("unreachable")

    def _guess(self) -> Discovery:
        first = self.first()
        if self.last is not None:
            try:
                states, writes = self.last.states, self.last.writes
            except DeadState:
                self.last = None
            else:
                given = set(first)
                return Discovery((*first, *(s for s in states if s not in given)), writes)
        return Discovery(first, ())

    def _remember(self, d: WeakDiscovery) -> None:
        """Keep the states of this trace as the next trace's first guess."""
        self.last = d
        if self.hint is not None:
            if len(_GUESSES) >= _MAX_GUESSES:
                _GUESSES.clear()
            _GUESSES[self.hint] = d

    def _nested(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        check_result: Callable[[Any], None] | None,
        inputs: Any = None,
    ) -> Any:
        """Inside another facade trace: trace in place, reads and writes in the outer frame.

        The traced program becomes part of the outer one (no executable of its own: the outer
        trace records its settings and keys the whole program)."""
        sig = self._signature(args, kwargs)
        args_dyn, kw_dyn = _dynamic(sig, args, kwargs, inputs)
        traced, d, reads = self._nested_trace(
            fn, sig, args, kwargs, args_dyn, kw_dyn, inputs is None
        )
        self._remember(WeakDiscovery(d))
        # Read through ``.value``, so that the enclosing trace records the reads.
        values = [s.value if s in d.reads or s in reads else peek(s) for s in d.states]
        result, written = traced(values, *args_dyn, **kw_dyn)
        if check_result is not None:
            check_result(result)
        for s, v in zip(d.writes, written, strict=True):
            s.value = v
        return result

    def _nested_trace(
        self,
        fn: Callable[..., Any],
        sig: Signature,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        args_dyn: tuple[Any, ...],
        kw_dyn: dict[str, Any],
        keyed: bool,
    ) -> tuple[Any, Discovery, frozenset[State]]:
        """The traced program of a nested call. An enclosing lowering that traces its program
        a second time (its first guess of the States was wrong) reuses this call's program
        from its first trace, as it reuses the loops' discoveries: nothing can change in
        between (both traces run in one call, on this thread), and re-tracing a ``grad``
        inside a ``jit`` would double the first call's cost. A program that closed over a
        tracer of the first enclosing trace is traced again."""
        table = _shared_table() if keyed else None
        memo = None
        if table is not None:
            key, _ = self._key(args, kwargs)
            if key is not None:
                memo = ("nested", self, key)
                try:
                    hit = table.get(memo)
                except TypeError:  # an unhashable part
                    memo, hit = None, None
                if hit is not None:
                    return hit  # type: ignore[no-any-return]
        with shared_discoveries():
            traced, d, found = self._trace(fn, sig, args_dyn, kw_dyn, self._options(sig))
        if memo is not None and table is not None:
            # Tracers of the enclosing trace it closed over: in ``_consts`` (as inputs) or in
            # the jaxpr's constants.
            if not traced.outer and not lowering.consts_hold_tracers(traced.jaxpr.consts):
                # A reuse replays the reads the trace made through the enclosing frames.
                table[memo] = (traced, d, found.reads if found is not None else frozenset())
        return traced, d, frozenset()

    def prepare(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        """``(executable, args, kwargs)`` of a call, for ``lower``/``eval_shape``: the
        executable takes ``args`` (state values first, constants last). Nothing runs."""
        entry, args_dyn, kw_dyn, values = self._entry(fn, None, args, kwargs, bool(_local.frames))
        return entry.exe, (values, *args_dyn, entry.consts), kw_dyn

    def clear(self) -> None:
        """Forget every traced signature (the shared executables stay)."""
        self.cache.clear()
        self.fast = self.last = None

    def _label(self, fn: Any) -> str:
        return self.label or _name(fn)

    def _explain(self, fn: Any, cause: str) -> None:
        if environ.get(EXPLAIN, False):
            log.warning("facade: tracing %s (%s)", self._label(fn), cause)


def _dynamic(
    sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any], inputs: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The program's dynamic arguments for a call: its own ``inputs`` first, if any (see
    ``Lowering.__call__``), then the call's."""
    args_dyn, kw_dyn = sig.split(args, kwargs)
    return (args_dyn if inputs is None else (inputs, *args_dyn)), kw_dyn


def _with_late(
    d: Discovery,
    found: Discovery,
    traced: lowering.Program,
    values: list[Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[Discovery, lowering.Program] | None:
    """The discovery and program of a trace that made States it did not expect inputs (reads)
    and outputs (writes) as it went (see ``_state.late_input``): the expected States first,
    then the new ones, in both. None if the program cannot be used that way: it must be
    traced again."""
    if found.late is None:  # ``pure`` ran more than once: whose inputs are whose is unknown
        return None
    if not set(d.states) <= set(found.states):
        # The guess (another call's States) holds States this trace did not touch: they
        # would stay inputs and outputs of the program.
        return None
    late, late_writes = found.late
    leaves = [jax.tree.leaves(s._value) for s in late]
    count = sum(map(len, leaves))
    if count != traced.added_inputs():
        return None
    in_tree = jax.tree.structure((([*values, *(s._value for s in late)], *args), kwargs))
    names = [
        f"state {s.name or type(s).__name__}"
        for s, ls in zip(late, leaves, strict=True)
        for _ in ls
    ]
    moved = traced.with_late_inputs(len(jax.tree.leaves(values)), count, in_tree, names)
    if moved is None:
        return None
    return Discovery((*d.states, *late), (*d.writes, *late_writes), found.reads), moved


def _refuse_escaped(found: Discovery, label: str) -> None:
    """Raise if the trace created a State that outlived it (stored on a model, say): its value
    would only be a shape, and the next use would fail far from the cause."""
    escaped = found.escaped()
    if escaped:
        raise TypeError(
            f"{label!r} created {escaped[0]._describe()} inside a transform and kept it (on "
            "a model attribute, say): a State created inside a transform holds a value only "
            "there. Create it before the transform (e.g. in init_state, then call "
            "init_all_states), and let the transform read and write it."
        )


def _shared_table() -> dict[Any, Any] | None:
    """The memo of the enclosing ``shared_discoveries`` block, if any."""
    return getattr(_shared_state, "table", None)


def _dead(refs: Sequence[Callable[[], Any]]) -> bool:
    return any(r() is None for r in refs)


def _key_cause(key: Any, cache: dict[Any, Entry]) -> str:
    """Why a call's key is new, in the user's terms, against the most recent entry."""
    old = next(reversed(cache), None) if cache else None
    if old is None:
        return "a call signature it has not seen"
    (new_statics, new_avals), (old_statics, old_avals) = key, old
    if new_statics != old_statics:
        return "a static argument, a non-array leaf or a Module attribute changed"
    if len(new_avals) != len(old_avals):
        return f"{len(new_avals)} array arguments instead of {len(old_avals)}"
    for i, (a, b) in enumerate(zip(new_avals, old_avals, strict=True)):
        if a != b:
            return f"array argument {i} is {_show(a)} (was {_show(b)})"
    return "a call signature it has not seen"


def _show(aval: Any) -> str:
    if isinstance(aval, type):
        return f"a Python {aval.__name__}"
    return str(aval)


def _shape_cause(err: lowering.ShapesChanged, entry: Entry) -> str:
    """Which State (or argument) now has another shape: ``err.position`` counts the flat
    inputs, the States' leaves first."""
    try:
        states = entry.d.states
    except DeadState:
        states = ()
    given, traced = err.given.str_short(), err.traced.str_short()
    start = 0
    for s in states:
        n = len(jax.tree.leaves(s._value))
        if start <= err.position < start + n:
            return f"{s._describe()} now holds {given} (was {traced})"
        start += n
    return f"an input is {given} (was {traced})"


# --- transforms called anew -----------------------------------------------------------------

_GUESSES: dict[Any, WeakDiscovery] = {}
_MAX_GUESSES = 512


def hint(kind: Any, *fns: Any) -> Any:
    """A :class:`Lowering` ``hint``: the transform's kind and the code of the user's functions."""
    return (kind, *map(_code, fns))


def _code(f: Any) -> Any:
    while isinstance(f, functools.partial):
        f = f.func
    if isinstance(f, types.MethodType):
        f = f.__func__
    return getattr(f, "__code__", None) or type(f)


def call(
    kind: Any,
    run: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    static_argnums: Sequence[int] = (),
    fns: Sequence[Any] = (),
) -> Any:
    """``run(*args, **kwargs)`` for a transform called anew: traced in place inside a facade
    trace, else traced now and run through the executable of its program (see the module
    docstring). ``kind`` and the user's functions ``fns`` make the :class:`Lowering`'s hint.
    """
    kwargs = kwargs or {}
    if _local.frames:
        return run(*args, **kwargs)
    label = f"{kind if isinstance(kind, str) else kind[0]}({', '.join(map(_name, fns))})"
    site = Lowering(
        call_program(label, *fns[:1]),
        static_argnums=static_argnums,
        hint=hint(kind, *fns),
        label=label,
    )
    return site(run, args, kwargs)


class Transformed:
    """Base of every transform object a user holds (``jit(f)``, ``grad(f, ...)``, ``vmap(f)``,
    ...): opaque to ``facade.graph`` (a transform stored on a model adds no state paths), and
    bound as a method when it decorates a ``def`` in a class, as the function ``jax.jit`` or
    ``jax.grad`` returns would be: the instance is then the first argument (a Module argument
    is keyed by its attributes)."""

    graph_opaque = True
    _lowering: Lowering
    _fn: Callable[..., Any]  # the function its lowering traces (errors name it)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return self if instance is None else self._bind(instance)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The call: straight to the executable when the lowering has one traced signature,
        made for plain arrays or numbers, and this is such a call outside any trace; else
        :meth:`_call`.

        ``jax.jit`` checks the arguments' shapes, dtypes and weak types in C++ (the executable
        raises ShapesChanged for others), which is all the key of such a call compares, so no
        key is built. On a small program the Python between the user's call and the
        executable is a tenth of the time, and it runs with the caches the executable has just
        cooled: the steps are kept few, and in this one frame.
        """
        site = self._lowering
        entry = site.fast
        if entry is not None and not kwargs and len(args) == entry.arity and not _local.frames:
            for a in args:
                if type(a) not in PLAIN_TYPES:
                    break
            else:
                if not entry.settings or entry.settings_changed() is None:
                    try:
                        values = [r()._value for r in entry.refs]  # type: ignore[union-attr]
                        out = entry.exe(values, *args, entry.consts)
                    except (AttributeError, lowering.ShapesChanged):
                        pass  # a State was collected, or new shapes: the keyed path
                    else:
                        return out[0] if entry.plain else site._done(self._fn, entry, out, None)
                # else: the keyed path says which setting changed, and traces again
        return self._call(args, kwargs)

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _bind(self, instance: Any) -> Any:
        return types.MethodType(self, instance)


class HeldTransform(Transformed):
    """Base of the wrappers traced through a :class:`Lowering` of their own (``vmap(f)``,
    ``checkpoint(f)``, ``shard_map(f, ...)``).

    Args:
        fn: the user's function.
        run: ``run(*args, **kwargs)``, the transform of ``fn``, traced in place inside another
            facade trace and through the lowering otherwise.
        kind: the transform's name (for the lowering's hint).
        static_argnums, static_argnames: arguments of ``run`` that are static (they key the
            compiled programs, as ``jax.jit``'s do).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        run: Callable[..., Any],
        kind: str,
        static_argnums: Sequence[int] = (),
        static_argnames: Sequence[str] = (),
    ):
        self._run = self._fn = run
        self._lowering = Lowering(
            call_program(),
            static_argnums=static_argnums,
            static_argnames=static_argnames,
            hint=hint(kind, fn),
        )
        functools.update_wrapper(self, fn, updated=())

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _local.frames:
            return self._run(*args, **kwargs)
        return self._lowering(self._run, args, kwargs)


def call_program(name: str | None = None, user_fn: Any = None) -> Lower:
    """The ``lower`` of a transform that is the call itself (``jit``, eager control flow).

    ``name`` names the program; JAX's messages then point at ``user_fn``'s source (through
    ``__wrapped__``), not at this module.
    """

    def lower(pure: Pure) -> Program:
        def program(values: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
            return pure(values, *args, **kwargs)

        if name:
            program.__name__ = program.__qualname__ = name
        if user_fn is not None:
            program.__wrapped__ = user_fn  # type: ignore[attr-defined]
        return program

    return lower


def program_jit_kwargs(
    *,
    in_shardings: Any = None,
    out_shardings: Any = None,
    donate_argnums: Sequence[int] = (),
    **jax_kwargs: Any,
) -> Callable[[int], dict[str, Any]]:
    """``jax.jit`` options for a program, from options given in terms of the user's function.

    The program's positional arguments are ``(state_values, *args)`` and it returns
    ``(result, written_values)``: ``in_shardings`` (one sharding for every argument, or one
    per positional argument) and ``donate_argnums`` are shifted past ``state_values``, and
    ``out_shardings`` applies to ``result``. The states keep their own shardings (JAX infers
    them from the arrays). Negative ``donate_argnums`` count from the end of each call's
    arguments.
    """
    from jax._src.sharding_impls import UNSPECIFIED

    def options(num_args: int) -> dict[str, Any]:
        kw = dict(jax_kwargs)
        if in_shardings is not None:
            per_arg = (
                tuple(in_shardings)
                if isinstance(in_shardings, list | tuple)
                else (in_shardings,) * num_args
            )
            kw["in_shardings"] = (UNSPECIFIED, *per_arg)
        if out_shardings is not None:
            kw["out_shardings"] = (out_shardings, UNSPECIFIED)
        if donate_argnums:
            kw["donate_argnums"] = tuple(
                1 + (i % num_args) for i in donate_argnums if -num_args <= i < num_args
            )
        return kw

    return options


def _check_not_abstract(states: Sequence[State], values: Sequence[Any]) -> None:
    for s, v in zip(states, values, strict=True):
        if is_abstract(v):
            raise TypeError(
                f"{s._describe()} holds only shapes and dtypes: it was created inside a "
                "transform (e.g. a model built by eval_shape, or init_all_states called inside "
                "jit or grad); give it a value (initialise the model outside the transform) "
                "before running it"
            )


def _name(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _check_concrete(
    refs: Sequence[Callable[[], Any]], values: Sequence[Any], site: Lowering, fn: Any
) -> None:
    """Refuse to store a tracer of a JAX transform the facade does not own (raw jax.jit).

    Called before any state is assigned, so a refusal leaves every State as it was.
    """
    for r, v in zip(refs, values, strict=True):
        if type(v) is _ARRAY_IMPL:
            continue  # the common case: a concrete array
        if isinstance(v, jax.core.Tracer) or (
            not isinstance(v, jax.Array)
            and any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(v))
        ):
            raise RuntimeError(
                f"{site._label(fn)!r} writes {r()._describe()} inside a JAX transformation "
                "(jax.jit, jax.vmap, jax.lax.scan, ...) that the facade cannot thread states "
                "through, so its new value would be a tracer. Use the facade's transform "
                "(facade.transform.jit, vmap, for_loop, ...) around the whole computation, or "
                "pass and return the value explicitly."
            )


__all__ = ["HeldTransform", "Lowering", "call", "call_program", "hint", "program_jit_kwargs"]
