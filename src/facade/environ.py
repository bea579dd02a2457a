"""Global settings, brainstate-style: ``set``, ``get``, ``all``, ``context`` and ``dftype``.

Settings are process-wide (``set``) with a per-thread stack of overrides (``context``): a
``context`` block changes the settings, and JAX's x64 mode for ``precision``, only in the thread
that entered it, and restores them on exit, even on error.

``precision`` (16, 32, 64 or ``'bf16'``) picks the default float dtype returned by
:func:`dftype` (float16, float32, float64, bfloat16). 64 also turns on JAX's x64 mode (``set``:
``jax.config.update('jax_enable_x64', True)`` for the process; ``context``: JAX's thread-local
``enable_x64`` for the block) and the others turn it off, so plain ``jnp`` arrays follow it. Other
settings are stored and returned as given.

Example:
    >>> import jax.numpy as jnp
    >>> from facade import environ
    >>> with environ.context(precision=64, dt=0.1):
    ...     jnp.ones(2).dtype, environ.dftype(), environ.get("dt")
    (dtype('float64'), dtype('float64'), 0.1)
    >>> jnp.ones(2).dtype
    dtype('float32')
"""

from __future__ import annotations

import contextlib
import threading
import typing
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["all", "context", "dctype", "dftype", "ditype", "get", "set"]

_MISSING: typing.Any = object()
_PRECISIONS: dict[typing.Any, int | str] = {16: 16, 32: 32, 64: 64, "bf16": "bf16"}
_FLOATS = {16: jnp.float16, 32: jnp.float32, 64: jnp.float64, "bf16": jnp.bfloat16}

_lock = threading.Lock()
_global: dict[str, typing.Any] = {"precision": 64 if jax.config.read("jax_enable_x64") else 32}


class _Local(threading.local):
    def __init__(self) -> None:
        self.stack: list[dict[str, typing.Any]] = []
        # Open recordings (see ``recording``): each maps a setting read to the value it had.
        self.recorders: list[dict[str, typing.Any]] = []


_local = _Local()

# Bumped whenever a setting may have changed (``set``, entering or leaving a ``context``): a
# held transform compares the settings its trace read only when this moved.
_version = [0]


def version() -> int:
    """A number that changes whenever any setting may have changed."""
    return _version[0]


@contextlib.contextmanager
def recording() -> Iterator[dict[str, typing.Any]]:
    """Record every setting read in this thread during the block: ``{name: value}``.

    Transforms trace under a recording; the settings a trace read are part of what decides
    whether its compiled program can be reused (see ``facade._core.sites``).
    """
    reads: dict[str, typing.Any] = {}
    _local.recorders.append(reads)
    try:
        yield reads
    finally:
        _local.recorders.pop()


def changed_setting(reads: dict[str, typing.Any]) -> str | None:
    """The first setting in ``reads`` whose value in this thread differs now, else None."""
    for key, old in reads.items():
        new = get(key, _MISSING)
        if new is old:
            continue
        try:
            same = type(new) is type(old) and bool(new == old)
        except Exception:  # an array-valued setting, say: treat as changed
            same = False
        if not same:
            return key
    return None


def _checked(settings: dict[str, typing.Any]) -> dict[str, typing.Any]:
    if "precision" in settings:
        p = settings["precision"]
        try:
            valid = not isinstance(p, bool) and p in _PRECISIONS
        except TypeError:  # unhashable
            valid = False
        if not valid:
            raise ValueError(f"precision must be one of 16, 32, 64 or 'bf16', got {p!r}")
        settings["precision"] = _PRECISIONS[p]
    return settings


def _x64(enabled: bool) -> contextlib.AbstractContextManager:
    manager = getattr(jax, "enable_x64", None)
    if manager is not None:
        return manager(enabled)
    from jax import experimental  # older JAX

    return experimental.enable_x64() if enabled else experimental.disable_x64()  # type: ignore[attr-defined]


