"""Activation functions (``jax.nn``'s) and their module forms, plus ``Identity`` and ``Flatten``.

The functions are ``jax.nn``'s own objects, re-exported under brainstate's names. Each module
form holds no state and applies its function element-wise (``Softmax`` and friends along an
axis), so in a :class:`~facade.nn.Sequential` it keeps the size it is given.
"""

from __future__ import annotations

import math
import typing

import jax
import jax.numpy as jnp

from ._checks import Integer, Real, Size, to_size, typechecked
from ._module import Module

__all__ = [
    "CELU",
    "ELU",
    "GELU",
    "GLU",
    "ElementWiseBlock",
    "Flatten",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "Identity",
    "LeakyReLU",
    "LogSigmoid",
    "LogSoftmax",
    "Mish",
    "ReLU",
    "ReLU6",
    "SELU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Softsign",
    "Tanh",
    "celu",
    "elu",
    "gelu",
    "glu",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "mish",
    "one_hot",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "soft_sign",
    "softmax",
    "softplus",
    "sparse_plus",
    "squareplus",
    "standardize",
    "swish",
    "tanh",
]

celu = jax.nn.celu
elu = jax.nn.elu
gelu = jax.nn.gelu
glu = jax.nn.glu
hard_sigmoid = jax.nn.hard_sigmoid
hard_silu = jax.nn.hard_silu
hard_swish = jax.nn.hard_swish
hard_tanh = jax.nn.hard_tanh
leaky_relu = jax.nn.leaky_relu
log_sigmoid = jax.nn.log_sigmoid
log_softmax = jax.nn.log_softmax
logsumexp = jax.nn.logsumexp
mish = jax.nn.mish
one_hot = jax.nn.one_hot
relu = jax.nn.relu
relu6 = jax.nn.relu6
selu = jax.nn.selu
sigmoid = jax.nn.sigmoid
silu = jax.nn.silu
soft_sign = jax.nn.soft_sign
softmax = jax.nn.softmax
softplus = jax.nn.softplus
sparse_plus = jax.nn.sparse_plus
squareplus = jax.nn.squareplus
standardize = jax.nn.standardize
swish = jax.nn.swish
tanh = jax.nn.tanh


class ElementWiseBlock(Module):
    """Base of the stateless layers that keep their input's shape (the activations).

    Subclasses define ``update(x)``. In a :class:`~facade.nn.Sequential` such a layer keeps
    the size it is given.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> class Double(facade.nn.ElementWiseBlock):
        ...     def update(self, x):
        ...         return 2 * x
        >>> Double()(jnp.ones(2))
        Array([2., 2.], dtype=float32)
    """

    _size_preserving = True
    _repr_fields: tuple[str, ...] = ()


class ReLU(ElementWiseBlock):
    """The rectified linear unit, as a layer: ``jax.nn.relu`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.ReLU()(x) == jax.nn.relu(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.relu(x)``."""
        return jax.nn.relu(x)


class ReLU6(ElementWiseBlock):
    """ReLU capped at 6, as a layer: ``jax.nn.relu6`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.ReLU6()(x) == jax.nn.relu6(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.relu6(x)``."""
        return jax.nn.relu6(x)


class Sigmoid(ElementWiseBlock):
    """The logistic sigmoid, as a layer: ``jax.nn.sigmoid`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.Sigmoid()(x) == jax.nn.sigmoid(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.sigmoid(x)``."""
        return jax.nn.sigmoid(x)


class Tanh(ElementWiseBlock):
    """The hyperbolic tangent, as a layer: ``jax.nn.tanh`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.Tanh()(x) == jax.nn.tanh(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.tanh(x)``."""
        return jax.nn.tanh(x)


class SiLU(ElementWiseBlock):
    """The sigmoid linear unit (swish), as a layer: ``jax.nn.silu`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.SiLU()(x) == jax.nn.silu(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.silu(x)``."""
        return jax.nn.silu(x)


class SELU(ElementWiseBlock):
    """The scaled exponential linear unit, as a layer: ``jax.nn.selu`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.SELU()(x) == jax.nn.selu(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.selu(x)``."""
        return jax.nn.selu(x)


class Softplus(ElementWiseBlock):
    """Softplus, log(1 + exp(x)), as a layer: ``jax.nn.softplus`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.Softplus()(x) == jax.nn.softplus(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.softplus(x)``."""
        return jax.nn.softplus(x)


class Softsign(ElementWiseBlock):
    """Softsign, x / (1 + |x|), as a layer: ``jax.nn.soft_sign`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.Softsign()(x) == jax.nn.soft_sign(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.soft_sign(x)``."""
        return jax.nn.soft_sign(x)


