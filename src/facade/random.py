"""Random numbers from a State: ``RandomState`` and numpy.random-like functions on a default one.

A :class:`RandomState` holds a raw ``uint32`` PRNG key (``jax.random.PRNGKey``). Every draw
reads the key through ``.value``, splits it, writes one half back through ``.value`` and uses the
other: two draws give different numbers, the same seed gives the same numbers, and inside a
facade transform the key is threaded like any other state.

Draws share these keyword arguments:

* ``size``: the output shape (an int or a sequence of ints); None means the broadcast shape of
  the distribution's parameters (a scalar for none).
* ``key``: an int seed or a PRNG key to use instead of the state's; the state is not advanced.
* ``dtype``: the output dtype; by default :func:`facade.environ.dftype` for floats and
  :func:`facade.environ.ditype` for integers.

With ``key=None`` a draw uses ``split_key()``: the state's key ``k`` becomes ``split(k)[0]``
and the draw uses ``split(k)[1]``.

Example:
    >>> from facade import random
    >>> random.seed(0)
    >>> a = random.normal(size=(3,))
    >>> random.seed(0)
    >>> bool((random.normal(size=(3,)) == a).all())
    True
"""

from __future__ import annotations

import os
import threading
import typing
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.typing import DTypeLike

from . import environ
from ._state import State, peek

__all__ = [
    "DEFAULT",
    "RandomState",
    "ball",
    "bernoulli",
    "beta",
    "binomial",
    "bits",
    "categorical",
    "cauchy",
    "chisquare",
    "choice",
    "default_rng",
    "dirichlet",
    "double_sided_maxwell",
    "exponential",
    "f",
    "gamma",
    "generalized_normal",
    "geometric",
    "get_key",
    "gumbel",
    "laplace",
    "loggamma",
    "logistic",
    "lognormal",
    "maxwell",
    "multinomial",
    "multivariate_normal",
    "normal",
    "orthogonal",
    "pareto",
    "permutation",
    "poisson",
    "rademacher",
    "rand",
    "rand_like",
    "randint",
    "randint_like",
    "randn",
    "randn_like",
    "random",
    "random_integers",
    "random_sample",
    "ranf",
    "rayleigh",
    "sample",
    "seed",
    "set_key",
    "shuffle",
    "split_key",
    "split_keys",
    "standard_cauchy",
    "standard_exponential",
    "standard_gamma",
    "standard_normal",
    "standard_t",
    "t",
    "triangular",
    "truncated_normal",
    "uniform",
    "wald",
    "weibull",
    "weibull_min",
]

# A distribution parameter: an array, a scalar or a (nested) sequence of numbers; JAX checks it.
Param = typing.Any
Size = int | np.integer | Sequence[int | np.integer] | None
KeyLike = int | np.integer | jax.Array | np.ndarray | None

# One read-split-write at a time: two threads drawing from DEFAULT must not get the same key.
_LOCK = threading.RLock()


def _fresh_key() -> np.ndarray:
    """A raw key from OS entropy, as numpy (no JAX device work at import)."""
    return np.frombuffer(os.urandom(8), dtype=np.uint32).copy()


def _as_key(key: typing.Any, name: str) -> typing.Any:
    """An int seed, a raw uint32 key or a typed key, as a raw uint32 key."""
    if isinstance(key, int | np.integer) and not isinstance(key, bool | np.bool_):
        return jr.PRNGKey(int(key))
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return jr.key_data(key)
    if isinstance(key, jax.Array | np.ndarray) and key.dtype == np.uint32 and key.ndim == 1:
        return key
    raise TypeError(
        f"{name} must be an int seed or a PRNG key (jax.random.PRNGKey / jax.random.key), "
        f"got {type(key).__name__}: {key!r}"
    )


def _count(n: typing.Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}: {n!r}")
    if n < 1:
        raise ValueError(f"{name} must be at least 1, got {n}")
    return int(n)


