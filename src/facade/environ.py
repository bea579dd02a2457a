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
    ...     jnp.ones(2).dtype, environ.dftype(), environ.get_dt()
    (dtype('float64'), <class 'numpy.float64'>, 0.1)
    >>> jnp.ones(2).dtype
    dtype('float32')
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import typing
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    *("EnvironmentState", "all", "context", "dctype", "dftype", "ditype", "get", "get_dt"),
    *("get_precision", "pop", "set", "set_precision"),
]

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


@dataclasses.dataclass
class EnvironmentState:
    """A store of settings apart from the process-wide ones (brainstate's ``EnvironmentState``).

    ``get``, ``set``, ``pop`` and the getters take one as ``env=``: its context overrides
    (``contexts[key]``, innermost last), then its ``settings``. Transforms record and compare
    the process-wide settings only; a library keeping its own defaults here reads them itself.

    Example:
        >>> from facade import environ
        >>> mine = environ.EnvironmentState()
        >>> environ.set(dt=0.001, env=mine)
        >>> environ.get_dt(env=mine)
        0.001
    """

    settings: dict[typing.Any, typing.Any] = dataclasses.field(default_factory=dict)
    contexts: collections.defaultdict[typing.Any, list[typing.Any]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list)
    )
    functions: dict[typing.Any, typing.Any] = dataclasses.field(default_factory=dict)
    locks: dict[str, typing.Any] = dataclasses.field(default_factory=dict)


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


def set(*, env: EnvironmentState | None = None, **settings: typing.Any) -> None:
    """Change settings for the whole process (a ``context`` block still overrides them).

    Args:
        env: change these settings of ``env`` instead (no JAX configuration is touched).
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
    if env is not None:
        env.settings.update(settings)
        return
    with _lock:
        _version[0] += 1
        _global.update(settings)
        if "precision" in settings:
            jax.config.update("jax_enable_x64", settings["precision"] == 64)


def get(
    key: str,
    default: typing.Any = _MISSING,
    desc: str | None = None,
    *,
    env: EnvironmentState | None = None,
) -> typing.Any:
    """The current value of setting ``key`` in this thread.

    Args:
        key: the setting's name.
        default: returned when the setting does not exist.
        desc: what the setting is for, named in the error when it is missing.
        env: read ``env``'s settings instead of this thread's and the process's.

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
    if env is not None:
        overrides = env.contexts.get(key)
        value = overrides[-1] if overrides else env.settings.get(key, _MISSING)
    else:
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
        what = f" ({desc})" if desc else ""
        raise KeyError(f"environ: no setting named {key!r}{what} (set it, or pass a default)")
    return default


def get_dt(*, env: EnvironmentState | None = None) -> typing.Any:
    """The integration time step: the setting ``dt``.

    Raises:
        KeyError: ``dt`` is not set.

    Example:
        >>> from facade import environ
        >>> with environ.context(dt=0.05):
        ...     environ.get_dt()
        0.05
    """
    return get("dt", env=env)


def get_precision(*, env: EnvironmentState | None = None) -> int:
    """The precision in bits: 16, 32 or 64 (``'bf16'`` counts as 16).

    Example:
        >>> from facade import environ
        >>> with environ.context(precision="bf16"):
        ...     environ.get_precision()
        16
    """
    precision = get("precision", 64 if jax.config.read("jax_enable_x64") else 32, env=env)
    return 16 if precision == "bf16" else int(precision)


def set_precision(precision: int | str, *, env: EnvironmentState | None = None) -> None:
    """``set(precision=precision)``: 16, 32, 64 or ``'bf16'``.

    Raises:
        ValueError: another precision.
    """
    set(precision=precision, env=env)


def pop(
    key: str, default: typing.Any = _MISSING, *, env: EnvironmentState | None = None
) -> typing.Any:
    """Remove the process-wide setting ``key`` and return its value.

    Raises:
        KeyError: ``key`` is not set and no ``default`` was given.
        ValueError: a ``context`` block of this thread overrides ``key`` right now.

    Example:
        >>> from facade import environ
        >>> environ.set(scratch=1)
        >>> environ.pop("scratch"), environ.get("scratch", None)
        (1, None)
    """
    if env is not None:
        if env.contexts.get(key):
            raise ValueError(f"environ: {key!r} is overridden by an active context")
        if key in env.settings:
            return env.settings.pop(key)
    else:
        if any(key in frame for frame in _local.stack):
            raise ValueError(f"environ: {key!r} is overridden by an active context; pop it after")
        with _lock:
            if key in _global:
                _version[0] += 1
                return _global.pop(key)
    if default is _MISSING:
        raise KeyError(f"environ: no setting named {key!r}")
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
def context(
    *, env: EnvironmentState | None = None, **settings: typing.Any
) -> Iterator[dict[str, typing.Any]]:
    """Override settings in this thread for the duration of a ``with`` block.

    Args:
        env: override these settings of ``env`` instead (no JAX configuration is touched).
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
    if env is not None:
        for key, value in settings.items():
            env.contexts[key].append(value)
        try:
            yield {**env.settings, **{k: v[-1] for k, v in env.contexts.items() if v}}
        finally:
            for key in settings:
                env.contexts[key].pop()
        return
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


def dftype() -> type:
    """The default float type for the current ``precision``, as a numpy scalar type (as in
    brainstate; ``jnp.zeros(3, environ.dftype())`` and ``np.dtype(environ.dftype())`` work).

    Returns:
        float16, float32, float64 or bfloat16 for precision 16, 32, 64 or ``'bf16'``.

    Example:
        >>> from facade import environ
        >>> with environ.context(precision="bf16"):
        ...     environ.dftype()
        <class 'ml_dtypes.bfloat16'>
    """
    return np.dtype(_FLOATS[get("precision")]).type


def ditype() -> type:
    """The default integer type: int64 at precision 64, else int32 (a numpy scalar type).

    Returns:
        ``numpy.int64`` or ``numpy.int32``.

    Example:
        >>> from facade import environ
        >>> environ.ditype()
        <class 'numpy.int32'>
    """
    return np.int64 if get("precision") == 64 else np.int32


def dctype() -> type:
    """The default complex type: complex128 at precision 64, else complex64 (a numpy scalar
    type).

    Returns:
        ``numpy.complex128`` or ``numpy.complex64``.

    Example:
        >>> from facade import environ
        >>> environ.dctype()
        <class 'numpy.complex64'>
    """
    return np.complex128 if get("precision") == 64 else np.complex64
