"""Initializers for the layers' parameters and hidden states, built on ``jax.nn.initializers``.

An initializer is called as ``init(shape, dtype=None, key=None)`` and returns an array of that
shape. ``dtype`` defaults to :func:`facade.environ.dftype`. Random initializers draw their key
from :mod:`facade.random` (so ``facade.random.seed(0)`` makes a model's initial values
reproducible), unless they were given a ``seed`` or the call passes a ``key``.

:func:`param` turns a layer's initializer argument (an initializer, an array, a number or None)
into a value of the right shape, optionally with a leading batch axis.

Example:
    >>> import jax.numpy as jnp, facade
    >>> from facade.nn import init
    >>> init.Constant(0.5)((2,))
    Array([0.5, 0.5], dtype=float32)
    >>> w = init.KaimingNormal(seed=0)((4, 3))
    >>> w.shape, w.dtype
    ((4, 3), dtype('float32'))
    >>> init.param(jnp.ones(3), (3,), batch_size=2).shape
    (2, 3)
"""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import environ, random
from ._checks import DTypeLike, InitLike, Integer, Real, Size, to_size, typechecked

__all__ = [
    "Constant",
    "Initializer",
    "KaimingNormal",
    "KaimingUniform",
    "LecunNormal",
    "LecunUniform",
    "Normal",
    "Orthogonal",
    "TruncatedNormal",
    "Uniform",
    "VarianceScaling",
    "XavierNormal",
    "XavierUniform",
    "ZeroInit",
    "param",
]

KeyLike = int | np.integer | jax.Array | np.ndarray | None
_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")


class Initializer:
    """Base class of the initializers: ``init(shape, dtype=None, key=None) -> array``.

    Subclasses implement :meth:`_sample`; the base class resolves the shape, dtype and key.

    Args:
        seed: for random initializers, an int seed making every call's draw deterministic
            (the n-th call uses ``fold_in(PRNGKey(seed), n)``); None draws keys from
            :mod:`facade.random`.

    Example:
        >>> from facade.nn import init
        >>> class Twos(init.Initializer):
        ...     def _sample(self, key, shape, dtype):
        ...         return 2.0 * jax.numpy.ones(shape, dtype)
        >>> import jax
        >>> Twos()((2,))
        Array([2., 2.], dtype=float32)
    """

    _random = False  # whether _sample uses its key (a key is drawn only if so)

    @typechecked
    def __init__(self, seed: Integer | None = None):
        # A plain int, not a RandomState: an initializer stored on a module must add no State.
        self._seed = None if seed is None else int(seed)
        self._calls = 0

    @typechecked
    def __call__(
        self, shape: Size, dtype: DTypeLike | None = None, key: KeyLike = None
    ) -> jax.Array:
        """Sample an array of ``shape``.

        Args:
            shape: an int or a sequence of ints.
            dtype: the dtype (default :func:`facade.environ.dftype`).
            key: an int seed or a PRNG key for this draw (default: the initializer's seed, or a
                key split off :mod:`facade.random`).

        Returns:
            An array of ``shape`` and ``dtype``.

        Raises:
            TypeError: a parameter of the wrong type. ValueError: a negative dimension.

        Example:
            >>> from facade.nn import init
            >>> init.Uniform(0.0, 1.0)((4, 3), key=0).shape
            (4, 3)
        """
        dims = to_size(shape, type(self).__name__, "shape")
        dtype = environ.dftype() if dtype is None else dtype
        return self._sample(self._key(key) if self._random else None, dims, dtype)

    def _key(self, key: KeyLike) -> jax.Array:
        if key is not None:
            return (
                jax.random.PRNGKey(key) if isinstance(key, int | np.integer) else jnp.asarray(key)
            )
        if self._seed is None:
            return random.split_key()
        self._calls += 1
        return jax.random.fold_in(jax.random.PRNGKey(self._seed), self._calls - 1)

    def _sample(self, key: typing.Any, shape: tuple[int, ...], dtype: typing.Any) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must implement _sample")

    def _fields(self) -> dict[str, typing.Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._fields().items())
        return f"{type(self).__name__}({fields})"


