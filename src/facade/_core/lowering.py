"""One compiled program per call signature of a stateful function, and the per-call path.

A transform hands the :class:`Lowering` a ``lower(pure) -> program`` function, where ``pure`` is
the bridge's pure function of the call (``_bridge.Pure``) and ``program(state_values, *args,
**kwargs) -> (result, written_values)`` is what gets compiled with ``jax.jit``. Per call:

1. find the signature's entry (tree structure and static values of the arguments; a call of
   plain arrays and numbers is keyed by its arity alone);
2. on a miss, assume the states of the last signature (or the ``first`` states, e.g. the
   grad_states), build the program and trace it; the trace records the states it really
   touched, and a wrong assumption is rebuilt once from that record (the trace completes
   either way: JAX 0.10 never frees an aborted trace that captured array constants);
3. read the states' values, call the compiled program, assign the written values.

A new shape of a known signature retraces inside ``jax.jit``; if that trace touches other
states, the signature is keyed by shapes from then on, each with its own states, so
alternating shapes never rebuild each other's programs.

Entries hold their states and the function by weak reference: a lowering found again through
``_sites`` never keeps a model alive. If a state of an entry has died, the function cannot
reach it any more and the entry is lowered again.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .bridge import (
    DeadState,
    Discovery,
    Pure,
    Signature,
    WeakDiscovery,
    alive,
    shared_discoveries,
)
from .._state import State, _local, active_frames, is_abstract, peek

Program = Callable[..., tuple[Any, Sequence[Any]]]
Lower = Callable[[Pure], Program]

# Leaves that are dynamic and hold nothing static: a call made only of these needs no signature.
PLAIN_TYPES = frozenset({type(jnp.zeros(())), np.ndarray, float, int, complex, bool})


def _weak(obj: Any) -> Callable[[], Any]:
    try:
        return weakref.ref(obj)
    except TypeError:  # not weakly referenceable (rare for a callable): held
        return lambda: obj


def _dead() -> None:
    return None


class Entry:
    """One call signature, lowered: its states (weakly), its pure function and program."""

    __slots__ = ("refs", "write_refs", "read_mask", "pure", "compiled", "variants")

    def __init__(self, d: Discovery, pure: Pure, compiled: Any):
        self.refs = tuple(weakref.ref(s) for s in d.states)
        self.write_refs = tuple(weakref.ref(s) for s in d.writes)
        self.read_mask = tuple(s in d.reads for s in d.states)
        self.pure, self.compiled = pure, compiled
        # Set once a new shape of this signature touched other states: entries by shapes.
        self.variants: dict[Any, Entry] | None = None

    def strong(self) -> Discovery:
        """The discovery with live states (raises ``DeadState`` if one has died)."""
        states, writes = alive(self.refs), alive(self.write_refs)
        return Discovery(
            states, writes, [s for s, m in zip(states, self.read_mask, strict=True) if m]
        )

    def values(self, nested: bool) -> list[Any]:
        if not nested:
            return [r()._value for r in self.refs]  # type: ignore[union-attr]
        # Inside an outer facade trace, reads go through ``.value`` so that it records them.
        return [
            r().value if m else peek(r())  # type: ignore[union-attr,arg-type]
            for r, m in zip(self.refs, self.read_mask, strict=True)
        ]


def _avals_key(args_dyn: tuple[Any, ...], kw_dyn: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        (np.shape(x), getattr(x, "dtype", type(x))) for x in jax.tree.leaves((args_dyn, kw_dyn))
    )


class Lowering:
    """The cache of lowered call signatures of one stateful function under one transform.

    Args:
        lower: ``lower(pure) -> program``, the transform (see the module docstring).
        first: states put first in every discovery, in this order (e.g. the grad_states); the
            program finds their values at the front of ``state_values``.
        own_writes: states among ``first`` that the program writes itself, outside the user's
            function (the random key ``fwd_grad`` draws its directions with): always outputs.
        check: ``check(found, first)`` is called with the discovery of every trace; it raises
            to reject the call (nothing is written, the signature is lowered again next time).
        static_argnums, static_argnames: arguments that are static (hashable, in the key).
        jit_kwargs: extra arguments for ``jax.jit`` of the program, given in the user's terms
            (see :func:`program_jit_kwargs`): a function of the number of positional arguments.
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
    ):
        self.lower = lower
        self._first = tuple(weakref.ref(s) for s in first)
        self._own_writes = tuple(weakref.ref(s) for s in own_writes)
        self.check = check
        self.static_argnums = tuple(static_argnums)
        self.static_argnames = frozenset(static_argnames)
        self.jit_kwargs = jit_kwargs
        self.cache: dict[Any, Entry] = {}
        self._fn: Callable[[], Any] = _dead
        # The states the last lowered signature touched: the first guess for a new signature.
        self._guess: Entry | None = None

    # --- the function ------------------------------------------------------------------

    @property
    def fn(self) -> Any:
        fn = self._fn()
        if fn is None:
            raise RuntimeError(
                "the function of this transform was garbage-collected while another thread "
                "was tracing it; call again"
            )
        return fn

    def _call_fn(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def first(self) -> tuple[State, ...]:
        return alive(self._first)

    # --- building entries --------------------------------------------------------------

    def _signature(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Signature:
        nums = frozenset(i % len(args) for i in self.static_argnums if -len(args) <= i < len(args))
        return Signature(args, kwargs, nums, self.static_argnames)

    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Signature | None]:
        """The cache key of a call, and its signature when computing the key needed one.

        The common call, positional arrays or numbers only, is keyed by its arity alone
        (nothing in it is static), which skips flattening the arguments on every call.
        """
        if not kwargs and not self.static_argnums:
            for a in args:
                if type(a) not in PLAIN_TYPES:
                    break
            else:
                return len(args), None
        sig = self._signature(args, kwargs)
        return sig.key, sig

    def _make(self, sig: Signature, d: Discovery) -> Entry:
        d = d.with_writes(alive(self._own_writes))
        pure = Pure(self._call_fn, WeakDiscovery(d), sig, self.first)  # type: ignore[arg-type]
        options = {} if self.jit_kwargs is None else self.jit_kwargs(sig.num_args)
        return Entry(d, pure, jax.jit(self.lower(pure), **options))

    def _traced_entry(
        self,
        sig: Signature,
        guess: Discovery,
        args_dyn: tuple[Any, ...],
        kw_dyn: dict[str, Any],
        nested: bool,
    ) -> Entry:
        """An entry built on ``guess`` and traced for these arguments; rebuilt once if wrong."""
        with shared_discoveries():
            return self._traced_entry_once(sig, guess, args_dyn, kw_dyn, nested)

    def _traced_entry_once(
        self,
        sig: Signature,
        guess: Discovery,
        args_dyn: tuple[Any, ...],
        kw_dyn: dict[str, Any],
        nested: bool,
    ) -> Entry:
        entry = self._make(sig, guess)
        _check_not_abstract(guess.states, entry.values(nested))
        entry.compiled.trace(entry.values(nested), *args_dyn, **kw_dyn)
        found = entry.pure.take_trace()
        if found is not None and guess.covers(found):
            entry.read_mask = tuple(s in found.reads for s in guess.states)
        elif found is not None:
            entry = self._make(sig, found)
            entry.compiled.trace(entry.values(nested), *args_dyn, **kw_dyn)
            again = entry.pure.take_trace()
            if again is not None and not found.covers(again):
                raise RuntimeError(
                    f"{_name(self.fn)!r} touches different states on every trace; facade "
                    "transforms need the same states for the same argument shapes"
                )
            found = again
        if found is not None and self.check is not None:
            self.check(found, self.first())
        return entry

    def _guess_for(self) -> Discovery:
        first = self.first()
        if self._guess is not None:
            try:
                last = self._guess.strong()
            except DeadState:
                self._guess = None
            else:
                rest = [s for s in last.states if s not in set(first)]
                return Discovery((*first, *rest), last.writes, last.reads)
        return Discovery(first, ())

    # --- the call ----------------------------------------------------------------------

    def _prepare(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The entry of a call (lowered and traced if new) and everything its call needs."""
        if self._fn() is not fn:
            self._fn = _weak(fn)
        key, sig = self._key(args, kwargs)
        entry = self.cache.get(key) if key is not None else None
        nested = bool(active_frames())
        if entry is None:
            sig = sig or self._signature(args, kwargs)
            args_dyn, kw_dyn = sig.split(args, kwargs)
            entry = self._new(key, sig, args_dyn, kw_dyn, nested)
        else:
            args_dyn, kw_dyn = (args, kwargs) if sig is None else sig.split(args, kwargs)
            if entry.variants is not None:
                entry = entry.variants.get(_avals_key(args_dyn, kw_dyn), entry)
        try:
            values = entry.values(nested)
        except AttributeError:  # a state of the entry died: the function reaches others now
            sig = sig or self._signature(args, kwargs)
            self.cache.pop(key, None)
            entry = self._new(key, sig, args_dyn, kw_dyn, nested)
            values = entry.values(nested)
        return key, sig, entry, values, args_dyn, kw_dyn, nested

    def prepare(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, list[Any], tuple[Any, ...], dict[str, Any]]:
        """The compiled program of a call and the arguments it takes: ``(compiled, values,
        args, kwargs)``, for ``lower``/``eval_shape``. Nothing runs, nothing is written."""
        _, _, entry, values, args_dyn, kw_dyn, _ = self._prepare(fn, args, kwargs)
        return entry.compiled, values, args_dyn, kw_dyn

    def __call__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        check_result: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` through its program; ``check_result(result)`` may raise
        before any state is written."""
        # The common call, straight through: eager, arrays or numbers only, a known signature.
        entry = None
        if not kwargs and not self.static_argnums and not _local.frames:
            if self._fn() is not fn:  # an equivalent function of the same site (a new lambda)
                self._fn = _weak(fn)
            for a in args:
                if type(a) not in PLAIN_TYPES:
                    break
            else:
                entry = self.cache.get(len(args))
        if entry is None or entry.variants is not None:
            return self._call(fn, args, kwargs, check_result)
        try:
            values = [r()._value for r in entry.refs]  # type: ignore[union-attr]
        except AttributeError:  # a state of the entry died
            return self._call(fn, args, kwargs, check_result)
        result, written = entry.compiled(values, *args)
        if entry.pure.traced or check_result is not None:
            return self._finish(
                len(args), None, entry, result, written, args, kwargs, False, check_result
            )
        if entry.write_refs:
            _check_concrete(entry.write_refs, written, fn)
            for r, v in zip(entry.write_refs, written, strict=True):
                r()._value = v  # type: ignore[union-attr]
        return result

    def _call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        check_result: Callable[[Any], None] | None,
    ) -> Any:
        """The general path of :meth:`__call__`: statics, keywords, nesting, new signatures."""
        key, sig, entry, values, args_dyn, kw_dyn, nested = self._prepare(fn, args, kwargs)
        result, written = entry.compiled(values, *args_dyn, **kw_dyn)
        return self._finish(key, sig, entry, result, written, args, kwargs, nested, check_result)

    def _finish(
        self,
        key: Any,
        sig: Signature | None,
        entry: Entry,
        result: Any,
        written: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        nested: bool,
        check_result: Callable[[Any], None] | None,
    ) -> Any:
        """Check a trace the call made, run ``check_result``, write the states back."""
        found = entry.pure.take_trace()
        if found is not None:
            # ``jax.jit`` traced a new shape: check what that trace touched.
            sig = sig or self._signature(args, kwargs)
            args_dyn, kw_dyn = sig.split(args, kwargs)
            entry, result, written = self._retraced(
                key, sig, entry, found, args_dyn, kw_dyn, nested, result, written
            )
        if check_result is not None:
            check_result(result)
        if entry.write_refs:
            if nested:
                for r, v in zip(entry.write_refs, written, strict=True):
                    r().value = v  # type: ignore[union-attr]
            else:
                _check_concrete(entry.write_refs, written, self.fn)
                for r, v in zip(entry.write_refs, written, strict=True):
                    r()._value = v  # type: ignore[union-attr]
        return result

    def clear(self) -> None:
        """Forget every lowered signature and its compiled programs."""
        for entry in self.cache.values():
            entry.compiled.clear_cache()
        self.cache.clear()
        self._guess = None

    def _new(
        self,
        key: Any,
        sig: Signature,
        args_dyn: tuple[Any, ...],
        kw_dyn: dict[str, Any],
        nested: bool,
    ) -> Entry:
        entry = self._traced_entry(sig, self._guess_for(), args_dyn, kw_dyn, nested)
        self._guess = entry
        if key is not None:
            self.cache[key] = entry
        return entry

    def _retraced(
        self,
        key: Any,
        sig: Signature,
        entry: Entry,
        found: Discovery,
        args_dyn: tuple[Any, ...],
        kw_dyn: dict[str, Any],
        nested: bool,
        result: Any,
        written: Any,
    ) -> tuple[Entry, Any, Any]:
        if entry.strong().covers(found):
            if self.check is not None:
                try:
                    self.check(found, self.first())
                except Exception:
                    self.cache.pop(key, None)  # the next call traces and checks again
                    raise
            return entry, result, written
        # This shape touches other states: its result read stale inputs. From now on this
        # signature is keyed by shapes too; this shape gets an entry of its own.
        variant = self._traced_entry(sig, found, args_dyn, kw_dyn, nested)
        base = self.cache.get(key) if key is not None else None
        if base is not None:
            if base.variants is None:
                base.variants = {}
            base.variants[_avals_key(args_dyn, kw_dyn)] = variant
        result, written = variant.compiled(variant.values(nested), *args_dyn, **kw_dyn)
        variant.pure.take_trace()
        return variant, result, written


def call_program(name: str | None = None) -> Lower:
    """The ``lower`` of a transform that is the call itself (``jit``, eager control flow)."""

    def lower(pure: Pure) -> Program:
        def program(values: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
            return pure(values, *args, **kwargs)

        if name:
            program.__name__ = program.__qualname__ = name
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
    return getattr(fn, "__name__", None) or repr(fn)


_ARRAY_IMPL = type(jnp.zeros(()))


def _check_concrete(refs: Sequence[Callable[[], Any]], values: Sequence[Any], fn: Any) -> None:
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
                f"{_name(fn)!r} writes {r()._describe()} inside a JAX transformation "
                "(jax.jit, jax.vmap, jax.lax.scan, ...) that the facade cannot thread states "
                "through, so its new value would be a tracer. Use the facade's transform "
                "(facade.transform.jit, vmap, for_loop, ...) around the whole computation, or "
                "pass and return the value explicitly."
            )
