"""``brainstate.mixin``: behaviour mixins, parameter describers, computation modes, type joins.

What client libraries subclass or call: :class:`Mixin`, :class:`ParamDesc` (``Cls.desc(...)``
gives a :class:`ParamDescriber`, a deferred constructor), the modes (:class:`Mode`,
:class:`Batching`, :class:`Training`, :class:`JointMode`), and the generic-alias helpers
:data:`JointTypes` (an intersection type for ``isinstance``) and :data:`OneOfTypes` (a union).
Semantics are brainstate 0.5.4's.

Example:
    >>> from facade.mixin import Batching, JointMode, JointTypes, Training
    >>> mode = JointMode(Training(), Batching(batch_size=8))
    >>> mode.has(Training), mode.batch_size, mode.is_a(JointTypes[Training, Batching])
    (True, 8, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional, TypeVar, Union, _GenericAlias  # type: ignore[attr-defined]

import jax

__all__ = [
    "Batching",
    "HashableDict",
    "JointMode",
    "JointTypes",
    "Mixin",
    "Mode",
    "NoSubclassMeta",
    "OneOfTypes",
    "ParamDesc",
    "ParamDescriber",
    "Training",
    "hashable",
    "is_not_implemented",
    "not_implemented",
]

T = TypeVar("T")
ArrayLike = jax.typing.ArrayLike
# brainstate.mixin exposes typing.Optional; kept so `brainstate.mixin.Optional` resolves.
Optional = Optional  # noqa: PLW0127, UP045


def hashable(x: Any) -> bool:
    """Whether ``hash(x)`` succeeds.

    Example:
        >>> from facade.mixin import hashable
        >>> hashable((1, 2)), hashable([1, 2])
        (True, False)
    """
    try:
        hash(x)
    except TypeError:
        return False
    return True


class Mixin:
    """Base of behaviour-only mixins: methods, no ``__init__``, no state of their own."""


class HashableDict(dict):
    """A dict that hashes by its items (order-free); unhashable values are kept as their ``str``.

    Example:
        >>> from facade.mixin import HashableDict
        >>> hash(HashableDict({"a": [1]})) == hash(HashableDict({"a": "[1]"}))
        True
    """

    def __init__(self, the_dict: dict):
        super().__init__({k: v if hashable(v) else str(v) for k, v in the_dict.items()})

    def __hash__(self) -> int:  # type: ignore[override]
        # frozenset, not sorted(): keys of mixed types (int and str) need not be orderable.
        return hash(frozenset(self.items()))


class NoSubclassMeta(type):
    """A metaclass whose classes cannot be subclassed (``TypeError`` on the attempt)."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
        for base in bases:
            if isinstance(base, NoSubclassMeta):
                raise TypeError(f"type '{base.__name__}' is not an acceptable base type")
        return super().__new__(mcs, name, bases, dict(namespace))


class ParamDescriber(metaclass=NoSubclassMeta):
    """A deferred constructor: a class with some arguments bound, instantiated on call.

    ``ParamDescriber(Cls, *args, **kwargs)(*more, **kw)`` is ``Cls(*args, *more, **{**kwargs,
    **kw})``. ``isinstance(d, ParamDescriber[Base])`` holds when ``d`` describes a subclass of
    ``Base``. ``identifier`` is ``(cls, args, HashableDict(kwargs))``, read-only.

    Example:
        >>> from facade.mixin import ParamDescriber
        >>> d = ParamDescriber(dict, a=1)
        >>> d(b=2), isinstance(d, ParamDescriber[dict]), d
        ({'a': 1, 'b': 2}, True, ParamDescriber(dict(a=1)))
    """

    def __init__(self, cls: Any, *desc_tuple: Any, **desc_dict: Any):
        self.cls: type = cls
        self.args = desc_tuple
        self.kwargs = desc_dict
        self._identifier = (cls, tuple(desc_tuple), HashableDict(desc_dict))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.cls(*self.args, *args, **{**self.kwargs, **kwargs})

    def init(self, *args: Any, **kwargs: Any) -> Any:
        """The same as calling the describer."""
        return self(*args, **kwargs)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"ParamDescriber({self.cls.__name__}({', '.join(parts)}))"

    def __instancecheck__(self, instance: Any) -> bool:
        # Used through ParamDescriber[Base], which is itself a describer of Base.
        return isinstance(instance, ParamDescriber) and issubclass(instance.cls, self.cls)

    @classmethod
    def __class_getitem__(cls, item: type) -> ParamDescriber:
        return ParamDescriber(item)

    @property
    def identifier(self) -> tuple:
        return self._identifier

    @identifier.setter
    def identifier(self, value: Any) -> None:
        raise AttributeError("Cannot set the identifier.")


class ParamDesc(Mixin):
    """Gives a class ``Cls.desc(*args, **kwargs)``: a :class:`ParamDescriber` of it.

    ``non_hashable_params`` names constructor parameters whose values are not hashable (kept for
    brainstate's subclasses; the describer already stringifies unhashable values).
    """

    non_hashable_params: Sequence[str] | None = None

    @classmethod
    def desc(cls, *args: Any, **kwargs: Any) -> ParamDescriber:
        return ParamDescriber(cls, *args, **kwargs)


