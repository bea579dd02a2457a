"""brainstate's delay system: ``Delay`` (a ring buffer of a signal's recent past), ``DelayAccess``,
``StateWithDelay`` (the history of one State of a module), the ``DelayState`` that holds the
buffer and the ``InterpolationRegistry`` used to read between steps.

The buffer has ``max_length`` slots along a leading axis; a scalar ``write_ptr`` State counts the
``update`` calls. ``update(x)`` writes ``x`` to slot ``write_ptr % max_length`` (with
``update_every``: one slot per ``update_every_step`` calls) and advances the pointer, so the
newest value is at slot ``write_ptr - 1`` and the value ``k`` steps older at ``write_ptr - 1 - k``
(mod ``max_length``). Both are ordinary States: eagerly, under ``jit``, ``for_loop`` and ``grad``
the facade carries them like any other, and reads never differentiate through the indices.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import environ
from .. import transform as _transform
from .._state import DelayState, ShortTermState, State
from ..graph import Node
from ._module import Module
from ._order import call_order

u: Any
try:
    import brainunit as u
except ImportError:  # brainunit is optional (the ``units`` extra): plain numbers only
    u = None

__all__ = ["Delay", "DelayAccess", "DelayState", "InterpolationRegistry", "StateWithDelay"]

# brainunit's math (untyped for mypy), or jax.numpy's for plain numbers without brainunit
_umath: Any = jnp if u is None else u.math

_ROTATION = "rotation"
_CONCAT = "concat"
# The old ``interp_method`` names and the ``interpolation`` names they stand for.
_OLD_NAMES = {"linear_interp": "linear", "round": "nearest"}
# A ratio this close to an integer counts as that integer: ``1.1 / 0.1`` is ``11.000000000000002``
# in floating point, and a 1.1 ms delay at dt = 0.1 ms is 11 steps, not 12.
_RTOL = 1e-6


# ---------------------------------------------------------------------------------------------
# interpolation between buffer slots


def _taps(history: Any, indices: tuple, pos: Any, max_length: int, offsets: tuple) -> tuple:
    """The fractional part of ``pos`` and, per offset ``k``, the slot ``floor(pos) + k``'s data."""
    base = jnp.floor(pos)
    frac = pos - base
    base = base.astype(jnp.int32)
    out = []
    for k in offsets:
        idx = ((base + k) % max_length, *indices)
        out.append(jax.tree.map(lambda h, idx=idx: h[idx], history))
    return frac, out


def _combine(weights: list, values: list) -> Any:
    """``sum_i weights[i] * values[i]`` leaf by leaf."""

    def leaf(*xs: Any) -> Any:
        return sum(w * x for w, x in zip(weights, xs, strict=True))

    return jax.tree.map(leaf, *values)


def _nearest(history: Any, indices: tuple, pos: Any, max_length: int) -> Any:
    idx = (jnp.round(pos).astype(jnp.int32) % max_length, *indices)
    return jax.tree.map(lambda h: h[idx], history)


def _linear(history: Any, indices: tuple, pos: Any, max_length: int) -> Any:
    t, (a, b) = _taps(history, indices, pos, max_length, (0, 1))
    return _combine([1 - t, t], [a, b])


def _cubic(history: Any, indices: tuple, pos: Any, max_length: int) -> Any:
    # Catmull-Rom spline through slots floor(pos) - 1 .. floor(pos) + 2.
    t, vals = _taps(history, indices, pos, max_length, (-1, 0, 1, 2))
    w = [
        0.5 * (-(t**3) + 2 * t**2 - t),
        0.5 * (3 * t**3 - 5 * t**2 + 2),
        0.5 * (-3 * t**3 + 4 * t**2 + t),
        0.5 * (t**3 - t**2),
    ]
    return _combine(w, vals)


def _hermite(history: Any, indices: tuple, pos: Any, max_length: int) -> Any:
    # Cubic Hermite between slots p0 = floor(pos) and p1 = p0 + 1, with the tangents estimated
    # by central differences: m0 = (v1 - v_{-1}) / 2, m1 = (v2 - v0) / 2.
    t, (vm, v0, v1, v2) = _taps(history, indices, pos, max_length, (-1, 0, 1, 2))
    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
    m0 = jax.tree.map(lambda a, b: 0.5 * (a - b), v1, vm)
    m1 = jax.tree.map(lambda a, b: 0.5 * (a - b), v2, v0)
    return _combine([h00, h10, h01, h11], [v0, m0, v1, m1])