def set(**settings: typing.Any) -> None:
    """Change settings for the whole process (a ``context`` block still overrides them).

    Args:
        **settings: ``precision`` (16, 32, 64 or ``'bf16'``) and any other named values.

    Raises:
        ValueError: an invalid ``precision``.

    Example:
        >>> from facade import environ
        >>> environ.set(my_flag=True)
        >>> environ.get("my_flag")
        True
    """
    settings = _checked(dict(settings))
    with _lock:
        _version[0] += 1
        _global.update(settings)
        if "precision" in settings:
            jax.config.update("jax_enable_x64", settings["precision"] == 64)


def get(key: str, default: typing.Any = _MISSING) -> typing.Any:
    """The current value of setting ``key`` in this thread.

    Args:
        key: the setting's name.
        default: returned when the setting does not exist.

    Returns:
        The innermost ``context`` override, else the process-wide value, else ``default``.

    Raises:
        KeyError: the setting does not exist and no ``default`` was given.

    Example:
        >>> from facade import environ
        >>> environ.get("no_such_setting", 3)
        3
    """
    value = _MISSING
    for frame in reversed(_local.stack):
        if key in frame:
            value = frame[key]
            break
    else:
        value = _global.get(key, _MISSING)
    for reads in _local.recorders:
        reads.setdefault(key, value)
    if value is not _MISSING:
        return value
    if default is _MISSING:
        raise KeyError(f"environ: no setting named {key!r} (set it, or pass a default)")
    return default


def all() -> dict[str, typing.Any]:
    """All current settings in this thread, overrides applied, as a new dict.

    Returns:
        A dict from setting name to value.

    Example:
        >>> from facade import environ
        >>> with environ.context(precision=16):
        ...     environ.all()["precision"]
        16
    """
    merged = dict(_global)
    for frame in _local.stack:
        merged.update(frame)
    for reads in _local.recorders:
        for key, value in merged.items():
            reads.setdefault(key, value)
    return merged


@contextlib.contextmanager
def context(**settings: typing.Any) -> Iterator[dict[str, typing.Any]]:
    """Override settings in this thread for the duration of a ``with`` block.

    Args:
        **settings: ``precision`` (16, 32, 64 or ``'bf16'``) and any other named values.

    Returns:
        A context manager yielding the settings in force inside the block (a new dict).

    Raises:
        ValueError: an invalid ``precision`` (raised on entry).

    Example:
        >>> import jax.numpy as jnp
        >>> from facade import environ
        >>> with environ.context(precision=64):
        ...     jnp.zeros(1).dtype
        dtype('float64')
    """
    settings = _checked(dict(settings))
    with contextlib.ExitStack() as stack:
        if "precision" in settings:
            stack.enter_context(_x64(settings["precision"] == 64))
        _local.stack.append(settings)
        _version[0] += 1
        try:
            yield all()
        finally:
            _local.stack.pop()
            _version[0] += 1


def dftype() -> np.dtype:
    """The default float dtype for the current ``precision``.

    Returns:
        float16, float32, float64 or bfloat16 for precision 16, 32, 64 or ``'bf16'``.

    Example:
        >>> from facade import environ
        >>> with environ.context(precision="bf16"):
        ...     environ.dftype()
        dtype(bfloat16)
    """
    return np.dtype(_FLOATS[get("precision")])


def ditype() -> np.dtype:
    """The default integer dtype: int64 at precision 64, else int32.

    Returns:
        A numpy dtype.

    Example:
        >>> from facade import environ
        >>> environ.ditype()
        dtype('int32')
    """
    return np.dtype(np.int64 if get("precision") == 64 else np.int32)


def dctype() -> np.dtype:
    """The default complex dtype: complex128 at precision 64, else complex64.

    Returns:
        A numpy dtype.

    Example:
        >>> from facade import environ
        >>> environ.dctype()
        dtype('complex64')
    """
    return np.dtype(np.complex128 if get("precision") == 64 else np.complex64)