def not_implemented(func: Callable) -> Callable:
    """Replace ``func`` by a stub raising ``NotImplementedError``, marked ``not_implemented``.

    Example:
        >>> from facade.mixin import is_not_implemented, not_implemented
        >>> @not_implemented
        ... def update(x): ...
        >>> is_not_implemented(update)
        True
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{func.__name__} is not implemented.")

    wrapper.not_implemented = True  # type: ignore[attr-defined]
    return wrapper


def is_not_implemented(fn: Any) -> bool:
    """Whether ``fn`` was made by :func:`not_implemented`."""
    return hasattr(fn, "not_implemented")


def _unique(types: tuple, what: str) -> list:
    if not types:
        raise TypeError(f"Cannot create a {what} of no types.")
    out: list = []
    for t in types:
        if t not in out:
            out.append(t)
    return out


def _type_name(t: Any) -> str:
    if hasattr(t, "__module__") and hasattr(t, "__name__"):
        return f"{t.__module__}.{t.__name__}"
    return str(t)


class _JointGenericAlias(_GenericAlias, _root=True):  # type: ignore[call-arg]
    """``JointTypes[A, B]``: an object is an instance when it is an instance of every one."""

    def __instancecheck__(self, obj: Any) -> bool:
        return all(isinstance(obj, t) for t in self.__args__)

    def __subclasscheck__(self, cls: type) -> bool:
        return all(issubclass(cls, t) for t in self.__args__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _JointGenericAlias):
            return NotImplemented
        return set(self.__args__) == set(other.__args__)

    def __hash__(self) -> int:
        return hash(frozenset(self.__args__))

    def __repr__(self) -> str:
        return f"JointTypes[{', '.join(_type_name(t) for t in self.__args__)}]"

    def __reduce__(self) -> tuple:
        return (_JointGenericAlias, (self.__origin__, self.__args__))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The origin is `object`: calling would silently build a bare object().
        raise TypeError(f"Cannot instantiate {self!r}: it is a type for isinstance checks")


class _OneOfGenericAlias(_GenericAlias, _root=True):  # type: ignore[call-arg]
    """``OneOfTypes[A, B]``: an object is an instance when it is an instance of any one."""

    def __instancecheck__(self, obj: Any) -> bool:
        return any(isinstance(obj, t) for t in self.__args__)

    def __subclasscheck__(self, cls: type) -> bool:
        return any(issubclass(cls, t) for t in self.__args__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _OneOfGenericAlias):
            return NotImplemented
        return set(self.__args__) == set(other.__args__)

    def __hash__(self) -> int:
        return hash(frozenset(self.__args__))

    def __repr__(self) -> str:
        return f"OneOfTypes[{', '.join(_type_name(t) for t in self.__args__)}]"

    def __reduce__(self) -> tuple:
        return (_OneOfGenericAlias, (self.__origin__, self.__args__))


class _TypeJoin:
    """A callable, subscriptable factory: ``F[A, B]`` is ``F(A, B)``; one type is returned as is."""

    def __init__(self, name: str, alias: type, origin: Any):
        self._name, self._alias, self._origin = name, alias, origin

    def __call__(self, *types: Any) -> Any:
        unique = _unique(types, self._name)
        if len(unique) == 1:
            return unique[0]
        return self._alias(self._origin, tuple(unique))

    def __getitem__(self, item: Any) -> Any:
        return self(*item) if isinstance(item, tuple) else self(item)

    def __repr__(self) -> str:
        return self._name


JointTypes = _TypeJoin("JointTypes", _JointGenericAlias, object)
OneOfTypes = _TypeJoin("OneOfTypes", _OneOfGenericAlias, Union)


# brainstate 0.5.4 moved these mixins to brainpy and forwards the old names with a warning.
_MOVED_TO_BRAINPY = ("AlignPost", "BindCondData")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_BRAINPY:
        import warnings

        warnings.warn(
            f"brainstate.mixin.{name} is deprecated and will be removed in a future version. "
            f"Please use brainpy.mixin.{name} instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        import brainpy  # type: ignore[import-not-found]

        return getattr(brainpy.mixin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Mode(Mixin):
    """A computation mode (training, batching, ...). Modes compare equal by class."""

    def __repr__(self) -> str:
        return type(self).__name__

    def __eq__(self, other: object) -> bool:
        assert isinstance(other, Mode)
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def is_a(self, mode: type) -> bool:
        """Whether this mode's class is exactly ``mode``."""
        assert isinstance(mode, type), "Must be a type."
        return type(self) is mode

    def has(self, mode: type) -> bool:
        """Whether this mode is an instance of ``mode`` (subclasses included)."""
        assert isinstance(mode, type), "Must be a type."
        return isinstance(self, mode)


class JointMode(Mode):
    """Several modes at once; attributes are looked up in the combined modes, in order.

    Raises:
        TypeError: an argument is not a :class:`Mode`.
    """

    def __init__(self, *modes: Mode):
        for m in modes:
            if not isinstance(m, Mode):
                raise TypeError(f"The supported type must be a tuple/list of Mode. But we got {m}")
        self.modes = tuple(modes)
        self.types = {type(m) for m in modes}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(m) for m in self.modes)})"

    def has(self, mode: type) -> bool:
        assert isinstance(mode, type), "Must be a type."
        return any(issubclass(t, mode) for t in self.types)

    def is_a(self, cls: Any) -> bool:
        return JointTypes(*self.types) == cls

    def __getattr__(self, item: str) -> Any:
        if item in ("modes", "types"):  # not set yet (during unpickling): no recursion
            raise AttributeError(item)
        for m in self.modes:
            if hasattr(m, item):
                return getattr(m, item)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {item!r}")


class Batching(Mode):
    """Batched computation: ``batch_size`` items along ``batch_axis``."""

    def __init__(self, batch_size: int = 1, batch_axis: int = 0):
        self.batch_size = batch_size
        self.batch_axis = batch_axis

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_size={self.batch_size}, axis={self.batch_axis})"


class Training(Mode):
    """Training computation (dropout active, batch statistics updated, ...)."""