def _lagrange(nodes: tuple) -> Callable:
    """Polynomial interpolation through the slots ``floor(pos) + k`` for ``k`` in ``nodes``."""

    def interpolate(history: Any, indices: tuple, pos: Any, max_length: int) -> Any:
        t, vals = _taps(history, indices, pos, max_length, nodes)
        weights = []
        for k in nodes:
            w = 1.0
            for j in nodes:
                if j != k:
                    w = w * (t - j) / (k - j)
            weights.append(w)
        return _combine(weights, vals)

    return interpolate


class InterpolationRegistry:
    """The named ways :meth:`Delay.retrieve_at_time` reads between two buffer slots.

    A method is called as ``method(history, indices, pos, max_length)``: ``history`` the buffer
    (a pytree of arrays with the slot axis first), ``indices`` extra indices into the data,
    ``pos`` the fractional slot to read (slots count forward in time, modulo ``max_length``).
    Built in: ``'nearest'`` (alias ``'round'``), ``'linear'`` (alias ``'linear_interp'``),
    ``'cubic'`` (Catmull-Rom), ``'hermite'``, ``'polynomial2'`` and ``'polynomial3'`` (Lagrange
    through 3 or 4 slots).

    Example:
        >>> import facade
        >>> facade.nn.InterpolationRegistry.list_methods()[:4]
        ['nearest', 'round', 'linear', 'linear_interp']
    """

    _methods: dict[str, Callable] = {}

    @classmethod
    def register(cls, name: str, method: Callable) -> None:
        """Make ``method`` available as ``interpolation=name``."""
        cls._methods[name] = method

    @classmethod
    def get(cls, name: str) -> Callable:
        """The method registered as ``name``; ``ValueError`` listing the known ones if none."""
        if name not in cls._methods:
            raise ValueError(
                f"Unknown interpolation method: {name}. Available methods: {cls.list_methods()}"
            )
        return cls._methods[name]

    @classmethod
    def list_methods(cls) -> list[str]:
        """The registered names, in order of registration."""
        return list(cls._methods)


for _name, _method in [
    ("nearest", _nearest),
    ("round", _nearest),
    ("linear", _linear),
    ("linear_interp", _linear),
    ("cubic", _cubic),
    ("hermite", _hermite),
    ("polynomial2", _lagrange((-1, 0, 1))),
    ("polynomial3", _lagrange((-1, 0, 1, 2))),
]:
    InterpolationRegistry.register(_name, _method)


# ---------------------------------------------------------------------------------------------
# helpers


def _is_traced(x: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x))


def _ratio(num: Any, den: Any, what: str) -> Any:
    """``num / den`` as a plain number or array; ``ValueError`` unless it is dimensionless."""
    r = num / den
    if u is None:
        return r
    if u.get_dim(r) != u.DIMENSIONLESS:
        raise ValueError(
            f"{what} should have the unit of time of dt; got {u.get_unit(num)} over "
            f"dt's {u.get_unit(den)}."
        )
    return u.get_magnitude(r)


def _whole_steps(ratio: Any, up: bool) -> Any:
    """``ratio`` rounded up (or down), except that a ratio within ``_RTOL`` of an integer is that
    integer, so that floating-point noise in ``time / dt`` adds or drops no step."""
    if _is_traced(ratio):
        return jnp.ceil(ratio) if up else jnp.floor(ratio)
    r = np.asarray(ratio, dtype=np.float64)
    near = np.round(r)
    close = np.abs(r - near) <= _RTOL * np.maximum(1.0, np.abs(r))
    return np.where(close, near, np.ceil(r) if up else np.floor(r))