class ZeroInit(Initializer):
    """Zeros.

    Example:
        >>> from facade.nn import init
        >>> init.ZeroInit()((2,))
        Array([0., 0.], dtype=float32)
    """

    def __init__(self) -> None:
        super().__init__()

    def _sample(self, key: typing.Any, shape: tuple[int, ...], dtype: typing.Any) -> jax.Array:
        # Built by numpy and transferred: no XLA program to compile for a new shape.
        return jnp.asarray(np.zeros(shape, dtype))


class Constant(Initializer):
    """Every element equal to ``value``.

    Args:
        value: the constant (a number, or an array broadcastable to the shape).

    Example:
        >>> from facade.nn import init
        >>> init.Constant(3.0)((2,))
        Array([3., 3.], dtype=float32)
    """

    @typechecked
    def __init__(self, value: Real | jax.Array | np.ndarray = 1.0):
        super().__init__()
        self.value = value

    def _sample(self, key: typing.Any, shape: tuple[int, ...], dtype: typing.Any) -> jax.Array:
        if isinstance(self.value, jax.Array):  # possibly traced: stay in JAX
            return jnp.broadcast_to(jnp.asarray(self.value, dtype), shape)
        return jnp.asarray(np.broadcast_to(np.asarray(self.value, dtype), shape))


class Normal(Initializer):
    """Normal samples with mean ``mean`` and standard deviation ``scale``.

    Args:
        mean: the mean.
        scale: the standard deviation (not negative).
        seed: see :class:`Initializer`.

    Raises:
        ValueError: ``scale`` is negative.

    Example:
        >>> from facade.nn import init
        >>> init.Normal(1.0, 0.0)((2,))
        Array([1., 1.], dtype=float32)
    """

    _random = True

    @typechecked
    def __init__(self, mean: Real = 0.0, scale: Real = 1.0, seed: Integer | None = None):
        super().__init__(seed)
        if scale < 0:
            raise ValueError(f"Normal: scale must not be negative, got {scale!r}")
        self.mean, self.scale = mean, scale

    def _sample(self, key: typing.Any, shape: tuple[int, ...], dtype: typing.Any) -> jax.Array:
        draw = jax.nn.initializers.normal(self.scale)(key, shape, dtype)
        return draw + jnp.asarray(self.mean, dtype)


class TruncatedNormal(Initializer):
    """Normal(``loc``, ``scale``) samples truncated to [``lower``, ``upper``] (in sample units).

    Args:
        loc: the mean before truncation.
        scale: the standard deviation before truncation (positive).
        lower: the lower bound.
        upper: the upper bound (above ``lower``).
        seed: see :class:`Initializer`.

    Raises:
        ValueError: ``scale`` not positive, or ``lower >= upper``.

    Example:
        >>> from facade.nn import init
        >>> x = init.TruncatedNormal(0.0, 1.0, -0.5, 0.5)((4, 3), key=0)
        >>> bool((abs(x) <= 0.5).all())
        True
    """

    _random = True

    @typechecked
    def __init__(
        self,
        loc: Real = 0.0,
        scale: Real = 1.0,
        lower: Real = -2.0,
        upper: Real = 2.0,
        seed: Integer | None = None,
    ):
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f"TruncatedNormal: scale must be positive, got {scale!r}")
        if lower >= upper:
            raise ValueError(f"TruncatedNormal: lower {lower!r} must be below upper {upper!r}")
        self.loc, self.scale, self.lower, self.upper = loc, scale, lower, upper

    def _sample(self, key: typing.Any, shape: tuple[int, ...], dtype: typing.Any) -> jax.Array:
        lo, hi = (self.lower - self.loc) / self.scale, (self.upper - self.loc) / self.scale
        z = jax.random.truncated_normal(key, lo, hi, shape, dtype)
        return z * jnp.asarray(self.scale, dtype) + jnp.asarray(self.loc, dtype)


