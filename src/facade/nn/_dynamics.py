"""brainstate's dynamics layer: ``Dynamics`` (a neuron population with before/after updates),
``Prefetch`` (a reference to a module attribute resolved at call time), ``call_order``,
``exp_euler_step`` and the update-input/output markers.

The delay machinery that brainstate hangs off this (``Delay``, ``StateWithDelay``,
``PrefetchDelay``, ``PrefetchDelayAt``, ``Dynamics.prefetch_delay`` / ``output_delay``) is not
provided yet: ``Prefetch.delay`` raises ``NotImplementedError`` saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import jax.numpy as jnp
import numpy as np

from .. import environ
from .. import random as _random
from .. import transform as _transform
from .._state import State
from ..graph import Node
from ._module import Module

__all__ = [
    "MAX_ORDER",
    "Dynamics",
    "Prefetch",
    "call_order",
    "exp_euler_step",
    "init_maybe_prefetch",
    "not_receive_update_input",
    "not_receive_update_output",
    "receive_update_input",
    "receive_update_output",
]

#: ``call_order`` levels are in ``[0, MAX_ORDER)``, as in brainstate.
MAX_ORDER = 10


def _population_size(in_size: Any) -> tuple[int, ...]:
    if isinstance(in_size, list | tuple):
        if not in_size or not isinstance(in_size[0], int | np.integer):
            raise ValueError(
                f'"in_size" must be int, or a tuple/list of int. But we got {type(in_size)}'
            )
        return tuple(int(n) for n in in_size)
    if isinstance(in_size, int | np.integer):
        return (int(in_size),)
    raise ValueError(f'"in_size" must be int, or a tuple/list of int. But we got {type(in_size)}')


class Dynamics(Module):
    """A population of ``in_size`` units with an ``update`` and before/after-update hooks.

    Calling it runs every before-update function (with the call's arguments when the function
    is marked by :func:`receive_update_input`, else with none), then ``update(*args)``, then
    every after-update function (with ``update``'s result, unless marked by
    :func:`not_receive_update_output`), and returns ``update``'s result.

    Args:
        in_size: the population geometry: an int or a non-empty tuple/list of ints.
        name: an optional name.

    Raises:
        ValueError: ``in_size`` is not an int or a non-empty sequence of ints.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> class Leaky(facade.nn.Dynamics):
        ...     def __init__(self, n):
        ...         super().__init__(n)
        ...         self.v = facade.HiddenState(jnp.zeros(self.varshape))
        ...     def update(self, x):
        ...         self.v.value = 0.9 * self.v.value + x
        ...         return self.v.value
        >>> cell = Leaky(3)
        >>> cell.add_after_update("log", lambda out: print(out.tolist()))
        >>> _ = cell(jnp.ones(3))
        [1.0, 1.0, 1.0]
        >>> cell.prefetch("v")().tolist(), cell.varshape
        ([1.0, 1.0, 1.0], (3,))
    """

    def __init__(self, in_size: Any, name: str | None = None):
        super().__init__(name=name)
        self.in_size = _population_size(in_size)
        self.out_size = self.in_size
        self._before_updates: dict[Hashable, Callable] | None = None
        self._after_updates: dict[Hashable, Callable] | None = None

    @property
    def varshape(self) -> tuple[int, ...]:
        """The shape of the population's variables: ``in_size``."""
        return self.in_size  # type: ignore[return-value]  # always set by __init__

    def prefetch(self, item: str) -> Prefetch:
        """A :class:`Prefetch` of attribute ``item``, resolved when called (may not exist yet)."""
        return Prefetch(self, item)

    @property
    def before_updates(self) -> dict[Hashable, Callable] | None:
        """The functions run before ``update``, by key (None until one is added)."""
        return self._before_updates

    @property
    def after_updates(self) -> dict[Hashable, Callable] | None:
        """The functions run after ``update``, by key (None until one is added)."""
        return self._after_updates

    def add_before_update(self, key: Any, fun: Callable) -> None:
        """Register ``fun`` under ``key`` to run before ``update``; ``KeyError`` if taken."""
        self._before_updates = _add(self._before_updates, key, fun, "before_updates", self)

    def add_after_update(self, key: Any, fun: Callable) -> None:
        """Register ``fun`` under ``key`` to run after ``update``; ``KeyError`` if taken."""
        self._after_updates = _add(self._after_updates, key, fun, "after_updates", self)

    def get_before_update(self, key: Any) -> Callable:
        """The before-update function under ``key``; ``KeyError`` if none."""
        return _get(self._before_updates, key, "before_updates", self)

    def get_after_update(self, key: Any) -> Callable:
        """The after-update function under ``key``; ``KeyError`` if none."""
        return _get(self._after_updates, key, "after_updates", self)

    def has_before_update(self, key: Any) -> bool:
        return self._before_updates is not None and key in self._before_updates

    def has_after_update(self, key: Any) -> bool:
        return self._after_updates is not None and key in self._after_updates

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for fun in (self._before_updates or {}).values():
            if hasattr(fun, "_receive_update_input"):
                fun(*args, **kwargs)
            else:
                fun()
        out = self.update(*args, **kwargs)
        for fun in (self._after_updates or {}).values():
            if hasattr(fun, "_not_receive_update_output"):
                fun()
            else:
                fun(out)
        return out


def _add(table: dict | None, key: Any, fun: Callable, what: str, owner: Any) -> dict:
    table = {} if table is None else table
    if key in table:
        raise KeyError(f"{key} has been registered in {what} of {owner}")
    table[key] = fun
    return table


def _get(table: dict | None, key: Any, what: str, owner: Any) -> Callable:
    if table is None or key not in table:
        raise KeyError(f"{key} is not registered in {what} of {owner}")
    return table[key]