def _delay_steps(time: Any, slot_dt: Any) -> tuple[Any, Any]:
    """``(time, steps)``: the delay time and the whole number of slots it spans (rounded up)."""
    if time is None:
        return 0.0 * slot_dt, 0
    ratio = _ratio(time, slot_dt, "The delay time")
    if not _is_traced(ratio) and np.any(np.asarray(ratio) < 0):
        raise ValueError(f"A delay time must not be negative; got {time}.")
    steps = _whole_steps(ratio, up=True)
    return time, jnp.asarray(steps, dtype=environ.ditype())


def _strip(tree: Any) -> tuple[Any, Any]:
    """``tree`` with every Quantity replaced by its mantissa, and its units: the same tree with
    a ``Unit`` (or None for a plain leaf) per leaf; a single array gives a single unit."""
    if u is None:
        return tree, jax.tree.map(lambda _: None, tree)
    leaves, treedef = jax.tree.flatten(tree, is_leaf=_umath.is_quantity)
    units = [u.get_unit(x) if _umath.is_quantity(x) else None for x in leaves]
    plain = [u.get_mantissa(x) if _umath.is_quantity(x) else x for x in leaves]
    return jax.tree.unflatten(treedef, plain), jax.tree.unflatten(treedef, units)


def _unit_list(units: Any) -> list:
    if u is None:
        return jax.tree.leaves(units, is_leaf=lambda x: x is None)
    return jax.tree.leaves(units, is_leaf=lambda x: x is None or isinstance(x, u.Unit))


def _in_units(tree: Any, units: Any) -> Any:
    """``tree``'s numbers in ``units`` (a plain leaf is taken to be in its unit already)."""
    if u is None:
        return tree
    leaves, treedef = jax.tree.flatten(tree, is_leaf=_umath.is_quantity)
    out = [
        x.to_decimal(unit) if _umath.is_quantity(x) and unit is not None else u.get_mantissa(x)
        for x, unit in zip(leaves, _unit_list(units), strict=True)
    ]
    return jax.tree.unflatten(treedef, out)


def _has_units(units: Any) -> bool:
    return any(unit is not None for unit in _unit_list(units))


class _ArgumentError(TypeError, AssertionError):
    """A wrong argument: a ``TypeError``, and an ``AssertionError`` as brainstate raises."""


# ---------------------------------------------------------------------------------------------
# Delay


class DelayAccess(Node):
    """A callable that reads one registered entry of a :class:`Delay`.

    Building it registers ``entry`` on ``delay`` with ``*time`` (the delay time, then optional
    integer indices); calling it returns ``delay.at(entry)``.

    Args:
        delay: the Delay to read.
        *time: the delay time and optional indices, as for :meth:`Delay.register_entry`.
        entry: the entry's name.

    Raises:
        TypeError: ``delay`` is not a :class:`Delay`.
        KeyError: ``entry`` is already registered on ``delay``.
    """

    def __init__(self, delay: Delay, *time: Any, entry: str):
        super().__init__()
        if not isinstance(delay, Delay):
            raise _ArgumentError(f"DelayAccess needs a Delay, got {type(delay).__name__}.")
        self.delay = delay
        self._delay_entry = entry
        self.delay_info = delay.register_entry(entry, *time)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.delay.at(self._delay_entry)