class Uniform(Initializer):
    """Uniform samples in [``min_val``, ``max_val``).

    Args:
        min_val: the lower bound.
        max_val: the upper bound (not below ``min_val``).
        seed: see :class:`Initializer`.

    Raises:
        ValueError: ``max_val < min_val``.

    Example:
        >>> from facade.nn import init
        >>> x = init.Uniform(2.0, 3.0)((4, 3), key=0)
        >>> bool(((x >= 2.0) & (x < 3.0)).all())
        True
    """

    _random = True

    @typechecked
    def __init__(self, min_val: Real = 0.0, max_val: Real = 1.0, seed: Integer | None = None):
        super().__init__(seed)
        if max_val < min_val:
            raise ValueError(f"Uniform: max_val {max_val!r} is below min_val {min_val!r}")
        self.min_val, self.max_val = min_val, max_val

    def _sample(self, key: typing.Any, shape: tuple[int, ...], dtype: typing.Any) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, self.min_val, self.max_val)


def _ints(axis: Integer | Sequence[Integer]) -> int | tuple[int, ...]:
    return int(axis) if isinstance(axis, int | np.integer) else tuple(int(a) for a in axis)


class VarianceScaling(Initializer):
    """Samples with variance ``scale / n``, ``n`` the fan-in, fan-out or their mean.

    The fans come from the shape: ``in_axis`` and ``out_axis`` are the input and output
    axes, the other axes form the receptive field (a conv kernel's spatial axes). This is
    ``jax.nn.initializers.variance_scaling``.

    Args:
        scale: the variance scale (positive).
        mode: ``'fan_in'``, ``'fan_out'`` or ``'fan_avg'``.
        distribution: ``'truncated_normal'`` (truncated at two standard deviations, rescaled
            to the variance), ``'normal'`` or ``'uniform'``.
        in_axis: the input axis.
        out_axis: the output axis.
        seed: see :class:`Initializer`.

    Raises:
        ValueError: ``scale`` not positive, or an unknown ``mode`` or ``distribution``.

    Example:
        >>> from facade.nn import init
        >>> w = init.VarianceScaling(2.0, "fan_in", "uniform")((4, 3), key=0)
        >>> # uniform in +-sqrt(3 * variance), variance = scale / fan_in = 2 / 4
        >>> bool((abs(w) <= (3 * 2.0 / 4) ** 0.5).all())
        True
    """

    _random = True

    @typechecked
    def __init__(
        self,
        scale: Real,
        mode: str,
        distribution: str,
        in_axis: Integer | Sequence[Integer] = -2,
        out_axis: Integer | Sequence[Integer] = -1,
        seed: Integer | None = None,
    ):
        super().__init__(seed)
        name = type(self).__name__
        if scale <= 0:
            raise ValueError(f"{name}: scale must be positive, got {scale!r}")
        if mode not in _MODES:
            raise ValueError(f"{name}: mode must be one of {_MODES}, got {mode!r}")
        if distribution not in _DISTRIBUTIONS:
            raise ValueError(
                f"{name}: distribution must be one of {_DISTRIBUTIONS}, got {distribution!r}"
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.in_axis, self.out_axis = _ints(in_axis), _ints(out_axis)

    def _sample(self, key: typing.Any, shape: tuple[int, ...], dtype: typing.Any) -> jax.Array:
        sample = jax.nn.initializers.variance_scaling(
            self.scale,
            self.mode,  # type: ignore[arg-type]
            self.distribution,  # type: ignore[arg-type]
            in_axis=self.in_axis,
            out_axis=self.out_axis,
        )
        return sample(key, shape, dtype)


class KaimingNormal(VarianceScaling):
    """Kaiming (He) normal initializer: a preset :class:`VarianceScaling`.

    Same arguments as :class:`VarianceScaling`; by default ``scale=2.0``,
    ``mode='fan_in'``, ``distribution='truncated_normal'``.

    Example:
        >>> from facade.nn import init
        >>> init.KaimingNormal()((4, 3)).shape
        (4, 3)
    """

    @typechecked
    def __init__(
        self,
        scale: Real = 2.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        in_axis: Integer | Sequence[Integer] = -2,
        out_axis: Integer | Sequence[Integer] = -1,
        seed: Integer | None = None,
    ):
        super().__init__(scale, mode, distribution, in_axis, out_axis, seed)


class KaimingUniform(VarianceScaling):
    """Kaiming (He) uniform initializer: a preset :class:`VarianceScaling`.

    Same arguments as :class:`VarianceScaling`; by default ``scale=2.0``,
    ``mode='fan_in'``, ``distribution='uniform'``.

    Example:
        >>> from facade.nn import init
        >>> init.KaimingUniform()((4, 3)).shape
        (4, 3)
    """

    @typechecked
    def __init__(
        self,
        scale: Real = 2.0,
        mode: str = "fan_in",
        distribution: str = "uniform",
        in_axis: Integer | Sequence[Integer] = -2,
        out_axis: Integer | Sequence[Integer] = -1,
        seed: Integer | None = None,
    ):
        super().__init__(scale, mode, distribution, in_axis, out_axis, seed)


class XavierNormal(VarianceScaling):
    """Xavier (Glorot) normal initializer: a preset :class:`VarianceScaling`.

    Same arguments as :class:`VarianceScaling`; by default ``scale=1.0``,
    ``mode='fan_avg'``, ``distribution='truncated_normal'``.

    Example:
        >>> from facade.nn import init
        >>> init.XavierNormal()((4, 3)).shape
        (4, 3)
    """

    @typechecked
    def __init__(
        self,
        scale: Real = 1.0,
        mode: str = "fan_avg",
        distribution: str = "truncated_normal",
        in_axis: Integer | Sequence[Integer] = -2,
        out_axis: Integer | Sequence[Integer] = -1,
        seed: Integer | None = None,
    ):
        super().__init__(scale, mode, distribution, in_axis, out_axis, seed)


class XavierUniform(VarianceScaling):
    """Xavier (Glorot) uniform initializer: a preset :class:`VarianceScaling`.

    Same arguments as :class:`VarianceScaling`; by default ``scale=1.0``,
    ``mode='fan_avg'``, ``distribution='uniform'``.

    Example:
        >>> from facade.nn import init
        >>> init.XavierUniform()((4, 3)).shape
        (4, 3)
    """

    @typechecked
    def __init__(
        self,
        scale: Real = 1.0,
        mode: str = "fan_avg",
        distribution: str = "uniform",
        in_axis: Integer | Sequence[Integer] = -2,
        out_axis: Integer | Sequence[Integer] = -1,
        seed: Integer | None = None,
    ):
        super().__init__(scale, mode, distribution, in_axis, out_axis, seed)


class LecunNormal(VarianceScaling):
    """LeCun normal initializer: a preset :class:`VarianceScaling`.

    Same arguments as :class:`VarianceScaling`; by default ``scale=1.0``,
    ``mode='fan_in'``, ``distribution='truncated_normal'``.

    Example:
        >>> from facade.nn import init
        >>> init.LecunNormal()((4, 3)).shape
        (4, 3)
    """

    @typechecked
    def __init__(
        self,
        scale: Real = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        in_axis: Integer | Sequence[Integer] = -2,
        out_axis: Integer | Sequence[Integer] = -1,
        seed: Integer | None = None,
    ):
        super().__init__(scale, mode, distribution, in_axis, out_axis, seed)


class LecunUniform(VarianceScaling):
    """LeCun uniform initializer: a preset :class:`VarianceScaling`.

    Same arguments as :class:`VarianceScaling`; by default ``scale=1.0``,
    ``mode='fan_in'``, ``distribution='uniform'``.

    Example:
        >>> from facade.nn import init
        >>> init.LecunUniform()((4, 3)).shape
        (4, 3)
    """

    @typechecked
    def __init__(
        self,
        scale: Real = 1.0,
        mode: str = "fan_in",
        distribution: str = "uniform",
        in_axis: Integer | Sequence[Integer] = -2,
        out_axis: Integer | Sequence[Integer] = -1,
        seed: Integer | None = None,
    ):
        super().__init__(scale, mode, distribution, in_axis, out_axis, seed)


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``scale``, drawn as brainstate 0.5.4 draws it.

    The shape is read as a matrix whose columns are along ``axis`` and whose rows are all the
    other axes flattened; the rows or the columns, whichever are fewer, are orthonormal. For the
    same key the result is brainstate's: the normal draw is ``(n, m)`` with ``n >= m`` (``n`` the
    size along ``axis`` when it is larger, else the others'), its QR's ``Q`` is sign-corrected
    and laid out along ``axis`` as brainstate lays it out. ``jax.nn.initializers.orthogonal``
    agrees for non-square matrices but gives the transpose of a square one.

    Args:
        scale: the factor.
        axis: the column axis.
        seed: see :class:`Initializer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from facade.nn import init
        >>> q = init.Orthogonal()((4, 3), key=0)
        >>> bool(jnp.allclose(q.T @ q, jnp.eye(3), atol=1e-5))
        True
    """

    _random = True

    @typechecked
    def __init__(self, scale: Real = 1.0, axis: Integer = -1, seed: Integer | None = None):
        super().__init__(seed)
        self.scale, self.axis = scale, int(axis)

    def _sample(self, key: typing.Any, shape: tuple[int, ...], dtype: typing.Any) -> jax.Array:
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: needs a shape of at least 2 dimensions, got {shape}")
        n_axis = shape[self.axis]  # an axis out of range raises IndexError, as jax's does
        axis = self.axis % len(shape)
        n_rest = math.prod(shape) // n_axis if n_axis else 0
        # brainstate's layout: the draw has the larger side first, and a square Q is laid out
        # as (axis, rest); jax's initializer lays it out as (rest, axis), the transpose.
        draw = (n_axis, n_rest) if n_axis > n_rest else (n_rest, n_axis)
        q, r = jnp.linalg.qr(jax.random.normal(key, draw, dtype))
        q = q * jnp.sign(jnp.diag(r))  # makes Q uniformly distributed (Haar measure)
        if n_axis < n_rest:
            q = q.T
        rest = tuple(d for i, d in enumerate(shape) if i != axis)
        q = jnp.moveaxis(jnp.reshape(q, (n_axis, *rest)), 0, axis)
        return jnp.asarray(self.scale, dtype) * q


def _is_scalar(x: typing.Any) -> bool:
    return isinstance(x, int | float | bool | np.number) or (
        isinstance(x, jax.Array | np.ndarray) and x.ndim == 0
    )


@typechecked
def param(
    parameter: InitLike | None,
    sizes: Size,
    batch_size: Integer | None = None,
    allow_none: bool = True,
    allow_scalar: bool = True,
) -> typing.Any:
    """The value of a parameter or state from its initializer argument.

    Args:
        parameter: an initializer (any callable ``f(shape)``), an array whose shape broadcasts
            to ``sizes``, a number, or None.
        sizes: the shape without the batch axis.
        batch_size: if given, a leading batch axis of this size (arrays are repeated along it).
        allow_none: whether ``parameter`` may be None (then None is returned).
        allow_scalar: whether a number (or 0-d array) is returned as is.

    Returns:
        ``parameter((batch_size, *sizes))`` for a callable, the array (broadcast to the batch
        shape when ``batch_size`` is given), the number itself, or None.

    Raises:
        ValueError: None when ``allow_none`` is False, an array whose shape does not broadcast
            to ``sizes``, a negative size, or a ``batch_size`` below 1.

    Example:
        >>> import jax.numpy as jnp
        >>> from facade.nn import init
        >>> init.param(init.ZeroInit(), 3, batch_size=2).shape
        (2, 3)
        >>> init.param(0.5, (3,))
        0.5
    """
    shape = to_size(sizes, "param", "sizes")
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"param: batch_size must be a positive integer, got {batch_size!r}")
    if parameter is None:
        if allow_none:
            return None
        raise ValueError("param: expected an initializer, an array or a number, got None")
    if allow_scalar and _is_scalar(parameter):
        return parameter
    if callable(parameter):
        return parameter(shape if batch_size is None else (int(batch_size), *shape))
    value = jnp.asarray(parameter)
    try:
        np.broadcast_shapes(value.shape, shape)
    except ValueError:
        raise ValueError(
            f"param: an array of shape {value.shape} does not broadcast to the shape {shape}"
        ) from None
    if batch_size is None:
        return value
    if value.ndim > len(shape):  # already batched: its leading axis must be the batch
        if value.shape[0] != batch_size:
            raise ValueError(
                f"param: the array's leading axis {value.shape[0]} is not the batch size "
                f"{batch_size}"
            )
        return value
    return jnp.broadcast_to(value, (int(batch_size), *shape))