class Prefetch(Node):
    """A reference to ``module.<item>``, looked up when called: its value if a State.

    Args:
        module: the module holding (or that will hold) the attribute.
        item: the attribute name.

    Raises:
        AttributeError: (when called) the module has no such attribute, or it is None.
    """

    def __init__(self, module: Module, item: str):
        super().__init__()
        self.module = module
        self.item = item

    @property
    def delay(self) -> Any:
        raise NotImplementedError(
            "Prefetch.delay needs brainstate's delay system (Delay, PrefetchDelay), which the "
            "facade does not provide yet"
        )

    def get_item(self) -> Any:
        """The attribute itself (a State, an array, ...)."""
        item = getattr(self.module, self.item, None)
        if item is None:
            raise AttributeError(
                f"The target {self.module} should have an `{self.item}` attribute."
            )
        return item

    def get_item_value(self) -> Any:
        """The attribute's value: ``.value`` for a State, the attribute otherwise."""
        item = self.get_item()
        return item.value if isinstance(item, State) else item

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.get_item_value()


def init_maybe_prefetch(target: Any, *args: Any, **kwargs: Any) -> None:
    """Check that a :class:`Prefetch` target resolves (``AttributeError`` if not); any other
    target is left alone."""
    if isinstance(target, Prefetch):
        target.get_item()


def call_order(level: int = 0, check_order_boundary: bool = True) -> Callable[[Callable], Callable]:
    """Mark a method's order among the collective calls (``init_all_states``, ...): lower first.

    Raises:
        ValueError: ``check_order_boundary`` and ``level`` outside ``[0, MAX_ORDER)``.

    Example:
        >>> import facade
        >>> @facade.nn.call_order(2)
        ... def reset_state(self): ...
        >>> reset_state.call_order
        2
    """
    if check_order_boundary and not 0 <= level < MAX_ORDER:
        raise ValueError(f'"level" must be an integer in [0, {MAX_ORDER}), but got {level}.')

    def mark(fun: Callable) -> Callable:
        fun.call_order = level  # type: ignore[attr-defined]
        return fun

    return mark


def receive_update_output(cls: Any) -> Any:
    """An after-update function (or class) marked so: it is called with ``update``'s result."""
    if hasattr(cls, "_not_receive_update_output"):
        delattr(cls, "_not_receive_update_output")
    return cls


def not_receive_update_output(cls: Any) -> Any:
    """An after-update function (or class) marked so: it is called with no argument."""
    cls._not_receive_update_output = True
    return cls


def receive_update_input(cls: Any) -> Any:
    """A before-update function (or class) marked so: it gets the call's arguments."""
    cls._receive_update_input = True
    return cls


def not_receive_update_input(cls: Any) -> Any:
    """A before-update function (or class) marked so: it is called with no argument."""
    if hasattr(cls, "_receive_update_input"):
        delattr(cls, "_receive_update_input")
    return cls


_FLOATS = (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64)


def exp_euler_step(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """One exponential-Euler step of ``dx/dt = fn(x, ...)`` (plus ``g(x, ...) dW`` for an SDE).

    ``exp_euler_step(f, x, *rest)`` or ``exp_euler_step(f, g, x, *rest)``: with ``dt`` from
    ``environ.get('dt')`` and ``J = vector_grad(f)(x, ...)`` (the diagonal of the Jacobian for
    element-wise drifts), ``x + dt * exprel(dt * J) * f(x, ...)``, plus
    ``g(x, ...) * sqrt(dt) * N(0, 1)`` when a diffusion ``g`` is given. brainunit quantities keep
    their units (the drift is in ``[x]/[t]``, the diffusion in ``[x]/sqrt([t])``).

    Raises:
        ValueError: ``x`` is not a floating array, or the drift and diffusion units disagree.
        AssertionError: ``fn`` is not callable, or no state variable is given.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> with facade.environ.context(dt=0.1):
        ...     x1 = facade.nn.exp_euler_step(lambda x: -x, jnp.array(1.0))
        >>> round(float(x1), 6) == round(float(jnp.exp(-0.1)), 6)
        True
    """
    import brainunit as u  # brainunit's math functions are untyped for mypy

    umath: Any = u.math

    assert callable(fn), "The drift function should be callable."
    assert len(args) > 0, "The input arguments should not be empty."
    diffusion = None
    if callable(args[0]):
        diffusion, args = args[0], args[1:]
        assert len(args) > 0, "State variable is required after diffusion function."
    x = umath.asarray(args[0])
    dtype = umath.get_dtype(x)
    if dtype not in _FLOATS:
        raise ValueError(
            "State variable dtype must be float16, bfloat16, float32, or float64 for "
            f"Exponential Euler method, but got {dtype}."
        )
    dt = environ.get("dt")
    jac, drift = _transform.vector_grad(fn, argnums=0, return_value=True)(*args, **kwargs)
    # The derivative's unit is [drift]/[x]; the gradient itself comes back in [x]'s unit.
    jac = u.Quantity(u.get_mantissa(jac), u.get_unit(drift) / u.get_unit(x))
    x_next = x + dt * umath.exprel(dt * jac) * drift
    if diffusion is not None:
        term = diffusion(*args, **kwargs) * umath.sqrt(dt) * _random.randn_like(x)
        if u.get_dim(x_next) != u.get_dim(term):
            raise ValueError(
                f"Unit mismatch between drift and diffusion terms. State has unit "
                f"{u.get_unit(x)}, drift produces unit {u.get_unit(x_next)}, expected diffusion "
                f"unit {u.get_unit(x_next) / u.get_unit(dt) ** 0.5}, but got {u.get_unit(term)}."
            )
        x_next = x_next + term
    return x_next