class Delay(Module):
    """The recent history of a signal (a pytree of arrays), readable some steps or time back.

    ``init_state`` allocates the buffer (a :class:`DelayState` named ``history``, with
    ``max_length`` slots in front of each leaf's shape, and the batch axis after it) and a
    scalar ``write_ptr`` State; ``update(x)`` stores ``x`` as the newest entry. A read ``k``
    steps back returns what ``update`` got ``k`` calls ago (``k = 0``: the newest); before
    that many calls it returns the initial data ``init``.

    ``max_length`` is ``ceil(time / dt) + 1`` and grows as longer delays are registered
    (:meth:`register_delay`, :meth:`register_entry`, :meth:`access`) before ``init_state``.

    Args:
        target_info: a pytree of arrays (or ``jax.ShapeDtypeStruct``) giving the shape and
            dtype of one entry; brainunit Quantities set the unit of the values read back.
        time: the longest delay, in the unit of ``environ.get_dt()``; None: no delay yet.
        init: the data before the first update: a number or array (broadcast), a callable
            ``init(shape, dtype=...)``, or None (zeros).
        entries: ``{name: time}`` or ``{name: (time, *indices)}`` entries to register.
        interpolation: how :meth:`retrieve_at_time` reads between steps: a name in
            :class:`InterpolationRegistry` or a callable of the same form. None: from
            ``interp_method``.
        take_aware_unit: record the unit of the first value given to ``update`` and put it
            back on the values read.
        update_every: store one entry per this much time (a multiple of dt) instead of every
            call; the other calls leave the buffer alone.
        delay_method: ``'rotation'`` or ``'concat'``; both give the same ring buffer
            (``'concat'`` warns that it is deprecated, as brainstate does).
        interp_method: the older name of ``interpolation``: ``'linear_interp'`` or ``'round'``.

    Raises:
        ValueError: an unknown interpolation name, a negative delay, a time without dt's
            unit, ``update_every`` shorter than dt.
        TypeError: ``init`` or ``interpolation`` of the wrong kind.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> with facade.environ.context(dt=0.1):
        ...     delay = facade.nn.Delay(jnp.zeros(2), time=0.2, init=-1.0)
        ...     delay.init_state()
        ...     for i in range(4):
        ...         delay.update(jnp.full(2, float(i)))
        ...     print(delay.max_length, delay.retrieve_at_step(0), delay.retrieve_at_step(2))
        3 [3. 3.] [1. 1.]
    """

    max_time: Any
    max_length: int
    history: DelayState
    write_ptr: ShortTermState

    def __init__(
        self,
        target_info: Any,
        time: Any = None,
        init: Any = None,
        entries: dict | None = None,
        interpolation: str | Callable | None = None,
        take_aware_unit: bool = False,
        update_every: Any = None,
        delay_method: str | None = _ROTATION,
        interp_method: str = "linear_interp",
    ):
        super().__init__()
        self._unit: Any = None
        self.target_info = None if target_info is None else self._describe(target_info)

        if delay_method == _CONCAT:
            warnings.warn(
                "delay_method='concat' is deprecated: every Delay is a ring buffer ('rotation'), "
                "which gives the same values.",
                DeprecationWarning,
                stacklevel=2,
            )
        elif delay_method not in (None, _ROTATION):
            raise ValueError(f"delay_method must be 'rotation' or 'concat', got {delay_method!r}")
        self.delay_method = _ROTATION

        if interpolation is None:
            interpolation = _OLD_NAMES.get(interp_method, interp_method)
        if isinstance(interpolation, str):
            InterpolationRegistry.get(interpolation)  # ValueError if unknown
        elif not callable(interpolation):
            raise TypeError(f"interpolation must be str or callable, got {type(interpolation)}")
        self.interp_method = interpolation

        if init is not None and not isinstance(init, numbers.Number | jax.Array | np.ndarray):
            if not callable(init):
                raise TypeError(f"init should be Array, Callable, or None. But got {init}")
        self._init = init
        self.take_aware_unit = take_aware_unit

        dt = environ.get_dt()
        if update_every is None:
            self.update_every = None
            self.update_every_step = 1
        else:
            ratio = _ratio(update_every, dt, "update_every")
            steps = int(_whole_steps(ratio, up=False))
            if steps < 1:
                raise ValueError(f"update_every must be >= dt ({dt}), got {update_every}")
            self.update_every = update_every
            self.update_every_step = steps

        self.max_time, steps = _delay_steps(time, self._slot_dt())
        self.max_length = int(np.max(np.asarray(steps))) + 1

        self._registered_entries: dict[str, Any] = {}
        for entry, spec in (entries or {}).items():
            if isinstance(spec, tuple | list):
                self.register_entry(entry, *spec)
            else:
                self.register_entry(entry, spec)

    def _describe(self, target: Any) -> Any:
        plain, units = _strip(target)
        if _has_units(units):
            self._unit = units
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), plain)

    def _slot_dt(self) -> Any:
        """The time between two buffer slots: dt, or dt times ``update_every_step``."""
        return environ.get_dt() * self.update_every_step

    def _initial(self, leaf: Any, batch_size: int | None) -> Any:
        shape = (self.max_length, *(() if batch_size is None else (batch_size,)), *leaf.shape)
        if self._init is None:
            return jnp.zeros(shape, leaf.dtype)
        if callable(self._init):
            return jnp.asarray(self._init(shape, dtype=leaf.dtype))
        init = self._init if u is None else u.get_mantissa(self._init)
        return jnp.broadcast_to(jnp.asarray(init, leaf.dtype), shape)

    def _fresh(self, batch_size: int | None) -> Any:
        if self.target_info is None:
            raise ValueError(f"{type(self).__name__} has no target_info to build its buffer from.")
        return jax.tree.map(lambda a: self._initial(a, batch_size), self.target_info)

    @call_order(3)
    def init_state(self, batch_size: int | None = None, **kwargs: Any) -> None:
        """Create the buffer (``batch_size`` after the slot axis) and a zero write pointer."""
        # One pointer for every batch element: they are all updated together.
        self.write_ptr = ShortTermState(jnp.array(0, dtype=environ.ditype()))
        self.history = DelayState(self._fresh(batch_size))

    def reset_state(self, batch_size: int | None = None, **kwargs: Any) -> None:
        """Refill the buffer with the initial data and set the write pointer back to 0."""
        self.write_ptr.value = jnp.array(0, dtype=environ.ditype())
        self.history.value = self._fresh(batch_size)

    # -- registration ---------------------------------------------------------------------------

    def register_delay(self, *time_and_idx: Any) -> tuple | None:
        """Make room for a delay of ``time_and_idx[0]`` (a scalar or a 1-d array of times).

        Returns ``(steps, *indices)``, the delay in whole steps (rounded up) and the integer
        indices given after the time, or None if the time is None. ``max_length`` and
        ``max_time`` grow to fit; register before ``init_state`` (a read after a longer delay
        was registered on a built buffer raises).
        """
        if not time_and_idx:
            raise ValueError("register_delay: give at least a delay time.")
        for idx in time_and_idx[1:]:
            dtype = jnp.result_type(idx) if u is None else _umath.get_dtype(idx)
            if not jnp.issubdtype(dtype, jnp.integer):
                raise TypeError(f"A delay index must be integer; got {idx}.")
        if time_and_idx[0] is None:
            return None
        time, steps = _delay_steps(time_and_idx[0], self._slot_dt())
        self.max_time = _umath.maximum(self.max_time, _umath.max(time))
        self.max_length = max(self.max_length, int(np.max(np.asarray(steps))) + 1)
        return (steps, *time_and_idx[1:])

    def register_entry(self, entry: str, *time_and_idx: Any) -> tuple | None:
        """Register ``entry`` (read later with :meth:`at`) at a delay of ``time_and_idx``.

        Raises:
            KeyError: ``entry`` is already registered.
        """
        if entry in self._registered_entries:
            raise KeyError(
                f"Entry {entry} has been registered (with delay {self._registered_entries[entry]});"
                f" use another name for the delay {time_and_idx}."
            )
        info = self.register_delay(*time_and_idx)
        self._registered_entries[entry] = info
        return info

    def access(self, entry: str, *time_and_idx: Any) -> DelayAccess:
        """A :class:`DelayAccess` registering ``entry`` at ``time_and_idx`` and reading it."""
        return DelayAccess(self, *time_and_idx, entry=entry)

    def at(self, entry: str) -> Any:
        """The data at a registered entry's delay.

        Raises:
            KeyError: no such entry.
        """
        if not isinstance(entry, str):
            raise _ArgumentError(
                f"entry should be a string naming a registered entry, got {entry!r}"
            )
        if entry not in self._registered_entries:
            raise KeyError(f'Does not find delay entry "{entry}".')
        info = self._registered_entries[entry]
        return self.retrieve_at_step(*((0,) if info is None else info))

    # -- reading --------------------------------------------------------------------------------

    def _check_built(self) -> None:
        history = getattr(self, "history", None)
        if history is None:
            raise ValueError(f"{self._what()}: call init_state() before using the delay.")
        length = jax.tree.leaves(history.value)[0].shape[0]
        if length != self.max_length:
            raise ValueError(
                f"{self._what()}: a delay of {self.max_length - 1} steps was registered after "
                f"init_state built a buffer for {length - 1}; call init_state() again."
            )

    def _what(self) -> str:
        return f"{type(self).__name__} (history {self.max_length} slots)"

    def _check_steps(self, steps: Any) -> None:
        """Reject delays outside ``[0, max_length - 1]``: the ring would wrap around to wrong
        data. At once for a concrete delay; for a traced one only with ``jit_error_check``."""
        top = self.max_length - 1

        def fail(bad: Any) -> None:
            raise ValueError(
                f"{self._what()}: the delay must be within [0, {top}] steps; got {bad}. "
                "Register the longer delay (or give a longer time) before init_state."
            )

        if not _is_traced(steps):
            arr = np.asarray(steps)
            if np.any(arr < 0) or np.any(arr > top):
                fail(arr)
        elif environ.get("jit_error_check", False):
            _transform.jit_error_if(jnp.any((steps < 0) | (steps > top)), fail, steps)

    def _newest_slot(self) -> Any:
        return (self.write_ptr.value - 1) // self.update_every_step

    def _with_units(self, data: Any) -> Any:
        if self._unit is None or u is None:
            return data
        leaves, treedef = jax.tree.flatten(data)
        out = [
            x if unit is None else u.maybe_decimal(u.Quantity(x, unit=unit))
            for x, unit in zip(leaves, _unit_list(self._unit), strict=True)
        ]
        return jax.tree.unflatten(treedef, out)

    def retrieve_at_step(self, delay_step: Any, *indices: Any) -> Any:
        """The data ``delay_step`` steps back (0: the newest), indexed by ``indices``.

        ``delay_step`` may be an integer array (one delay per element), with matching
        ``indices``: ``retrieve_at_step(jnp.array([0, 2]), jnp.arange(2))``.

        Raises:
            ValueError: the buffer is not built, or the delay is outside
                ``[0, max_length - 1]`` (checked when tracing only with ``jit_error_check``).
        """
        self._check_built()
        if delay_step is None:
            raise ValueError("retrieve_at_step: the delay step should be given.")
        steps = jnp.asarray(delay_step) if not _is_traced(delay_step) else delay_step
        if not jnp.issubdtype(steps.dtype, jnp.integer):
            raise ValueError(f'"delay_step" must be integer, but we got {delay_step}')
        self._check_steps(delay_step)
        slot = (self._newest_slot() - steps) % self.max_length
        # The slot is an index, never a quantity to differentiate.
        idx = (jax.lax.stop_gradient(slot.astype(jnp.int32)), *indices)
        return self._with_units(jax.tree.map(lambda h: h[idx], self.history.value))

    def retrieve_at_time(self, delay_time: Any, *indices: Any) -> Any:
        """The data at the absolute time ``delay_time``, the newest entry being at
        ``environ.get('t')``; between two steps, read by the ``interpolation`` method.

        The steps read must be in the buffer: with ``'linear'`` both steps around the time,
        with ``'nearest'`` the nearest one, with the other methods the time itself.

        Raises:
            KeyError: ``t`` (or ``dt``) is not set in ``environ``.
            ValueError: the time is later than ``t``, or a step it needs is older than the
                buffer (checked when tracing only with ``jit_error_check``).
        """
        self._check_built()
        if delay_time is None:
            raise ValueError("retrieve_at_time: the delay time should be given.")
        now = environ.get("t", desc="The current time.")
        back = _ratio(now - delay_time, self._slot_dt(), "The delay time")
        # Floating-point noise in ``t - time`` must not move a read to the next step.
        near = jnp.round(back)
        back = jnp.where(jnp.abs(back - near) <= _RTOL * jnp.maximum(1.0, near), near, back)
        method = self.interp_method
        direct = method in ("nearest", "round", "linear", "linear_interp")
        self._check_back(back, now, delay_time, upper=not direct)
        back = jnp.maximum(back, 0)
        if method in ("nearest", "round"):
            return self.retrieve_at_step(jnp.round(back).astype(jnp.int32), *indices)
        if method in ("linear", "linear_interp"):
            lo = self.retrieve_at_step(jnp.floor(back).astype(jnp.int32), *indices)
            hi = self.retrieve_at_step(jnp.ceil(back).astype(jnp.int32), *indices)
            frac = back - jnp.floor(back)
            return jax.tree.map(lambda a, b: a * (1 - frac) + b * frac, lo, hi)
        fun = InterpolationRegistry.get(method) if isinstance(method, str) else method
        pos = self._newest_slot() - back
        data = fun(self.history.value, indices, pos, self.max_length)
        return self._with_units(data)

    def _check_back(self, back: Any, now: Any, when: Any, upper: bool) -> None:
        """``back`` (steps before now) must not be negative (the future) nor, if ``upper``,
        beyond the buffer; the direct methods check the steps they read instead."""
        top = self.max_length - 1

        def fail(t_now: Any, t_when: Any) -> None:
            raise ValueError(
                f"{self._what()}: the time read must be within {top} steps before the current "
                f"time {t_now} and not after it; got {t_when}."
            )

        if not _is_traced(back):
            arr = np.asarray(back)
            if np.any(arr < 0) or (upper and np.any(arr > top)):
                fail(now, when)
        elif environ.get("jit_error_check", False):
            bad = jnp.any((back < 0) | ((back > top) & upper))
            _transform.jit_error_if(bad, fail, now, when)

    # -- writing --------------------------------------------------------------------------------

    def update(self, current: Any) -> None:
        """Store ``current`` as the newest entry (with ``update_every``: only on the first call
        of each period) and advance the write pointer."""
        self._check_built()
        plain, units = _strip(current)
        if self.take_aware_unit and self._unit is None and _has_units(units):
            self._unit = units
        elif self._unit is not None:
            # Store numbers in the recorded unit so that reads put the right unit back.
            plain = _in_units(current, self._unit)
        ptr = self.write_ptr.value
        slot = jax.lax.stop_gradient(ptr // self.update_every_step)
        old = self.history.value
        new = jax.tree.map(lambda h, v: h.at[slot].set(v), old, plain)
        if self.update_every_step > 1:
            due = ptr % self.update_every_step == 0
            new = jax.tree.map(lambda n, o: jnp.where(due, n, o), new, old)
        self.history.value = new
        self.write_ptr.value = (ptr + 1) % (self.max_length * self.update_every_step)


class StateWithDelay(Delay):
    """A :class:`Delay` of the State ``target.<item>``: ``update()`` stores its current value.

    Built by ``Dynamics.prefetch_delay`` / ``Prefetch.delay.at`` and run as an after-update of
    the module, so the history follows the State step by step. ``init_state`` takes the shape
    and dtype from the State, batch axis included (so the module's own ``init_state`` must
    create it first, which the ``call_order`` of 3 ensures under ``init_all_states``).

    Args:
        target: the module holding the State.
        item: the State's attribute name.
        init: the data before the first update, as for :class:`Delay`.
        interpolation: as for :class:`Delay` (default ``'round'``).
        **kwargs: the other :class:`Delay` arguments (``time``, ``update_every``, ...).

    Raises:
        TypeError: (when used) ``target.<item>`` is not a State.
    """

    def __init__(
        self,
        target: Any,
        item: str,
        init: Any = None,
        interpolation: str | Callable | None = "round",
        **kwargs: Any,
    ):
        super().__init__(None, init=init, interpolation=interpolation, **kwargs)
        self._target = target
        self._target_term = item

    @property
    def state(self) -> State:
        """The State whose history this holds."""
        found = getattr(self._target, self._target_term, None)
        if not isinstance(found, State):
            raise TypeError(
                f'The term "{self._target_term}" in the module "{self._target}" is not a State.'
            )
        return found

    @call_order(3)
    def init_state(self, batch_size: int | None = None, **kwargs: Any) -> None:
        """Build the buffer in the State's current shape, which already has any batch axis
        (brainstate 0.5.4 adds ``batch_size`` a second time)."""
        self.target_info = self._describe(self.state.value)
        super().init_state(None)

    def reset_state(self, batch_size: int | None = None, **kwargs: Any) -> None:
        """Refill the buffer in the State's current shape and set the write pointer back."""
        self.target_info = self._describe(self.state.value)
        super().reset_state(None)

    def update(self, *args: Any) -> None:
        """Store the State's current value (any arguments are ignored)."""
        super().update(self.state.value)
