"""``Param``: a parameter module with an optional bijective transform and regularization.

brainstate 0.5.4's ``nn.Param``: the value is stored in the transform's unconstrained space (a
``ParamState`` when ``fit``, a plain array otherwise); ``value()`` maps it back through
``t.forward`` (then ``precompute``). Also ``Const`` (a fixed Param), the ``Transform`` and
``Regularization`` bases and ``IdentityT``; brainstate's concrete transforms and regularizers
(``SoftplusT``, ``L2Reg``, ...) are not provided yet.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import environ
from .._state import ParamState, State
from ._module import Module

__all__ = ["Const", "IdentityT", "Param", "Regularization", "Transform"]

try:  # Quantities keep their unit, as in brainstate; brainunit is optional here
    import brainunit as _u

    _asarray: Callable[..., Any] = _u.math.asarray  # type: ignore[attr-defined]
    _clip: Callable[..., Any] = _u.math.clip  # type: ignore[attr-defined]
    _QUANTITY: tuple[type, ...] = (_u.Quantity,)
except ImportError:  # pragma: no cover - brainunit comes with the test extra
    _asarray, _clip, _QUANTITY = jnp.asarray, jnp.clip, ()


class Transform:
    """A bijection between a constrained space and the unconstrained one parameters live in.

    Subclasses define ``forward`` (unconstrained -> constrained) and ``inverse``.
    """

    def forward(self, x: Any) -> Any:
        raise NotImplementedError

    def inverse(self, y: Any) -> Any:
        raise NotImplementedError

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        """``log |d forward / dx|`` at ``x`` (``y = forward(x)``), for densities."""
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class IdentityT(Transform):
    """The identity transform (the default of :class:`Param`)."""

    def forward(self, x: Any) -> Any:
        return x

    def inverse(self, y: Any) -> Any:
        return y

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        return jnp.zeros_like(x)


class Regularization(Module):
    """A penalty on a parameter: ``loss(value)`` and the prior's ``reset_value()``.

    Args:
        fit_hyper: whether the regularizer's own hyper-parameters are trainable (kept for
            subclasses, as in brainstate).
    """

    def __init__(self, fit_hyper: bool = False):
        super().__init__()
        self.fit_hyper = fit_hyper

    def loss(self, value: Any) -> Any:
        raise NotImplementedError

    def reset_value(self) -> Any:
        raise NotImplementedError


class Param(Module):
    """A trainable (or fixed) parameter with an optional transform and regularization.

    Args:
        value: the initial value, in the constrained space.
        t: a :class:`Transform`; the stored value is ``t.inverse(value)``.
        reg: a :class:`Regularization` or None.
        precompute: a function applied to ``t.forward(stored)`` by :meth:`value`.
        fit: store the value in a ``ParamState`` (trainable) or as a plain array.
        enable_cache_logging: accepted for brainstate's signature; the facade logs nothing.

    Raises:
        TypeError: ``t`` is not a Transform.
        ValueError: ``reg`` is neither None nor a Regularization.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> p = facade.nn.Param(jnp.array([1.0, 2.0]))
        >>> isinstance(p.val, facade.ParamState), p.value().tolist(), p.reg_loss()
        (True, [1.0, 2.0], 0.0)
        >>> p.set_value(jnp.array([3.0, 4.0])); p.value().tolist()
        [3.0, 4.0]
    """

    def __init__(
        self,
        value: Any,
        t: Transform = IdentityT(),  # noqa: B008 - stateless, shared as in brainstate
        reg: Any = None,  # Regularization | None, checked below: brainstate raises ValueError
        precompute: Callable | None = None,
        fit: bool = True,
        enable_cache_logging: bool = False,
    ):
        super().__init__()
        if precompute is not None and not callable(precompute):
            raise TypeError("precompute must be a callable function or None.")
        if not (reg is None or isinstance(reg, Regularization)):
            raise ValueError("Regularization must be None or instance of Regularization.")
        if not isinstance(t, Transform):
            raise TypeError(f"t must be an instance of Transform. But got {type(t)}.")
        self.fit = fit
        self.t = t
        self.reg = reg
        self.precompute = precompute
        self._enable_cache_logging = enable_cache_logging
        self._cache_lock = threading.RLock()
        # (stored value the cache was computed from, transformed value). brainstate invalidates
        # it with a State write hook; the facade's States have no hooks, so the cache remembers
        # which stored value it belongs to and is used only while that value is still current.
        self._cache: tuple[Any, Any] | None = None
        stored = self.t.inverse(_asarray(value, dtype=environ.dftype()))
        self.val: Any = ParamState(stored) if fit else stored

    def _stored(self) -> Any:
        return self.val.value if isinstance(self.val, State) else self.val

    def _transformed(self, stored: Any) -> Any:
        out = self.t.forward(stored)
        return out if self.precompute is None else self.precompute(out)

    def cache(self) -> Any:
        """Compute the transformed value, keep it for later :meth:`value` calls, return it."""
        stored = self._stored()
        with self._cache_lock:
            self._cache = (stored, self._transformed(stored))
            return self._cache[1]

    def clear_cache(self) -> None:
        """Forget the cached transformed value."""
        with self._cache_lock:
            self._cache = None

    def value(self) -> Any:
        """The constrained value: ``precompute(t.forward(stored))`` (cached by :meth:`cache`)."""
        stored = self._stored()
        with self._cache_lock:
            if self._cache is not None and self._cache[0] is stored:
                return self._cache[1]
        return self._transformed(stored)

    def set_value(self, value: Any) -> None:
        """Store ``t.inverse(value)`` (a State write when ``fit``); clears the cache."""
        self.clear_cache()
        stored = self.t.inverse(value)
        if isinstance(self.val, State):
            self.val.value = stored
        else:
            self.val = stored

    def reg_loss(self) -> Any:
        """The regularization loss of :meth:`value`; ``0.0`` without ``reg`` or when not fit."""
        if not self.fit or self.reg is None:
            return 0.0
        return self.reg.loss(self.value())

    def reset_to_prior(self) -> None:
        """Set the value to the regularization's prior value (no-op without ``reg``)."""
        if self.reg is not None:
            self.set_value(self.reg.reset_value())

    def clip(self, min_val: float | None = None, max_val: float | None = None) -> None:
        """Clamp the (constrained) value in place."""
        self.set_value(_clip(self.value(), min_val, max_val))

    @property
    def cache_stats(self) -> dict:
        """``{'valid': ..., 'has_cached_value': ...}`` for the current stored value."""
        with self._cache_lock:
            valid = self._cache is not None and self._cache[0] is self._stored()
            return {"valid": valid, "has_cached_value": self._cache is not None}

    @classmethod
    def init(
        cls,
        data: Any,
        sizes: int | Sequence[int] | None = None,
        allow_none: bool = True,
        **param_kwargs: Any,
    ) -> Param | None:
        """A Param from a Param (returned as is), an initializer (called with ``sizes``), an
        array or a scalar (wrapped in :class:`Const`); None passes through when ``allow_none``.

        Raises:
            ValueError: ``data`` is None and ``allow_none`` is False, or its shape does not
                broadcast to ``sizes``.
            TypeError: ``data`` is of another type.
        """
        if data is None:
            if allow_none:
                return None
            raise ValueError(
                "Expect a parameter with type of float, ArrayType, Initializer, or Callable "
                "function, but we got None."
            )
        shape = None if sizes is None else ((sizes,) if isinstance(sizes, int) else tuple(sizes))
        if not isinstance(data, Param):
            if callable(data):
                if shape is None:
                    raise ValueError("When the parameter is a callable, sizes must be given.")
                data = data(shape, **param_kwargs)
            if not (np.ndim(data) == 0 or isinstance(data, (np.ndarray, jax.Array, *_QUANTITY))):
                raise TypeError(f"Unknown parameter type: {type(data)}")
            data = Const(data)
        if shape is not None:
            got = np.shape(data.value())
            try:
                np.broadcast_shapes(got, shape)
            except ValueError:
                raise ValueError(f"The shape of {got} does not match with {shape}") from None
        return data


class Const(Param):
    """A fixed (non-trainable) :class:`Param`: ``fit=False``."""

    def __init__(self, value: Any, **param_kwargs: Any):
        param_kwargs.setdefault("fit", False)
        super().__init__(value, **param_kwargs)
