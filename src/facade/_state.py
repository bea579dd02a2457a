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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import jax
import numpy as np
from jax._src import core as _jax_core
from jax._src import source_info_util as _source_info
from jax._src.interpreters.partial_eval import DynamicJaxprTrace as _JitTrace

ARRAY_TYPES = (jax.Array, np.ndarray, np.generic, float, complex, int, bool)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def current_trace() -> Any:
    """The JAX trace that operations are bound to right now (an eval trace outside any)."""
    return _jax_core.trace_ctx.trace


class Frame:
    """One trace's view of the states: the values they hold in it and what it touched.

    ``reads`` holds the states whose value *on entry* the trace observed (a read after the
    frame's own write is not one); ``writes`` the states written; ``touched`` both, in order of
    first use; ``created`` the states created while the frame was active (local to the trace,
    never inputs or outputs). All are insertion-ordered dicts used as ordered sets. ``trace`` is
    the JAX trace the frame was pushed in: a write made under another one (the body of a raw
    ``jax.lax.scan``, a ``jax.vmap``) cannot be carried out of it. ``late`` is None, or, in the
    frame of a program ``jax.jit`` traces (``late_trace``), the States made inputs of it while
    it was traced (see :func:`late_input`).
    """

    __slots__ = ("values", "reads", "writes", "touched", "created", "trace", "late", "late_trace")

    def __init__(self, values: dict[State, Any] | None = None):
        self.values: dict[State, Any] = {} if values is None else values
        self.reads: dict[State, None] = {}
        self.writes: dict[State, None] = {}
        self.touched: dict[State, None] = {}
        self.created: dict[State, Any] = {}
        self.trace = current_trace()
        self.late: list[State] | None = None
        self.late_trace: Any = None

    def takes_late_inputs(self, trace: Any) -> None:
        """Let States this frame's function did not expect become inputs of the program that
        ``jax.jit`` traces in ``trace`` (see :func:`late_input`)."""
        if type(trace) is _JitTrace:
            self.late, self.late_trace = [], trace


class _Local(threading.local):
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        # The open ``catch_new_states`` blocks, innermost last: each is told of every State
        # created on this thread while it is open (``facade.compat._catch``).
        self.catchers: list[Any] = []


_local = _Local()

# Set once a State is read inside a raw JAX trace nested in a facade frame (a ``lax.scan``
# body, say). JAX caches the traced body by function identity with the value it closed over,
# so the bridge clears that cache before its next trace (see ``_bridge.fresh_jax_traces``).
raw_nested_reads = [False]


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
    return value_in(state, _local.frames)


def value_in(state: State, frames: Sequence[Frame]) -> Any:
    """The value ``state`` has in the context of ``frames`` (innermost last)."""
    value = _in_frames(state, frames)
    return state._value if value is _OWN else value


_OWN = object()  # ``_in_frames``: no frame gives the State a value, it reads its own


def _in_frames(state: State, frames: Sequence[Frame]) -> Any:
    """The value of the innermost frame holding one for ``state``; else, met first on the way
    out, a frame taking late inputs makes it one of its program's (see :func:`late_input`);
    else ``_OWN``."""
    for f in reversed(frames):
        if state in f.values:
            return f.values[state]
        if f.late is not None:
            value = late_input(state, f)
            return _OWN if value is None else value
    return _OWN


def late_input(state: State, f: Frame) -> Any:
    """Make ``state`` an input of the program ``f``'s trace records, and return its value there.

    A program's first trace guesses which States it touches. A State read that the guess left
    out would otherwise enter the program as a constant (its value at trace time), so the
    program had to be traced again with the State as an input, running the user's Python (and
    its side effects) twice. Instead the State's value becomes a new argument of the jit trace
    at the point of the read; the lowering moves these arguments next to the other States'
    (``lowering.Program.with_late_inputs``) and passes the State's value on every call.
    Returns None when the value cannot be one (abstract, or not all arrays): the read then
    sees the value itself, and the lowering traces again.
    """
    value = state._value
    if is_abstract(value):
        return None
    leaves, tree = jax.tree.flatten(value)
    try:
        avals = [_jax_core.typeof(x) for x in leaves]
    except TypeError:
        return None
    source = _source_info.current()
    args = [f.late_trace.new_arg(aval, source) for aval in avals]
    new = jax.tree.unflatten(tree, args)
    f.values[state] = new
    f.late.append(state)  # type: ignore[union-attr]
    return new


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