class LogSigmoid(ElementWiseBlock):
    """The log of the sigmoid, as a layer: ``jax.nn.log_sigmoid`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.LogSigmoid()(x) == jax.nn.log_sigmoid(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.log_sigmoid(x)``."""
        return jax.nn.log_sigmoid(x)


class Hardsigmoid(ElementWiseBlock):
    """The hard sigmoid, relu6(x + 3) / 6, as a layer: ``jax.nn.hard_sigmoid`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.Hardsigmoid()(x) == jax.nn.hard_sigmoid(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.hard_sigmoid(x)``."""
        return jax.nn.hard_sigmoid(x)


class Hardswish(ElementWiseBlock):
    """The hard swish, x * hard_sigmoid(x), as a layer: ``jax.nn.hard_swish`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.Hardswish()(x) == jax.nn.hard_swish(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.hard_swish(x)``."""
        return jax.nn.hard_swish(x)


class Mish(ElementWiseBlock):
    """Mish, x * tanh(softplus(x)), as a layer: ``jax.nn.mish`` element-wise.

    Args:
        name: an optional name, shown in the repr.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.Mish()(x) == jax.nn.mish(x)).all())
        True
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.mish(x)``."""
        return jax.nn.mish(x)


class Identity(ElementWiseBlock):
    """Return the input unchanged.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.nn.Identity()(jnp.ones(2))
        Array([1., 1.], dtype=float32)
    """

    def update(self, x: typing.Any) -> typing.Any:
        """``x`` itself."""
        return x


class GELU(ElementWiseBlock):
    """The Gaussian error linear unit: ``jax.nn.gelu`` element-wise.

    Args:
        approximate: use the tanh approximation (brainstate's default here is the exact form,
            unlike ``jax.nn.gelu``'s).

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> x = jnp.array([-1.0, 0.5])
        >>> bool((facade.nn.GELU()(x) == jax.nn.gelu(x, approximate=False)).all())
        True
    """

    _repr_fields = ("approximate",)

    @typechecked
    def __init__(self, approximate: bool = False) -> None:
        super().__init__()
        self.approximate = approximate

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.gelu(x, approximate=self.approximate)``."""
        return jax.nn.gelu(x, approximate=self.approximate)


class LeakyReLU(ElementWiseBlock):
    """Leaky ReLU: ``x`` where positive, ``negative_slope * x`` elsewhere.

    Args:
        negative_slope: the slope for negative inputs.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.nn.LeakyReLU(0.1)(jnp.array([-1.0, 2.0]))
        Array([-0.1,  2. ], dtype=float32)
    """

    _repr_fields = ("negative_slope",)

    @typechecked
    def __init__(self, negative_slope: Real = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.leaky_relu(x, negative_slope)``."""
        return jax.nn.leaky_relu(x, self.negative_slope)