def _size(size: typing.Any, *params: typing.Any) -> tuple[int, ...]:
    """``size`` as a shape tuple; None gives the broadcast shape of ``params``."""
    if size is None:
        return tuple(jnp.broadcast_shapes(*(np.shape(p) for p in params))) if params else ()
    dims = (size,) if isinstance(size, int | np.integer) else size
    if not isinstance(dims, tuple | list) or any(
        isinstance(d, bool) or not isinstance(d, int | np.integer) for d in dims
    ):
        raise TypeError(f"size must be None, an int or a sequence of ints, got {size!r}")
    if any(d < 0 for d in dims):
        raise ValueError(f"size must not have negative dimensions, got {size!r}")
    return tuple(int(d) for d in dims)


def _batch(size: typing.Any) -> tuple[int, ...] | None:
    """``size`` for jax functions whose ``shape=None`` means "from the parameters"."""
    return None if size is None else _size(size)


def _dtype(dtype: typing.Any, kind: str) -> typing.Any:
    """Check ``dtype`` is of ``kind`` ('float' or 'int'); None gives the environ default."""
    if dtype is None:
        return environ.dftype() if kind == "float" else environ.ditype()
    try:
        dt = jnp.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be a dtype, got {dtype!r}") from None
    parent = jnp.floating if kind == "float" else jnp.integer
    if not jnp.issubdtype(dt, parent):
        raise TypeError(f"dtype must be a {kind} dtype here, got {dt}")
    return dt


def _arr(x: typing.Any) -> typing.Any:
    """Python sequences as arrays (jax.random rejects lists); everything else as given."""
    return jnp.asarray(x) if isinstance(x, list | tuple) else x


def _affine(x: jax.Array, loc: typing.Any, scale: typing.Any) -> jax.Array:
    """``loc + scale * x``, skipping the no-op defaults (fewer dispatches when eager)."""
    if not (isinstance(scale, int | float) and scale == 1):
        x = x * _arr(scale)
    if not (isinstance(loc, int | float) and loc == 0):
        x = x + _arr(loc)
    return x