def check_value(value: Any, owner: str | State) -> Any:
    """Check that ``value`` is a pytree of arrays (what JAX can trace); return it.

    ``owner`` names the value in errors; a State is described only when one is raised (its
    description is a formatted string, too slow to build on every write).
    """
    if isinstance(value, jax.Array):  # the common case, and the cheap one
        return value
    if isinstance(owner, State):
        owner = owner._describe()
    if value is None:
        raise TypeError(f"{owner}: a State's value must be a pytree of arrays or numbers, got None")
    leaves = jax.tree.leaves(value)
    for leaf in leaves:
        if not isinstance(leaf, ARRAY_TYPES):
            raise TypeError(
                f"{owner}: a State's value must be a pytree of arrays or numbers, got a leaf "
                f"of type {type(leaf).__name__}: {leaf!r}"
            )
        if isinstance(leaf, np.ndarray | np.generic) and leaf.dtype.kind in "OUS":
            # JAX cannot hold objects or strings; refused here, not in the next transform.
            raise TypeError(
                f"{owner}: a State's value must be arrays JAX can hold, got a numpy array of "
                f"dtype {leaf.dtype} ({leaf.dtype.kind!r}: object or string)"
            )
    return value


def _holds_tracer(value: Any) -> bool:
    if isinstance(value, jax.core.Tracer):
        return True
    if isinstance(value, jax.Array):
        return False
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(value))


def is_abstract(value: Any) -> bool:
    """Whether ``value`` holds ``jax.ShapeDtypeStruct`` leaves (a State from ``eval_shape``)."""
    return isinstance(value, jax.ShapeDtypeStruct) or (
        not isinstance(value, jax.Array)
        and any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(value))
    )


