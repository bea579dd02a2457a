"""``StatefulFunction``: a stateful function as a jaxpr over its States' values, by call signature.

brainstate's inspection object: for one call signature it traces the function once and keeps
the jaxpr (inputs: the dynamic arguments' leaves, then one value per State the call touches;
outputs: the result, then the written States' values), the States in order of first use and
which of them are written. Built over the bridge: :func:`discover` finds the States, the jaxpr
is the one of :class:`Pure` over them, and the trace's own discovery is checked against it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import jax
import numpy as np

from .._core.bridge import Discovery, Pure, discover, read_values, write_values
from .._core.keys import Signature
from .._state import State

__all__ = ["StateTrace", "StatefulFunction"]


def _as_tuple(x: Any, kind: type, name: str) -> tuple[Any, ...]:
    if x is None:
        return ()
    items = (x,) if isinstance(x, kind) else tuple(x)
    for item in items:
        if not isinstance(item, kind) or isinstance(item, bool):
            raise TypeError(f"StatefulFunction: {name} must be {kind.__name__}s, got {x!r}")
    return items


def _aval(x: Any) -> tuple[Any, ...]:
    return (np.shape(x), str(jax.numpy.result_type(x)), bool(getattr(x, "weak_type", False)))


def _refuse_states(tree: Any, where: str) -> None:
    for leaf in jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, State)):
        if isinstance(leaf, State):
            raise TypeError(
                f"StatefulFunction: a State ({leaf.name or type(leaf).__name__}) was passed as "
                f"{where}; read and write States inside the function instead (their values "
                "are tracked), and pass or return their values"
            )


class StateTrace:
    """The States one traced call touched, in order of first use, and which it wrote.

    ``been_writen`` keeps brainstate's spelling; ``been_written`` is the same list.
    """

    def __init__(self, states: Sequence[State], writes: Iterable[State]):
        self.states = list(states)
        written = set(writes)
        self.been_writen = [s in written for s in self.states]

    @property
    def been_written(self) -> list[bool]:
        return self.been_writen

    def get_state_values(self) -> list[Any]:
        return [s.value for s in self.states]

    def get_read_states(self, replace_writen: bool = False) -> tuple[State | None, ...]:
        """The States only read (with ``replace_writen``, None in place of the written ones)."""
        if replace_writen:
            return tuple(
                None if w else s for s, w in zip(self.states, self.been_writen, strict=True)
            )
        return tuple(s for s, w in zip(self.states, self.been_writen, strict=True) if not w)

    def get_write_states(self, replace_read: bool = False) -> tuple[State | None, ...]:
        """The States written (with ``replace_read``, None in place of the others)."""
        if replace_read:
            return tuple(
                s if w else None for s, w in zip(self.states, self.been_writen, strict=True)
            )
        return tuple(s for s, w in zip(self.states, self.been_writen, strict=True) if w)

    def get_read_state_values(self, replace_writen: bool = False) -> tuple[Any, ...]:
        return tuple(None if s is None else s.value for s in self.get_read_states(replace_writen))

    def get_write_state_values(self, replace_read: bool = False) -> tuple[Any, ...]:
        return tuple(None if s is None else s.value for s in self.get_write_states(replace_read))

    def __repr__(self) -> str:
        names = [s.name or type(s).__name__ for s in self.states]
        return f"StateTrace(states={names}, been_writen={self.been_writen})"


class _Compiled:
    """One call signature's trace: the jaxpr, output layout, States, and their avals then."""

    __slots__ = ("jaxpr", "out_shapes", "out_treedef", "discovery", "state_trace", "avals", "run")

    def __init__(self, jaxpr: Any, out_shapes: Any, discovery: Discovery, state_avals: Any):
        self.jaxpr = jaxpr
        self.out_shapes = out_shapes
        self.out_treedef = jax.tree.structure(out_shapes)
        self.discovery = discovery
        self.state_trace = StateTrace(discovery.states, discovery.writes)
        self.avals = state_avals
        # One compiled program for the jaxpr: an eager call is one XLA call, not op by op.
        self.run = jax.jit(functools.partial(jax.core.eval_jaxpr, jaxpr.jaxpr, jaxpr.consts))

    def stale(self) -> bool:
        """Whether a State's value changed shape or dtype since the trace (trace again)."""
        return any(
            jax.tree.map(_aval, s.value) != a
            for s, a in zip(self.discovery.states, self.avals, strict=True)
        )