class RandomState(State):
    """A State holding a PRNG key; every draw splits the key and writes the state.

    The key is a raw ``uint32`` array as made by ``jax.random.PRNGKey`` (typed keys from
    ``jax.random.key`` are accepted and converted). See the module docstring for the ``size``,
    ``key`` and ``dtype`` arguments shared by the draws.

    Args:
        seed_or_key: an int seed, a PRNG key, or None for a seed from OS entropy.
        name: an optional name shown in reprs and error messages.

    Raises:
        TypeError: ``seed_or_key`` is neither an int nor a PRNG key.

    Example:
        >>> import jax
        >>> from facade.random import RandomState
        >>> rs = RandomState(42)
        >>> x = rs.uniform(size=3)
        >>> k = jax.random.split(jax.random.PRNGKey(42))[1]
        >>> bool((x == jax.random.uniform(k, (3,))).all())
        True
    """

    __slots__ = ()

    def __init__(self, seed_or_key: KeyLike = None, *, name: str | None = None):
        key = _fresh_key() if seed_or_key is None else _as_key(seed_or_key, "seed_or_key")
        super().__init__(key, name=name)

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"{type(self).__name__}(key={np.asarray(peek(self)).tolist()}{name})"

    # ---------------------------------------------------------------- keys

    def seed(self, seed_or_key: KeyLike = None) -> None:
        """Reset the key from an int seed or a key (None: a seed from OS entropy).

        Args:
            seed_or_key: an int seed, a PRNG key, or None.

        Raises:
            TypeError: ``seed_or_key`` is neither an int nor a PRNG key.

        Example:
            >>> from facade.random import RandomState
            >>> rs = RandomState(0)
            >>> rs.seed(1)
            >>> rs.get_key().tolist()
            [0, 1]
        """
        self.value = _fresh_key() if seed_or_key is None else _as_key(seed_or_key, "seed_or_key")

    def get_key(self) -> jax.Array:
        """The current key (the state is not advanced).

        Returns:
            A raw ``uint32`` key.

        Example:
            >>> from facade.random import RandomState
            >>> RandomState(3).get_key().tolist()
            [0, 3]
        """
        return jnp.asarray(self.value)  # the entropy-seeded initial key is numpy

    def set_key(self, seed_or_key: KeyLike) -> None:
        """Replace the key.

        Args:
            seed_or_key: a PRNG key (raw ``uint32`` or typed) or an int seed.

        Raises:
            TypeError: ``key`` is not a key.

        Example:
            >>> import jax
            >>> from facade.random import RandomState
            >>> rs = RandomState(0)
            >>> rs.set_key(jax.random.PRNGKey(5))
            >>> rs.get_key().tolist()
            [0, 5]
        """
        if seed_or_key is None:
            raise TypeError("key must be an int seed or a PRNG key, got None")
        self.value = _as_key(seed_or_key, "key")

    def split_key(self, n: int | None = None) -> jax.Array:
        """Advance the state and return fresh key(s): ``k -> split(k, n+1)``, keep the first.

        Args:
            n: None for one key, or the number of keys to return.

        Returns:
            One raw key (``n`` None) or an array of ``n`` keys.

        Raises:
            TypeError: ``n`` is not an int. ValueError: ``n`` < 1.

        Example:
            >>> import jax
            >>> from facade.random import RandomState
            >>> rs = RandomState(0)
            >>> k = rs.split_key()
            >>> bool((k == jax.random.split(jax.random.PRNGKey(0))[1]).all())
            True
        """
        count = 1 if n is None else _count(n, "n")
        with _LOCK:
            keys = jr.split(self.value, count + 1)
            self.value = keys[0]
        return keys[1] if n is None else keys[1:]

    def split_keys(self, n: int) -> jax.Array:
        """Advance the state and return ``n`` fresh keys (``split_key(n)``).

        Args:
            n: the number of keys.

        Returns:
            An array of ``n`` raw keys.

        Raises:
            TypeError: ``n`` is not an int. ValueError: ``n`` < 1.

        Example:
            >>> from facade.random import RandomState
            >>> RandomState(0).split_keys(3).shape
            (3, 2)
        """
        return self.split_key(_count(n, "n"))

    def clone(self) -> RandomState:
        """A new RandomState seeded with a key split off this one.

        Returns:
            An independent RandomState.

        Example:
            >>> from facade.random import RandomState
            >>> type(RandomState(0).clone()).__name__
            'RandomState'
        """
        return type(self)(self.split_key())

    def _key(self, key: typing.Any) -> typing.Any:
        return self.split_key() if key is None else _as_key(key, "key")

    # ---------------------------------------------------------------- uniform and normal

    def rand(self, *dn: int, key: KeyLike = None, dtype: DTypeLike | None = None) -> jax.Array:
        """Uniform samples in [0, 1) of shape ``dn`` (``numpy.random.rand``).

        Args:
            *dn: the dimensions.
            key: use this key instead of the state's (the state is not advanced).
            dtype: a float dtype.

        Returns:
            An array of shape ``dn``.

        Raises:
            TypeError: a dimension is not an int, a bad ``key`` or ``dtype``.

        Example:
            >>> from facade import random
            >>> random.rand(3).shape
            (3,)
        """
        return jr.uniform(self._key(key), _size(dn), _dtype(dtype, "float"))

    def randn(self, *dn: int, key: KeyLike = None, dtype: DTypeLike | None = None) -> jax.Array:
        """Standard normal samples of shape ``dn`` (``numpy.random.randn``).

        Args:
            *dn: the dimensions.
            key: use this key instead of the state's.
            dtype: a float dtype.

        Returns:
            An array of shape ``dn``.

        Raises:
            TypeError: a dimension is not an int, a bad ``key`` or ``dtype``.

        Example:
            >>> from facade import random
            >>> random.randn(3).shape
            (3,)
        """
        return jr.normal(self._key(key), _size(dn), _dtype(dtype, "float"))

    def random(
        self, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Uniform samples in [0, 1) (``numpy.random.random``; also ``random_sample``, ``ranf``,
        ``sample``).

        Args:
            size: the output shape.
            key: use this key instead of the state's.
            dtype: a float dtype.

        Returns:
            An array of shape ``size``.

        Raises:
            TypeError, ValueError: a bad ``size``, ``key`` or ``dtype``.

        Example:
            >>> from facade import random
            >>> random.random((3,)).shape
            (3,)
        """
        return jr.uniform(self._key(key), _size(size), _dtype(dtype, "float"))

    random_sample = random
    ranf = random
    sample = random

    def uniform(
        self,
        low: Param = 0.0,
        high: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Uniform samples in [low, high).

        Args:
            low: lower bound (broadcast with ``high``).
            high: upper bound.
            size: the output shape (default: the broadcast shape of ``low`` and ``high``).
            key: use this key instead of the state's.
            dtype: a float dtype.

        Returns:
            An array of shape ``size``.

        Raises:
            TypeError, ValueError: a bad ``size``, ``key`` or ``dtype``.

        Example:
            >>> from facade import random
            >>> x = random.uniform(2.0, 3.0, size=3)
            >>> bool(((x >= 2.0) & (x < 3.0)).all())
            True
        """
        low, high = _arr(low), _arr(high)
        shape = _size(size, low, high)
        return jr.uniform(self._key(key), shape, _dtype(dtype, "float"), low, high)

    def normal(
        self,
        loc: Param = 0.0,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Normal samples ``loc + scale * N(0, 1)``.

        Args:
            loc: the mean.
            scale: the standard deviation.
            size: the output shape (default: the broadcast shape of ``loc`` and ``scale``).
            key: use this key instead of the state's.
            dtype: a float dtype.

        Returns:
            An array of shape ``size``.

        Raises:
            TypeError, ValueError: a bad ``size``, ``key`` or ``dtype``.

        Example:
            >>> from facade import random
            >>> random.normal(1.0, 0.1, size=3).shape
            (3,)
        """
        shape = _size(size, loc, scale)
        x = jr.normal(self._key(key), shape, _dtype(dtype, "float"))
        return _affine(x, loc, scale)

    def standard_normal(
        self, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Standard normal samples (``normal()`` with loc 0 and scale 1)."""
        return self.normal(size=size, key=key, dtype=dtype)

    def truncated_normal(
        self,
        lower: Param,
        upper: Param,
        size: Size = None,
        loc: Param = 0.0,
        scale: Param = 1.0,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Normal(loc, scale) samples truncated to [lower, upper] (bounds in sample units).

        Args:
            lower: lower bound.
            upper: upper bound.
            size: the output shape (default: the broadcast shape of the parameters).
            loc: the mean before truncation.
            scale: the standard deviation before truncation.
            key: use this key instead of the state's.
            dtype: a float dtype.

        Returns:
            An array of shape ``size``.

        Example:
            >>> from facade import random
            >>> x = random.truncated_normal(-1.0, 1.0, size=3)
            >>> bool((abs(x) <= 1.0).all())
            True
        """
        lower, upper, loc, scale = map(_arr, (lower, upper, loc, scale))
        shape = _size(size, lower, upper, loc, scale)
        lo, hi = (lower - loc) / scale, (upper - loc) / scale
        x = jr.truncated_normal(self._key(key), lo, hi, shape, _dtype(dtype, "float"))
        return _affine(x, loc, scale)

    def lognormal(
        self,
        mean: Param = 0.0,
        sigma: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Log-normal samples: ``exp(normal(mean, sigma))``."""
        return jnp.exp(self.normal(mean, sigma, size=size, key=key, dtype=dtype))

    # ---------------------------------------------------------------- integers and discrete

    def randint(
        self,
        low: Param,
        high: Param | None = None,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Integers in [low, high) (or [0, low) when ``high`` is None), like numpy's.

        Args:
            low: lower bound, or the upper bound when ``high`` is None.
            high: upper bound (exclusive).
            size: the output shape (default: the broadcast shape of the bounds).
            dtype: an integer dtype.
            key: use this key instead of the state's.

        Returns:
            An integer array of shape ``size``.

        Raises:
            TypeError, ValueError: a bad ``size``, ``key`` or ``dtype``.

        Example:
            >>> from facade import random
            >>> x = random.randint(5, size=3)
            >>> bool(((x >= 0) & (x < 5)).all())
            True
        """
        if high is None:
            low, high = 0, low
        low, high = _arr(low), _arr(high)
        shape = _size(size, low, high)
        return jr.randint(self._key(key), shape, low, high, _dtype(dtype, "int"))

    def random_integers(
        self,
        low: Param,
        high: Param | None = None,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Integers in [low, high] inclusive (or [1, low] when ``high`` is None)."""
        if high is None:
            low, high = 1, low
        return self.randint(low, _arr(high) + 1, size=size, dtype=dtype, key=key)

    def bernoulli(self, p: Param = 0.5, size: Size = None, key: KeyLike = None) -> jax.Array:
        """Boolean samples, True with probability ``p``.

        Args:
            p: the probability of True.
            size: the output shape (default: the shape of ``p``).
            key: use this key instead of the state's.

        Returns:
            A bool array of shape ``size``.

        Example:
            >>> from facade import random
            >>> random.bernoulli(0.3, size=3).dtype
            dtype('bool')
        """
        p = _arr(p)
        return jr.bernoulli(self._key(key), p, _size(size, p))

    def binomial(
        self,
        n: Param,
        p: Param,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Binomial(n, p) counts (an integer dtype)."""
        n, p = _arr(n), _arr(p)
        x = jr.binomial(self._key(key), n, p, _size(size, n, p), environ.dftype())
        return x.astype(_dtype(dtype, "int"))

    def poisson(
        self,
        lam: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Poisson(lam) counts (an integer dtype)."""
        lam = _arr(lam)
        return jr.poisson(self._key(key), lam, _size(size, lam), _dtype(dtype, "int"))

    def geometric(
        self, p: Param, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Geometric(p): the number of trials up to the first success (>= 1)."""
        p = _arr(p)
        return jr.geometric(self._key(key), p, _size(size, p), _dtype(dtype, "int"))

    def multinomial(
        self,
        n: Param,
        pvals: Param,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Multinomial counts over ``len(pvals)`` outcomes; shape ``size + (len(pvals),)``."""
        pvals = _arr(pvals)
        shape = _size(size) + np.shape(pvals)[-1:] if size is not None else None
        x = jr.multinomial(self._key(key), _arr(n), pvals, shape=shape, dtype=environ.dftype())
        return x.astype(_dtype(dtype, "int"))

    def rademacher(
        self, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """-1 or +1 with equal probability (an integer dtype)."""
        return jr.rademacher(self._key(key), _size(size), _dtype(dtype, "int"))

    def bits(
        self, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Uniformly random bits as unsigned integers (default uint32)."""
        return jr.bits(self._key(key), _size(size), dtype)

    def categorical(
        self, logits: Param, axis: int = -1, size: Size = None, key: KeyLike = None
    ) -> jax.Array:
        """Indices drawn from the categorical distribution with these unnormalised logits.

        Args:
            logits: log-probabilities (up to a constant) along ``axis``.
            axis: the axis of categories.
            size: the output shape (broadcast-compatible with the batch shape of ``logits``).
            key: use this key instead of the state's.

        Returns:
            An integer array.

        Example:
            >>> import jax.numpy as jnp
            >>> from facade import random
            >>> int(random.categorical(jnp.array([-1e9, 0.0, -1e9])))
            1
        """
        return jr.categorical(self._key(key), _arr(logits), axis, _batch(size))

    def choice(
        self,
        a: int | Param,
        size: Size = None,
        replace: bool = True,
        p: Param | None = None,
        key: KeyLike = None,
    ) -> jax.Array:
        """Samples from ``a`` (an array, or ``arange(a)`` for an int), like numpy's ``choice``.

        Args:
            a: the population, or an int n for ``range(n)``.
            size: the output shape (default: one sample).
            replace: sample with replacement.
            p: the probabilities of the entries of ``a`` (default uniform).
            key: use this key instead of the state's.

        Returns:
            An array of shape ``size``.

        Raises:
            ValueError: more samples than the population without replacement (from JAX).

        Example:
            >>> from facade import random
            >>> sorted(random.choice(3, size=3, replace=False).tolist())
            [0, 1, 2]
        """
        p = None if p is None else _arr(p)
        return jr.choice(self._key(key), _arr(a), _size(size), replace, p)

    def permutation(
        self, x: int | Param, axis: int = 0, independent: bool = False, key: KeyLike = None
    ) -> jax.Array:
        """A permuted copy of ``x`` along ``axis`` (or a permutation of ``range(x)``).

        Args:
            x: an array, or an int n for ``range(n)``.
            axis: the axis to permute.
            independent: permute each slice along ``axis`` independently.
            key: use this key instead of the state's.

        Returns:
            The permuted array.

        Example:
            >>> from facade import random
            >>> sorted(random.permutation(4).tolist())
            [0, 1, 2, 3]
        """
        return jr.permutation(self._key(key), _arr(x), axis, independent)

    def shuffle(self, x: Param, axis: int = 0, key: KeyLike = None) -> jax.Array:
        """A shuffled copy of ``x`` along ``axis`` (JAX arrays are immutable: not in place)."""
        return self.permutation(x, axis=axis, key=key)

    # ---------------------------------------------------------------- continuous

    def beta(
        self,
        a: Param,
        b: Param,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Beta(a, b) samples."""
        a, b = _arr(a), _arr(b)
        return jr.beta(self._key(key), a, b, _size(size, a, b), _dtype(dtype, "float"))

    def gamma(
        self,
        shape: Param,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Gamma samples with shape ``shape`` and scale ``scale`` (numpy's parametrisation)."""
        shape = _arr(shape)
        out = _size(size, shape, scale)
        return _affine(jr.gamma(self._key(key), shape, out, _dtype(dtype, "float")), 0, scale)

    def standard_gamma(
        self, shape: Param, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Gamma samples with scale 1."""
        return self.gamma(shape, 1.0, size=size, key=key, dtype=dtype)

    def loggamma(
        self, a: Param, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Logarithms of Gamma(a) samples, accurate for small ``a``."""
        a = _arr(a)
        return jr.loggamma(self._key(key), a, _size(size, a), _dtype(dtype, "float"))

    def exponential(
        self,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Exponential samples with mean ``scale`` (numpy's parametrisation)."""
        x = jr.exponential(self._key(key), _size(size, scale), _dtype(dtype, "float"))
        return _affine(x, 0, scale)

    def standard_exponential(
        self, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Exponential samples with mean 1."""
        return self.exponential(1.0, size=size, key=key, dtype=dtype)

    def _loc_scale_draw(
        self,
        draw: typing.Any,
        loc: Param,
        scale: Param,
        size: Size,
        key: KeyLike,
        dtype: typing.Any,
    ) -> jax.Array:
        x = draw(self._key(key), _size(size, loc, scale), _dtype(dtype, "float"))
        return _affine(x, loc, scale)

    def laplace(
        self,
        loc: Param = 0.0,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Laplace (double exponential) samples with location ``loc`` and scale ``scale``."""
        return self._loc_scale_draw(jr.laplace, loc, scale, size, key, dtype)

    def logistic(
        self,
        loc: Param = 0.0,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Logistic samples with location ``loc`` and scale ``scale``."""
        return self._loc_scale_draw(jr.logistic, loc, scale, size, key, dtype)

    def gumbel(
        self,
        loc: Param = 0.0,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Gumbel samples with location ``loc`` and scale ``scale``."""
        return self._loc_scale_draw(jr.gumbel, loc, scale, size, key, dtype)

    def cauchy(
        self,
        loc: Param = 0.0,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Cauchy samples with location ``loc`` and scale ``scale``."""
        return self._loc_scale_draw(jr.cauchy, loc, scale, size, key, dtype)

    def standard_cauchy(
        self, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Standard Cauchy samples."""
        return self.cauchy(size=size, key=key, dtype=dtype)

    def double_sided_maxwell(
        self,
        loc: Param = 0.0,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Double-sided Maxwell samples with location ``loc`` and scale ``scale``."""
        loc, scale = _arr(loc), _arr(scale)
        shape = _size(size, loc, scale)
        dt = _dtype(dtype, "float")
        return jr.double_sided_maxwell(self._key(key), loc, scale, shape, dt)

    def maxwell(
        self, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Maxwell-Boltzmann samples (the norm of a 3-D standard normal)."""
        return jr.maxwell(self._key(key), _size(size), _dtype(dtype, "float"))

    def rayleigh(
        self,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Rayleigh samples with scale ``scale``."""
        scale = _arr(scale)
        return jr.rayleigh(self._key(key), scale, _size(size, scale), _dtype(dtype, "float"))

    def pareto(
        self, a: Param, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Pareto samples with shape ``a`` and minimum 1 (``jax.random.pareto``; numpy's
        Lomax variant is this minus 1)."""
        a = _arr(a)
        return jr.pareto(self._key(key), a, _size(size, a), _dtype(dtype, "float"))

    def weibull(
        self, a: Param, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Weibull samples with shape ``a`` and scale 1 (numpy's ``weibull``)."""
        return self.weibull_min(a, 1.0, size=size, key=key, dtype=dtype)

    def weibull_min(
        self,
        a: Param,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Weibull samples with shape (concentration) ``a`` and scale ``scale``."""
        a, scale = _arr(a), _arr(scale)
        shape = _size(size, a, scale)
        return jr.weibull_min(self._key(key), scale, a, shape, _dtype(dtype, "float"))

    def wald(
        self,
        mean: Param,
        scale: Param = 1.0,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Wald (inverse Gaussian) samples with mean ``mean`` and shape ``scale``, like numpy's.

        Uses ``IG(mean, scale) = scale * IG(mean / scale, 1)``.
        """
        mean, scale = _arr(mean), _arr(scale)
        shape = _size(size, mean, scale)
        x = jr.wald(self._key(key), mean / scale, shape, _dtype(dtype, "float"))
        return _affine(x, 0, scale)

    def triangular(
        self,
        left: Param,
        mode: Param,
        right: Param,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Triangular samples on [left, right] with peak at ``mode``."""
        left, mode, right = _arr(left), _arr(mode), _arr(right)
        shape = _size(size, left, mode, right)
        return jr.triangular(self._key(key), left, mode, right, shape, _dtype(dtype, "float"))

    def chisquare(
        self, df: Param, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Chi-square samples with ``df`` degrees of freedom."""
        df = _arr(df)
        return jr.chisquare(self._key(key), df, _size(size, df), _dtype(dtype, "float"))

    def t(
        self, df: Param, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Student's t samples with ``df`` degrees of freedom (also ``standard_t``)."""
        df = _arr(df)
        return jr.t(self._key(key), df, _size(size, df), _dtype(dtype, "float"))

    standard_t = t

    def f(
        self,
        dfnum: Param,
        dfden: Param,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """F-distribution samples with ``dfnum`` and ``dfden`` degrees of freedom."""
        dfnum, dfden = _arr(dfnum), _arr(dfden)
        shape = _size(size, dfnum, dfden)
        return jr.f(self._key(key), dfnum, dfden, shape, _dtype(dtype, "float"))

    def generalized_normal(
        self, p: float | int, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Generalized normal samples with exponent ``p`` (2: normal with variance 1/2)."""
        return jr.generalized_normal(self._key(key), p, _size(size), _dtype(dtype, "float"))

    # ---------------------------------------------------------------- multivariate

    def dirichlet(
        self, alpha: Param, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Dirichlet(alpha) samples of shape ``size + (len(alpha),)``."""
        return jr.dirichlet(self._key(key), _arr(alpha), _batch(size), _dtype(dtype, "float"))

    def multivariate_normal(
        self,
        mean: Param,
        cov: Param,
        size: Size = None,
        method: str = "cholesky",
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Multivariate normal samples of shape ``size + (len(mean),)``; ``method`` is
        'cholesky', 'eigh' or 'svd' (the factorisation of ``cov``)."""
        mean, cov = _arr(mean), _arr(cov)
        dt = _dtype(dtype, "float")
        return jr.multivariate_normal(self._key(key), mean, cov, _batch(size), dt, method)

    def orthogonal(
        self, n: int, size: Size = None, key: KeyLike = None, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """Random orthogonal ``n x n`` matrices (Haar measure), shape ``size + (n, n)``."""
        n = _count(n, "n")
        return jr.orthogonal(self._key(key), n, _size(size), _dtype(dtype, "float"))

    def ball(
        self,
        d: int,
        p: float | int = 2,
        size: Size = None,
        key: KeyLike = None,
        dtype: DTypeLike | None = None,
    ) -> jax.Array:
        """Points uniform in the unit ``p``-norm ball in ``d`` dimensions, shape ``size + (d,)``."""
        d = _count(d, "d")
        return jr.ball(self._key(key), d, p, _size(size), _dtype(dtype, "float"))

    # ---------------------------------------------------------------- *_like

    def rand_like(
        self, input: Param, dtype: DTypeLike | None = None, key: KeyLike = None
    ) -> jax.Array:
        """Uniform [0, 1) samples with the shape of ``input`` (and its dtype, if float)."""
        return self.random(np.shape(input), key=key, dtype=dtype or _float_dtype_of(input))

    def randn_like(
        self, input: Param, dtype: DTypeLike | None = None, key: KeyLike = None
    ) -> jax.Array:
        """Standard normal samples with the shape of ``input`` (and its dtype, if float)."""
        return self.normal(size=np.shape(input), key=key, dtype=dtype or _float_dtype_of(input))

    def randint_like(
        self,
        input: Param,
        low: Param = 0,
        high: Param | None = None,
        dtype: DTypeLike | None = None,
        key: KeyLike = None,
    ) -> jax.Array:
        """Integers in [low, high) with the shape of ``input``."""
        return self.randint(low, high, size=np.shape(input), key=key, dtype=dtype)


def _float_dtype_of(x: typing.Any) -> typing.Any:
    dt = getattr(x, "dtype", None)
    return dt if dt is not None and jnp.issubdtype(dt, jnp.floating) else None


DEFAULT = RandomState(name="DEFAULT")
"""The process-wide random state behind the module-level functions."""
# Created while this module is imported: name where it lives, not the importer's frame.
DEFAULT.source = "facade.random.DEFAULT"


def default_rng(seed_or_key: KeyLike = None) -> RandomState:
    """The process-wide :data:`DEFAULT` random state, or a new one from a seed or key.

    Args:
        seed_or_key: None for :data:`DEFAULT` itself (draws from it advance the module-level
            functions' key), or an int seed / PRNG key for a new, independent RandomState.

    Returns:
        :data:`DEFAULT`, or ``RandomState(seed_or_key)``.

    Example:
        >>> from facade import random
        >>> random.default_rng() is random.DEFAULT
        True
        >>> a, b = random.default_rng(7).uniform(size=2), random.default_rng(7).uniform(size=2)
        >>> bool((a == b).all())
        True
    """
    return DEFAULT if seed_or_key is None else RandomState(seed_or_key)


seed = DEFAULT.seed
split_key = DEFAULT.split_key
split_keys = DEFAULT.split_keys
get_key = DEFAULT.get_key
set_key = DEFAULT.set_key
rand = DEFAULT.rand
randn = DEFAULT.randn
random = DEFAULT.random
random_sample = DEFAULT.random_sample
ranf = DEFAULT.ranf
sample = DEFAULT.sample
uniform = DEFAULT.uniform
normal = DEFAULT.normal
standard_normal = DEFAULT.standard_normal
truncated_normal = DEFAULT.truncated_normal
lognormal = DEFAULT.lognormal
randint = DEFAULT.randint
random_integers = DEFAULT.random_integers
bernoulli = DEFAULT.bernoulli
binomial = DEFAULT.binomial
poisson = DEFAULT.poisson
geometric = DEFAULT.geometric
multinomial = DEFAULT.multinomial
rademacher = DEFAULT.rademacher
bits = DEFAULT.bits
categorical = DEFAULT.categorical
choice = DEFAULT.choice
permutation = DEFAULT.permutation
shuffle = DEFAULT.shuffle
beta = DEFAULT.beta
gamma = DEFAULT.gamma
standard_gamma = DEFAULT.standard_gamma
loggamma = DEFAULT.loggamma
exponential = DEFAULT.exponential
standard_exponential = DEFAULT.standard_exponential
laplace = DEFAULT.laplace
logistic = DEFAULT.logistic
gumbel = DEFAULT.gumbel
cauchy = DEFAULT.cauchy
standard_cauchy = DEFAULT.standard_cauchy
double_sided_maxwell = DEFAULT.double_sided_maxwell
maxwell = DEFAULT.maxwell
rayleigh = DEFAULT.rayleigh
pareto = DEFAULT.pareto
weibull = DEFAULT.weibull
weibull_min = DEFAULT.weibull_min
wald = DEFAULT.wald
triangular = DEFAULT.triangular
chisquare = DEFAULT.chisquare
t = DEFAULT.t
standard_t = DEFAULT.standard_t
f = DEFAULT.f
generalized_normal = DEFAULT.generalized_normal
dirichlet = DEFAULT.dirichlet
multivariate_normal = DEFAULT.multivariate_normal
orthogonal = DEFAULT.orthogonal
ball = DEFAULT.ball
rand_like = DEFAULT.rand_like
randn_like = DEFAULT.randn_like
randint_like = DEFAULT.randint_like