def abstract(value: Any) -> Any:
    """``value`` with every leaf as a ``jax.ShapeDtypeStruct`` (no tracer, no memory)."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), jax.numpy.result_type(x)), value
    )


def _raw_write_error(state: State, new: Any) -> TypeError:
    under_vmap = "Batch" in type(current_trace()).__name__
    where, instead = (
        ("jax.vmap", "facade.transform.vmap (with out_states)")
        if under_vmap
        else (
            "a raw JAX transformation (jax.lax.scan, cond, while_loop, fori_loop, jax.jit, "
            "jax.checkpoint, ...)",
            "the facade's transform (facade.transform.for_loop / scan, cond / switch, "
            "while_loop, jit, checkpoint)",
        )
    )
    return TypeError(
        f"{state._describe()} was written inside {where}, which cannot carry a State's new "
        f"value out; its value would be a tracer of that transformation. Use {instead}, which "
        "threads states through, or pass and return the value explicitly."
    )


def _summarise(x: Any) -> Any:
    """Small arrays in full, large ones as ``float32[64, 64]``: readable in a terminal."""
    if np.size(x) <= 8:
        return x
    dtype = getattr(x, "dtype", type(x).__name__)
    return f"{dtype}[{', '.join(map(str, np.shape(x)))}]"


def _record_read(state: State, frames: list[Frame]) -> None:
    for f in frames:
        if state not in f.writes:
            f.reads[state] = None
        f.touched[state] = None
    if frames[-1].trace is not current_trace():
        raw_nested_reads[0] = True


def _frame_value(state: State, frames: list[Frame]) -> Any:
    value = _in_frames(state, frames)
    if value is not _OWN:
        return value
    if is_abstract(state._value):
        raise TypeError(
            f"{state._describe()} holds only shapes and dtypes: it was created inside a "
            "transform (e.g. a model built by eval_shape, or init_all_states called inside "
            "jit or grad), which keeps its value local; give it a value (initialise the "
            "model outside the transform, or reset_all_states inside it writes the same "
            "State) before running it, or use it inside facade.transform.eval_shape"
        )
    return state._value


def _frame_write(state: State, new: Any, frames: list[Frame]) -> None:
    inner = frames[-1]
    trace = current_trace()
    if inner.trace is not trace and inner.created.get(state) is not trace and _holds_tracer(new):
        raise _raw_write_error(state, new)
    for f in frames:
        f.writes[state] = None
        f.touched[state] = None
    inner.values[state] = new


def _param_init() -> Any:
    """``braintools.init.param`` when braintools is installed (what brainstate calls, with
    braintools' unit-aware rules), else the facade's own ``nn.init.param``."""
    try:
        from braintools.init import param
    except ImportError:
        from .nn.init import param
    return param


def record_state_value_read(state: State) -> None:
    """Record a read of ``state`` in every active frame, as ``State.value`` does (brainstate's
    ``brainstate._state.record_state_value_read``: a subclass that overrides ``value`` calls
    it, then ``_read_value()``). Outside any facade trace there is nothing to record."""
    frames = _local.frames
    if frames:
        _record_read(state, frames)


def record_state_value_write(state: State) -> None:
    """Record a write of ``state`` in every active frame (brainstate's
    ``record_state_value_write``). The value itself is written by ``state._write_value(v)``,
    which records the write too, so a subclass that forgets this call is still traced right."""
    for f in _local.frames:
        f.writes[state] = None
        f.touched[state] = None


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

    # No ``__slots__`` of its own (instances keep a ``__dict__``): a client may subclass State
    # together with a class that has slots, as brainpy's ``class Variable(State, Array)`` with
    # ``Array.__slots__ = ("_value",)`` does; two bases that both define slots cannot be
    # combined. In such a class ``_value`` is the other base's slot, which this code uses as is.
    # Reading an attribute from the instance dict costs the same as from a slot (measured: the
    # value getter and setter, and a held transform's call, are unchanged).

    def __init__(self, value: Any, name: str | None = None, **metadata: Any):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"State name must be a str or None, got {type(name).__name__}")
        self.name = name
        self.source = _creation_site()
        self.metadata = metadata
        value = check_value(value, self)
        frames = _local.frames
        if not frames:
            if _holds_tracer(value):
                raise _raw_write_error(self, value)
            self._value = value
        else:
            # Created inside a facade trace: local to it. The value lives in the innermost
            # frame; the State's own slot keeps only its abstract shape, so no tracer is ever
            # left in it.
            trace = current_trace()
            for f in frames:
                f.created[self] = trace
            frames[-1].values[self] = value
            self._value = abstract(value) if _holds_tracer(value) else value
        # Only at creation, never on a read or write: the open ``catch_new_states`` blocks.
        for catcher in _local.catchers:
            catcher.append(self)

    @property
    def value(self) -> Any:
        frames = _local.frames
        if not frames:
            return self._value
        _record_read(self, frames)
        return _frame_value(self, frames)

    @value.setter
    def value(self, new: Any) -> None:
        new = check_value(new, self)
        frames = _local.frames
        if not frames:
            if _holds_tracer(new):
                raise _raw_write_error(self, new)
            self._value = new
            return
        _frame_write(self, new, frames)

    # brainstate's two hooks for a subclass that customises ``value`` (brainpy's ``Variable``
    # does: it records the access with ``record_state_value_read`` / ``_write`` and then calls
    # these). They read and write through the frames exactly as ``value`` does, so such a
    # subclass is traced like any State and its own ``_value`` never holds a tracer.
    def _read_value(self) -> Any:
        """The value in the current context (the innermost frame that holds one), unrecorded."""
        frames = _local.frames
        return _frame_value(self, frames) if frames else self._value

    def _write_value(self, new: Any) -> None:
        """Write ``new`` as ``value`` does (into the innermost frame while tracing)."""
        State.value.fset(self, new)  # type: ignore[attr-defined]

    def _check_value_tree(self, new: Any) -> None:
        """brainstate checks a new value's tree structure only inside its opt-in context
        (``check_state_value_tree``, off by default, not provided): nothing to check here."""

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

    @classmethod
    def init(
        cls,
        fn: Any,
        in_size: int | tuple[int, ...],
        batch_size: int | None = None,
        tag: str | None = None,
    ) -> State:
        """A new State of this class whose value is the parameter ``fn`` initialised to a shape.

        As brainstate: the value is ``braintools.init.param(fn, in_size, batch_size)`` (an
        initializer called with ``(batch_size, *in_size)``, an array broadcast to that shape, a
        number kept as is); without braintools installed, ``facade.nn.init.param``, which
        follows the same rules for initializers, arrays and numbers.

        Args:
            fn: an initializer (any callable of a shape), an array or a number.
            in_size: the shape without the batch axis.
            batch_size: if given, a leading batch axis of this size.
            tag: stored in the State's ``metadata`` under ``"tag"``.

        Example:
            >>> import jax.numpy as jnp, facade
            >>> h = facade.HiddenState.init(jnp.zeros, (3,), batch_size=2)
            >>> type(h).__name__, h.value.shape
            ('HiddenState', (2, 3))
        """
        return cls(_param_init()(fn, in_size, batch_size), tag=tag)


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


class DelayState(ShortTermState):
    """The history buffer of an ``nn.Delay``."""

    __slots__ = ()
