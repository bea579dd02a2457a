"""``State``: a mutable box for a pytree of arrays, and the per-thread frames that trace it.

A State's own ``_value`` is only ever a concrete value. While a transform traces a function,
it pushes a :class:`Frame` on this thread's stack: reads look the state up in the frames from
the innermost out (falling back to ``_value``), writes land in the innermost frame, and every
frame records what was read and written. So a trace never puts a tracer into a State, a
failure needs no rollback, and two threads tracing the same model cannot see each other's
tracers.
"""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jax
import numpy as np

ARRAY_TYPES = (jax.Array, np.ndarray, np.generic, float, complex, int, bool)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class Frame:
    """One trace's view of the states: the values they hold in it and what it touched.

    ``reads``, ``writes`` and ``touched`` are insertion-ordered dicts used as ordered sets.
    """

    __slots__ = ("values", "reads", "writes", "touched")

    def __init__(self, values: dict[State, Any] | None = None):
        self.values: dict[State, Any] = {} if values is None else values
        self.reads: dict[State, None] = {}
        self.writes: dict[State, None] = {}
        self.touched: dict[State, None] = {}


class _Local(threading.local):
    def __init__(self) -> None:
        self.frames: list[Frame] = []


_local = _Local()


def active_frames() -> list[Frame]:
    """This thread's frame stack, innermost last (empty outside any facade trace)."""
    return _local.frames


@contextmanager
def frame(values: dict[State, Any] | None = None) -> Iterator[Frame]:
    """Push a new frame for the duration of the block; it is popped even on error."""
    f = Frame(values)
    frames = _local.frames
    frames.append(f)
    try:
        yield f
    finally:
        frames.pop()


def peek(state: State) -> Any:
    """The value ``state`` has in the current context, without recording a read."""
    for f in reversed(_local.frames):
        if state in f.values:
            return f.values[state]
    return state._value


# Runtime type-checking wrappers (e.g. the jaxtyping import hook) sit between a user's call
# and ``State.__init__``; they are not where the state was created.
_WRAPPER_MODULES = ("jaxtyping", "beartype", "typeguard")


def _creation_site() -> str:
    """``file:line`` of the first caller outside this package, for error messages."""
    f: types.FrameType | None = sys._getframe(1)
    while f is not None and (
        os.path.dirname(os.path.abspath(f.f_code.co_filename)).startswith(_PACKAGE_DIR)
        or f.f_code.co_filename.startswith("<@beartype")
        or str(f.f_globals.get("__name__", "")).partition(".")[0] in _WRAPPER_MODULES
    ):
        f = f.f_back
    return "<unknown>" if f is None else f"{f.f_code.co_filename}:{f.f_lineno}"


def check_value(value: Any, owner: str) -> Any:
    """Check that ``value`` is a pytree of arrays (what JAX can trace); return it."""
    if isinstance(value, jax.Array):  # the common case, and the cheap one
        return value
    leaves = jax.tree.leaves(value)
    for leaf in leaves:
        if not isinstance(leaf, ARRAY_TYPES):
            raise TypeError(
                f"{owner}: a State's value must be a pytree of arrays or numbers, got a leaf "
                f"of type {type(leaf).__name__}: {leaf!r}"
            )
    return value


def _holds_tracer(value: Any) -> bool:
    if isinstance(value, jax.core.Tracer):
        return True
    if isinstance(value, jax.Array):
        return False
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(value))


def _summarise(x: Any) -> Any:
    """Small arrays in full, large ones as ``float32[64, 64]``: readable in a terminal."""
    if np.size(x) <= 8:
        return x
    dtype = getattr(x, "dtype", type(x).__name__)
    return f"{dtype}[{', '.join(map(str, np.shape(x)))}]"


class State:
    """A mutable container for a pytree of arrays, tracked by the facade's transforms.

    Args:
        value: the initial value, any pytree of arrays or numbers.
        name: an optional name shown in reprs and error messages.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> s = facade.State(jnp.zeros(2), name="h")
        >>> s.value = s.value + 1.0
        >>> s.value
        Array([1., 1.], dtype=float32)
    """

    # ``lowerings``: compiled one-shot calls (vjp/jvp) kept on the state they differentiate, so
    # they die with it (see ``_autodiff._shared_lowering``).
    __slots__ = ("_value", "name", "source", "metadata", "lowerings", "__weakref__")

    def __init__(self, value: Any, name: str | None = None, **metadata: Any):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"State name must be a str or None, got {type(name).__name__}")
        self.name = name
        self.source = _creation_site()
        self.metadata = metadata
        self.lowerings: Any = None
        self._value = check_value(value, self._describe())

    @property
    def value(self) -> Any:
        frames = _local.frames
        if not frames:
            return self._value
        for f in frames:
            f.reads[self] = None
            f.touched[self] = None
        for f in reversed(frames):
            if self in f.values:
                return f.values[self]
        return self._value

    @value.setter
    def value(self, new: Any) -> None:
        new = check_value(new, self._describe())
        frames = _local.frames
        if not frames:
            if _holds_tracer(new):
                raise TypeError(
                    f"{self._describe()} was assigned a tracer of a JAX transformation "
                    "(jax.jit, jax.vmap, jax.grad, ...) that the facade does not see; the State "
                    "would keep it after the transformation ends. Use the facade's transforms "
                    "(facade.transform.jit, grad, ...), which thread states through, or return "
                    "the value instead of storing it."
                )
            self._value = new
            return
        for f in frames:
            f.writes[self] = None
            f.touched[self] = None
        frames[-1].values[self] = new

    def _describe(self) -> str:
        label = type(self).__name__ + (f" {self.name!r}" if self.name else "")
        return f"{label} (created at {self.source})"

    def __repr__(self) -> str:
        value = jax.tree.map(_summarise, self._value)
        name = f", name={self.name!r}" if self.name else ""
        return f"{type(self).__name__}(value={value}{name})"

    def numel(self) -> int:
        """Number of scalar elements in the value."""
        return sum(int(np.size(x)) for x in jax.tree.leaves(self._value))


class ParamState(State):
    """A trainable parameter."""

    __slots__ = ()


class ShortTermState(State):
    """State that lives for one step or sequence (e.g. a membrane potential)."""

    __slots__ = ()


class LongTermState(State):
    """State kept across steps but not trained (e.g. running statistics)."""

    __slots__ = ()


class HiddenState(ShortTermState):
    """The hidden state of a recurrent model."""

    __slots__ = ()
