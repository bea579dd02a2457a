"""State-aware ``jit``: states read are inputs, states written are outputs, one program.

The transform is the bridge's pure function itself: ``jax.jit(pure)``, with ``jax.jit``'s
options translated to the program's layout by ``_lowering.program_jit_kwargs``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from .._core.sites import Lowering, Transformed, call_program, program_jit_kwargs
from .._state import active_frames
from ..typing import Missing


def _as_tuple(x: Any, name: str, kind: type) -> tuple[Any, ...]:
    if x is None:
        return ()
    items = (x,) if isinstance(x, kind) else tuple(cast(Sequence[Any], x))
    for item in items:
        if not isinstance(item, kind) or isinstance(item, bool):
            raise TypeError(f"{name} must be a {kind.__name__} or a sequence of them, got {x!r}")
    return items


def _static_names_and_nums(
    fn: Callable[..., Any], nums: tuple[int, ...], names: tuple[str, ...]
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Complete ``static_argnums`` from ``static_argnames`` and back, as ``jax.jit`` does.

    A negative position counts from the end of the positional parameters (from the end of
    each call's arguments when ``fn`` takes ``*args`` or has no inspectable signature).
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return nums, names
    positional = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if not any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        nums = tuple(i + len(positional) if i < 0 else i for i in nums)
    nums = tuple(sorted({*nums, *(positional.index(n) for n in names if n in positional)}))
    names = tuple(
        dict.fromkeys([*names, *(positional[i] for i in nums if 0 <= i < len(positional))])
    )
    return nums, names


class JittedFunction(Transformed):
    """A stateful function compiled once per call signature (see :func:`jit`).

    It also offers ``lower``, ``trace``, ``compile``, ``eval_shape`` and ``clear_cache`` as
    ``jax.jit`` does, and used as a method decorator it binds to each instance (each with its
    own programs).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        static_argnums: tuple[int, ...],
        static_argnames: tuple[str, ...],
        jit_options: dict[str, Any],
        name: str | None,
    ):
        self.fn = self._fn = fn
        self._given = (static_argnums, static_argnames)
        self.static_argnums, self.static_argnames = _static_names_and_nums(
            fn, static_argnums, static_argnames
        )
        self._options = jit_options
        self._name = name
        self._lowering = self._new_lowering(fn)
        self._stateful: Any = None  # the StatefulFunction view, made when first asked
        # One lowering per instance when used as a method; weakly keyed, and a lowering holds
        # no strong reference to the instance, so instances are collected as usual.
        self._per_instance: weakref.WeakKeyDictionary[Any, Lowering] = weakref.WeakKeyDictionary()
        functools.update_wrapper(self, fn, updated=())

    def _new_lowering(self, fn: Callable[..., Any], method: bool = False) -> Lowering:
        # Positions count the arguments of ``fn`` as called (a bound method's without self);
        # a method's lowering is called with the instance first, so that it is keyed by the
        # instance's attributes (see ``_core.keys.module_key``).
        nums, names = _static_names_and_nums(fn, *self._given)
        if method:
            nums = tuple(i + 1 if i >= 0 else i for i in nums)
        return Lowering(
            call_program(self._name),
            static_argnums=nums,
            static_argnames=names,
            jit_kwargs=program_jit_kwargs(**self._options),
            name=self._name,
        )

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self._check_static_range(args, kwargs)
        return self._lowering(self.fn, args, kwargs)

    def _check_static_range(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for i in self.static_argnums:
            if not -len(args) <= i < len(args) and self._required_static(i, kwargs):
                raise ValueError(
                    f"static_argnums={self.static_argnums} is out of range: the function was "
                    f"called with {len(args)} positional argument(s)"
                )

    def _required_static(self, i: int, kwargs: dict[str, Any]) -> bool:
        """Whether position ``i`` had to be passed positionally: not one with a default, nor
        one passed by keyword (static by its name then, as in ``jax.jit``)."""
        try:
            params = list(inspect.signature(self.fn).parameters.values())
        except (TypeError, ValueError):
            return True
        if 0 <= i < len(params):
            p = params[i]
            if p.name in kwargs and p.kind is p.POSITIONAL_OR_KEYWORD:
                return False
            return p.default is inspect.Parameter.empty and p.kind is not p.KEYWORD_ONLY
        return True

    def _bind(self, instance: Any) -> Any:
        return functools.partial(self._call_method, instance)

    def _method_lowering(self, instance: Any) -> Lowering:
        try:
            lowering = self._per_instance.get(instance)
        except TypeError:  # unhashable or not weakly referenceable: a lowering per call
            return self._new_lowering(types.MethodType(self.fn, instance), method=True)
        if lowering is None:
            lowering = self._per_instance[instance] = self._new_lowering(
                types.MethodType(self.fn, instance), method=True
            )
        return lowering

    def _call_method(self, instance: Any, *args: Any, **kwargs: Any) -> Any:
        return self._method_lowering(instance)(self.fn, (instance, *args), kwargs)

    def lower(self, *args: Any, **kwargs: Any) -> Any:
        """``jax.jit(...).lower`` of the program of this call (state values as its first
        argument, the constants the function closes over as its last)."""
        with _inspecting():
            exe, args_dyn, kw_dyn = self._lowering.prepare(self.fn, args, kwargs)
        return exe.lower(*args_dyn, **kw_dyn)

    def trace(self, *args: Any, **kwargs: Any) -> Any:
        """``jax.jit(...).trace`` of the program of this call (laid out as for :meth:`lower`):
        JAX's ``Traced`` stage, with its ``jaxpr``, ``out_info`` and ``lower()``."""
        with _inspecting():
            exe, args_dyn, kw_dyn = self._lowering.prepare(self.fn, args, kwargs)
        return exe.trace(*args_dyn, **kw_dyn)

    def compile(self, *args: Any, **kwargs: Any) -> Any:
        """``lower(...).compile()``: the compiled program of this call (nothing runs)."""
        return self.lower(*args, **kwargs).compile()

    @property
    def origin_fun(self) -> Callable[..., Any]:
        """The function given to ``jit`` (brainstate's name for it)."""
        return self.fn

    @property
    def jitted_fun(self) -> Callable[..., Any]:
        """brainstate's name for the compiled callable: this object."""
        return self

    @property
    def stateful_fun(self) -> Any:
        """A :class:`StatefulFunction` of the same function and static arguments, for
        inspection (``get_states``, ``get_jaxpr``, ...). It traces on its own, when asked; its
        cache keys trace on a miss, since calls of this ``jit`` do not fill its cache."""
        if self._stateful is None:
            from ._stateful_function import StatefulFunction

            self._stateful = StatefulFunction(
                self.fn, self.static_argnums, self.static_argnames, name=self._name
            )
            self._stateful.trace_on_key = True
        return self._stateful

    def eval_shape(self, *args: Any, **kwargs: Any) -> Any:
        """The output's shapes and dtypes (``jax.ShapeDtypeStruct``), without running it."""
        with _inspecting():
            exe, args_dyn, kw_dyn = self._lowering.prepare(self.fn, args, kwargs)
        return exe.eval_shape(*args_dyn, **kw_dyn)[0]

    def clear_cache(self) -> None:
        """Drop every compiled program; the next call traces and compiles again."""
        self._lowering.clear()
        if self._stateful is not None:
            self._stateful.clear_cache()
        for lowering in list(self._per_instance.values()):
            lowering.clear()


@contextlib.contextmanager
def _inspecting() -> Iterator[None]:
    """An ahead-of-time stage (``lower``, ``trace``, ``eval_shape``) run inside another facade
    trace: it traces the program, which records the program's writes in every enclosing frame,
    but it writes nothing. Forget those writes, so the enclosing transform does not carry (or
    report as written) a State that only was inspected; its reads stay recorded."""
    frames = active_frames()
    before = [(dict(f.writes), dict(f.touched)) for f in frames]
    try:
        yield
    finally:
        for f, (writes, touched) in zip(frames, before, strict=True):
            f.writes = writes
            f.touched = {**touched, **{s: None for s in f.touched if s in f.reads}}


_NOT_GIVEN: Any = object()


def jit(
    fun: Callable[..., Any] | Missing | None = None,
    in_shardings: Any = _NOT_GIVEN,
    out_shardings: Any = _NOT_GIVEN,
    static_argnums: int | Sequence[int] | None = None,
    donate_argnums: int | Sequence[int] | None = None,
    static_argnames: str | Sequence[str] | None = None,
    donate_argnames: str | Sequence[str] | None = None,
    keep_unused: bool = False,
    device: Any = None,
    backend: str | None = None,
    inline: bool = False,
    name: str | None = None,
    **kwargs: Any,
) -> Any:
    """Compile a stateful function: states it reads are inputs, states it writes are outputs.

    Written values are assigned to their States after each call. Compiled once per call
    signature (argument structure, shapes, dtypes and static values; ``1``, ``1.0`` and
    ``True`` are different static values). The parameters are ``jax.jit``'s, in brainstate's
    positional order; ``in_shardings`` and ``out_shardings`` apply to the arguments and the
    result (States keep the shardings of their values), ``name`` names the compiled program,
    other keyword arguments go to ``jax.jit``. Usable as ``@jit`` or ``@jit(...)``, also on a
    method.

    Raises:
        TypeError: ``fun`` not callable, or static/donate argnums or argnames of wrong types.
        ValueError: a ``static_argnums`` out of range of a call.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> count = facade.State(jnp.array(0))
        >>> @facade.transform.jit
        ... def step(x):
        ...     count.value = count.value + 1
        ...     return x * 2
        >>> step(jnp.ones(2)), int(count.value)
        (Array([2., 2.], dtype=float32), 1)
    """
    nums = _as_tuple(static_argnums, "static_argnums", int)
    names = _as_tuple(static_argnames, "static_argnames", str)
    donate = _as_tuple(donate_argnums, "donate_argnums", int)
    donate_names = _as_tuple(donate_argnames, "donate_argnames", str)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {name!r}")
    options: dict[str, Any] = dict(kwargs)
    if in_shardings is not _NOT_GIVEN:
        options["in_shardings"] = in_shardings
    if out_shardings is not _NOT_GIVEN:
        options["out_shardings"] = out_shardings
    if donate:
        options["donate_argnums"] = donate
    if donate_names:
        options["donate_argnames"] = donate_names
    if keep_unused:
        options["keep_unused"] = True
    if device is not None:
        options["device"] = device
    if backend is not None:
        options["backend"] = backend
    if inline:
        options["inline"] = True

    def make(f: Callable[..., Any]) -> JittedFunction:
        if not callable(f):
            raise TypeError(f"jit: fun must be callable, got {type(f).__name__}")
        return JittedFunction(f, nums, names, options, name)

    # brainstate's decorator form passes its ``Missing()`` sentinel (brainpy's ``cls_jit`` does).
    return make if fun is None or isinstance(fun, Missing) else make(fun)