class StatefulFunction:
    """A stateful function traced to a jaxpr per call signature, with the States it touches.

    Args:
        fun: the function; it reads and writes States inside (never takes or returns them).
        static_argnums: positions of static arguments (part of the signature, not traced).
        static_argnames: names of static keyword arguments.
        axis_env: ``(axis name, size)`` pairs for collectives, as ``jax.make_jaxpr`` takes.
        name: a name for the function (shown in its repr).
        return_only_write: whether :meth:`jaxpr_call` returns new values for the written
            States only (None for the others) or for every State.
        ir_optimizations: accepted for brainstate's signature; the jaxpr is JAX's own.

    The jaxpr's inputs are the dynamic positional arguments' leaves, the dynamic keyword
    arguments' leaves, then one value per State (in the order of :meth:`get_states`); its
    outputs are the result's leaves, then the new States' values (written ones only, unless
    ``return_only_write=False``).

    Raises:
        TypeError: a State passed as an argument or returned; static arguments not hashable.
        ValueError: ``static_argnums`` beyond the arguments given; :meth:`jaxpr_call` given a
            wrong number of State values, or a None one.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> s = facade.State(jnp.array([1.0, 2.0]), name="s")
        >>> def f(x):
        ...     s.value = s.value + x
        ...     return s.value * 2
        >>> sf = facade.transform.StatefulFunction(f)
        >>> [t.name for t in sf.get_states(jnp.ones(2))], len(sf.get_write_states(jnp.ones(2)))
        (['s'], 1)
        >>> new, out = sf.jaxpr_call([s.value], jnp.ones(2))
        >>> new[0], out
        (Array([2., 3.], dtype=float32), Array([4., 6.], dtype=float32))
        >>> sf(jnp.ones(2)), s.value  # called: the written States are assigned
        (Array([4., 6.], dtype=float32), Array([2., 3.], dtype=float32))
    """

    def __init__(
        self,
        fun: Callable[..., Any],
        static_argnums: int | Iterable[int] = (),
        static_argnames: str | Iterable[str] = (),
        axis_env: Sequence[tuple[Hashable, int]] | None = None,
        name: str | None = None,
        return_only_write: bool = True,
        ir_optimizations: str | Sequence[str] | None = None,
    ):
        if not callable(fun):
            raise TypeError(f"StatefulFunction: fun must be callable, got {type(fun).__name__}")
        self.fun = fun
        self.static_argnums = _as_tuple(static_argnums, int, "static_argnums")
        self.static_argnames = _as_tuple(static_argnames, str, "static_argnames")
        self.axis_env = axis_env
        self.name = name
        self.return_only_write = return_only_write
        self.ir_optimizations = ir_optimizations
        self._cache: dict[Hashable, _Compiled] = {}
        # Set by ``jit(...).stateful_fun``: get_arg_cache_key traces on a miss (the jit's calls
        # do not fill this cache, and brainstate's callers expect a key to find a trace).
        self.trace_on_key = False
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"StatefulFunction({getattr(self.fun, '__name__', self.fun)!r}, name={self.name!r})"

    # -- call signatures ---------------------------------------------------------------------

    def _split(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any], dict[int, Any], dict[str, Any]]:
        nums = {i % len(args) if -len(args) <= i < 0 else i for i in self.static_argnums}
        static_pos = {i: a for i, a in enumerate(args) if i in nums}
        dyn_args = tuple(a for i, a in enumerate(args) if i not in nums)
        static_kw = {k: v for k, v in kwargs.items() if k in self.static_argnames}
        dyn_kw = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        return dyn_args, dyn_kw, static_pos, static_kw

    def get_arg_cache_key(self, *args: Any, compile_if_miss: bool = False, **kwargs: Any) -> Any:
        """The key of this call signature: the static values, the dynamic leaves' avals."""
        sig = Signature(
            args, kwargs, frozenset(self.static_argnums), frozenset(self.static_argnames)
        )
        if sig.key is None:
            raise TypeError(
                f"StatefulFunction {self.name or ''}: a static argument is not hashable; "
                "static values key the traces, as in jax.jit"
            )
        dyn_args, dyn_kw, _, _ = self._split(args, kwargs)
        key = (sig.key, tuple(_aval(x) for x in jax.tree.leaves((dyn_args, dyn_kw))))
        if compile_if_miss or self.trace_on_key:
            self._compiled(key, args, kwargs)
        return key

    def _compiled(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Compiled:
        entry = self._cache.get(key)
        if entry is None or entry.stale():
            with self._lock:
                entry = self._cache.get(key)
                if entry is None or entry.stale():
                    entry = self._cache[key] = self._trace(args, kwargs)
        return entry

    def _trace(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Compiled:
        if self.static_argnums and max(self.static_argnums) >= len(args):
            raise ValueError(
                f"StatefulFunction: static_argnums contains {max(self.static_argnums)}, but "
                f"only {len(args)} positional argument(s) were given"
            )
        _refuse_states((args, kwargs), "an argument")
        dyn_args, dyn_kw, static_pos, static_kw = self._split(args, kwargs)
        n = len(args)

        def call(dyn: tuple[Any, ...], kw: dict[str, Any]) -> Any:
            it = iter(dyn)
            full = [static_pos[i] if i in static_pos else next(it) for i in range(n)]
            return self.fun(*full, **kw, **static_kw)

        d, _ = discover(call, (dyn_args, dyn_kw), {})
        pure = Pure(call, d)
        written = set(d.writes)

        def program(dyn: tuple[Any, ...], kw: dict[str, Any], values: list[Any]) -> Any:
            out, new = pure(values, dyn, kw)
            _refuse_states(out, "the function's result")
            by_state = dict(zip(d.writes, new, strict=True))
            if self.return_only_write:
                states_out = tuple(by_state.get(s) for s in d.states)
            else:
                states_out = tuple(
                    by_state[s] if s in written else v
                    for s, v in zip(d.states, values, strict=True)
                )
            return out, states_out

        values = read_values(d)
        jaxpr, out_shapes = jax.make_jaxpr(program, axis_env=self.axis_env, return_shape=True)(
            dyn_args, dyn_kw, values
        )
        pure.check_traces(f"StatefulFunction({getattr(self.fun, '__name__', 'fun')})")
        avals = tuple(jax.tree.map(_aval, v) for v in values)
        return _Compiled(jaxpr, out_shapes, d, avals)

    def _by_cache(self, cache_key: Hashable) -> _Compiled:
        try:
            return self._cache[cache_key]
        except KeyError:
            raise ValueError(
                "StatefulFunction: no trace for this cache key; call make_jaxpr(*args) first"
            ) from None

    def _get(self, args: tuple[Any, ...], kwargs: dict[str, Any], compile_if_miss: bool) -> Any:
        key = self.get_arg_cache_key(*args, **kwargs)
        if compile_if_miss:
            return self._compiled(key, args, kwargs)
        return self._by_cache(key)

    # -- tracing and inspection --------------------------------------------------------------

    def make_jaxpr(self, *args: Any, **kwargs: Any) -> StatefulFunction:
        """Trace the call (once per signature, again if a State changed shape); returns self."""
        self._get(args, kwargs, True)
        return self

    def get_jaxpr_by_cache(self, cache_key: Hashable) -> Any:
        return self._by_cache(cache_key).jaxpr

    def get_jaxpr(self, *args: Any, compile_if_miss: bool = True, **kwargs: Any) -> Any:
        """The ``ClosedJaxpr`` of this call."""
        return self._get(args, kwargs, compile_if_miss).jaxpr

    def get_out_shapes_by_cache(self, cache_key: Hashable) -> Any:
        return self._by_cache(cache_key).out_shapes

    def get_out_shapes(self, *args: Any, compile_if_miss: bool = True, **kwargs: Any) -> Any:
        """``(result shapes, new State value shapes)`` as ``jax.ShapeDtypeStruct`` trees."""
        return self._get(args, kwargs, compile_if_miss).out_shapes

    def get_out_treedef_by_cache(self, cache_key: Hashable) -> Any:
        return self._by_cache(cache_key).out_treedef

    def get_out_treedef(self, *args: Any, compile_if_miss: bool = True, **kwargs: Any) -> Any:
        return self._get(args, kwargs, compile_if_miss).out_treedef

    def get_state_trace_by_cache(self, cache_key: Hashable) -> StateTrace:
        return self._by_cache(cache_key).state_trace

    def get_state_trace(
        self, *args: Any, compile_if_miss: bool = True, **kwargs: Any
    ) -> StateTrace:
        """The States the call touches and which it writes (:class:`StateTrace`)."""
        return self._get(args, kwargs, compile_if_miss).state_trace

    def get_states_by_cache(self, cache_key: Hashable) -> tuple[State, ...]:
        return tuple(self._by_cache(cache_key).state_trace.states)

    def get_states(
        self, *args: Any, compile_if_miss: bool = True, **kwargs: Any
    ) -> tuple[State, ...]:
        """Every State the call reads or writes, in order of first use."""
        return tuple(self._get(args, kwargs, compile_if_miss).state_trace.states)

    def get_read_states_by_cache(self, cache_key: Hashable) -> tuple[State, ...]:
        return self._by_cache(cache_key).state_trace.get_read_states()  # type: ignore[return-value]

    def get_read_states(
        self, *args: Any, compile_if_miss: bool = True, **kwargs: Any
    ) -> tuple[State, ...]:
        """The States the call only reads (not written)."""
        trace = self._get(args, kwargs, compile_if_miss).state_trace
        return trace.get_read_states()  # type: ignore[no-any-return]

    def get_write_states_by_cache(self, cache_key: Hashable) -> tuple[State, ...]:
        return self._by_cache(cache_key).state_trace.get_write_states()  # type: ignore[return-value]

    def get_write_states(
        self, *args: Any, compile_if_miss: bool = True, **kwargs: Any
    ) -> tuple[State, ...]:
        """The States the call writes."""
        trace = self._get(args, kwargs, compile_if_miss).state_trace
        return trace.get_write_states()  # type: ignore[no-any-return]

    def clear_cache(self) -> None:
        """Forget every trace; the next use traces again."""
        with self._lock:
            self._cache.clear()

    def get_cache_stats(self) -> dict[str, Any]:
        return {"compilation_cache": {"size": len(self._cache)}}

    def validate_states(self, cache_key: Hashable) -> bool:
        """Whether the States of that trace still have the shapes and dtypes it was made for.

        Raises:
            ValueError: one changed (name and shapes in the message).
        """
        entry = self._by_cache(cache_key)
        for s, a in zip(entry.discovery.states, entry.avals, strict=True):
            now = jax.tree.map(_aval, s.value)
            if now != a:
                raise ValueError(
                    f"StatefulFunction: State {s.name or type(s).__name__} changed from {a} to "
                    f"{now} since it was traced; make_jaxpr traces it again"
                )
        return True

    def validate_all_states(self) -> dict[Any, bool]:
        results = {}
        for key in list(self._cache):
            try:
                results[key] = self.validate_states(key)
            except ValueError:
                results[key] = False
        return results

    # -- calling -----------------------------------------------------------------------------

    def jaxpr_call(self, state_vals: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        """Run the traced program on ``state_vals`` (one per State of :meth:`get_states`).

        Returns:
            ``(new_state_vals, out)``: one entry per State (None for a State not written,
            when ``return_only_write``), and the result. No State is assigned.
        """
        entry = self._get(args, kwargs, True)
        states = entry.discovery.states
        if len(state_vals) != len(states):
            raise ValueError(
                f"StatefulFunction.jaxpr_call: expected {len(states)} state value(s) (for "
                f"{[s.name for s in states]}), got {len(state_vals)}"
            )
        missing = [i for i, v in enumerate(state_vals) if v is None]
        if missing:
            raise ValueError(
                f"StatefulFunction.jaxpr_call: state_vals has None at {missing}; every State "
                "needs a value"
            )
        dyn_args, dyn_kw, _, _ = self._split(args, kwargs)
        flat = jax.tree.leaves((dyn_args, dyn_kw, list(state_vals)))
        out, new_state_vals = entry.out_treedef.unflatten(entry.run(*flat))
        return new_state_vals, out

    def debug_call(self, state_vals: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        """:meth:`jaxpr_call` (the same program; kept for brainstate's name)."""
        return self.jaxpr_call(state_vals, *args, **kwargs)

    def jaxpr_call_auto(self, *args: Any, **kwargs: Any) -> Any:
        """Run the traced program on the States' current values and assign the written ones."""
        entry = self._get(args, kwargs, True)
        d = entry.discovery
        new, out = self.jaxpr_call(read_values(d), *args, **kwargs)
        index = {s: i for i, s in enumerate(d.states)}
        write_values(d.writes, [new[index[s]] for s in d.writes])
        return out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.jaxpr_call_auto(*args, **kwargs)