class ELU(ElementWiseBlock):
    """The exponential linear unit: ``jax.nn.elu(x, alpha)``.

    Args:
        alpha: the scale of the negative part.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> bool(facade.nn.ELU(0.5)(jnp.array(-1.0)) == jax.nn.elu(-1.0, 0.5))
        True
    """

    _repr_fields = ("alpha",)

    @typechecked
    def __init__(self, alpha: Real = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.elu(x, alpha)``."""
        return jax.nn.elu(x, self.alpha)


class CELU(ElementWiseBlock):
    """The continuously differentiable ELU: ``jax.nn.celu(x, alpha)``.

    Args:
        alpha: the scale of the negative part.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> bool(facade.nn.CELU(0.5)(jnp.array(-1.0)) == jax.nn.celu(-1.0, 0.5))
        True
    """

    _repr_fields = ("alpha",)

    @typechecked
    def __init__(self, alpha: Real = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.celu(x, alpha)``."""
        return jax.nn.celu(x, self.alpha)


class Hardtanh(ElementWiseBlock):
    """Clip to [``min_val``, ``max_val``].

    Args:
        min_val: the lower bound.
        max_val: the upper bound.

    Raises:
        ValueError: ``min_val > max_val``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.nn.Hardtanh()(jnp.array([-3.0, 0.5, 3.0]))
        Array([-1. ,  0.5,  1. ], dtype=float32)
    """

    _repr_fields = ("min_val", "max_val")

    @typechecked
    def __init__(self, min_val: Real = -1.0, max_val: Real = 1.0) -> None:
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val {min_val!r} is above max_val {max_val!r}")
        self.min_val, self.max_val = min_val, max_val

    def update(self, x: typing.Any) -> typing.Any:
        """``clip(x, min_val, max_val)``."""
        return jnp.clip(x, self.min_val, self.max_val)


class Softmax(ElementWiseBlock):
    """Softmax along ``dim``: ``jax.nn.softmax(x, axis=dim)`` (the last axis when None).

    Args:
        dim: the axis whose slices sum to 1.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.nn.Softmax()(jnp.zeros((1, 2)))
        Array([[0.5, 0.5]], dtype=float32)
    """

    _repr_fields = ("dim",)

    @typechecked
    def __init__(self, dim: Integer | None = None) -> None:
        super().__init__()
        self.dim = dim

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.softmax(x, axis)``."""
        return jax.nn.softmax(x, axis=-1 if self.dim is None else int(self.dim))


class LogSoftmax(ElementWiseBlock):
    """Log-softmax along ``dim``: ``jax.nn.log_softmax(x, axis=dim)`` (the last axis if None).

    Args:
        dim: the axis to normalise over.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.nn.LogSoftmax()(jnp.zeros(2))
        Array([-0.6931472, -0.6931472], dtype=float32)
    """

    _repr_fields = ("dim",)

    @typechecked
    def __init__(self, dim: Integer | None = None) -> None:
        super().__init__()
        self.dim = dim

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.log_softmax(x, axis)``."""
        return jax.nn.log_softmax(x, axis=-1 if self.dim is None else int(self.dim))


class GLU(ElementWiseBlock):
    """The gated linear unit along ``dim``: ``jax.nn.glu`` (halves that axis).

    Args:
        dim: the axis split in two halves ``a, b``; the result is ``a * sigmoid(b)``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.nn.GLU()(jnp.ones((3, 4))).shape
        (3, 2)
    """

    _size_preserving = False  # the split axis halves
    _repr_fields = ("dim",)

    @typechecked
    def __init__(self, dim: Integer = -1) -> None:
        super().__init__()
        self.dim = dim

    def update(self, x: typing.Any) -> typing.Any:
        """``jax.nn.glu(x, axis)``."""
        return jax.nn.glu(x, axis=int(self.dim))


class Flatten(Module):
    """Merge the axes ``start_axis`` to ``end_axis`` into one.

    With ``in_size`` the axes count within one example (``in_size`` are the trailing axes of
    the input; any leading batch axes are kept) and ``out_size`` is known; without it they
    count in the input itself.

    Args:
        start_axis: the first axis to merge.
        end_axis: the last axis to merge (inclusive).
        in_size: the shape of one example, if known.

    Raises:
        ValueError: the axes are out of range for ``in_size``, or (when called) the input's
            trailing shape is not ``in_size``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> flat = facade.nn.Flatten(in_size=(4, 4, 2))
        >>> flat(jnp.ones((8, 4, 4, 2))).shape, flat.out_size
        ((8, 32), (32,))
    """

    _repr_fields = ("start_axis", "end_axis", "in_size", "out_size")

    @typechecked
    def __init__(
        self, start_axis: Integer = 0, end_axis: Integer = -1, in_size: Size | None = None
    ) -> None:
        super().__init__()
        self.start_axis, self.end_axis = int(start_axis), int(end_axis)
        if in_size is not None:
            self.in_size = to_size(in_size, "Flatten", "in_size")
            start, end = self._range(len(self.in_size))
            dims = self.in_size
            self.out_size = (*dims[:start], math.prod(dims[start : end + 1]), *dims[end + 1 :])

    def _range(self, ndim: int) -> tuple[int, int]:
        start, end = self.start_axis, self.end_axis
        if not (-ndim <= start < ndim and -ndim <= end < ndim) or start % ndim > end % ndim:
            raise ValueError(
                f"Flatten: start_axis {start} and end_axis {end} do not select axes of a "
                f"{ndim}-dimensional input"
            )
        return start % ndim, end % ndim

    def update(self, x: typing.Any) -> jax.Array:
        """``x`` with the selected axes merged.

        Args:
            x: an array (``(..., *in_size)`` when ``in_size`` was given).

        Returns:
            The reshaped array.
        """
        x = jnp.asarray(x)
        if self.in_size is None:
            offset, (start, end) = 0, self._range(x.ndim)
        else:
            n = len(self.in_size)
            if x.shape[x.ndim - n :] != self.in_size:
                raise ValueError(
                    f"Flatten: expected an input ending in shape {self.in_size}, got {x.shape}"
                )
            offset, (start, end) = x.ndim - n, self._range(n)
        start, end = start + offset, end + offset
        return x.reshape(*x.shape[:start], -1, *x.shape[end + 1 :])
