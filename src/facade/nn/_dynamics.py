"""brainstate's dynamics layer: ``Dynamics`` (a neuron population with before/after updates),
``Prefetch`` (a reference to a module attribute resolved at call time), ``call_order``,
``exp_euler_step`` and the update-input/output markers.

The delayed references hang off it: ``Prefetch.delay.at(t)`` / ``Dynamics.prefetch_delay`` give
a :class:`PrefetchDelayAt` reading a State ``t`` back, ``Dynamics.output_delay`` an
:class:`OutputDelayAt` reading ``update``'s result ``t`` back. Each keeps its history in a
``Delay`` (``nn._delay``) registered as an after-update of the module, under the same key as in
brainstate (``'V-prefetch-delay-None'``, ``'output-delay-None'``), so state paths match.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from .. import environ
from .. import random as _random
from .. import transform as _transform
from .._state import State
from ..graph import Node
from ._delay import Delay, StateWithDelay, _ArgumentError
from ._module import Module
from ._order import MAX_ORDER, call_order

__all__ = [
    "MAX_ORDER",
    "Dynamics",
    "OutputDelayAt",
    "Prefetch",
    "PrefetchDelay",
    "PrefetchDelayAt",
    "call_order",
    "exp_euler_step",
    "init_maybe_prefetch",
    "not_receive_update_input",
    "not_receive_update_output",
    "receive_update_input",
    "receive_update_output",
]


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

    def prefetch_delay(
        self,
        state: str,
        *time_and_index: Any,
        init: Any = None,
        interpolation: str | None = None,
        **kwargs: Any,
    ) -> PrefetchDelayAt:
        """A :class:`PrefetchDelayAt` reading State ``state`` ``time_and_index[0]`` back.

        ``init`` fills the history before the first step; ``**kwargs`` go to the ``Delay``
        (``update_every``, ...).
        """
        return PrefetchDelayAt(
            self, state, *time_and_index, delay_init=init, interpolation=interpolation, **kwargs
        )

    def output_delay(
        self,
        *time_and_index: Any,
        init: Any = None,
        interpolation: str | None = None,
        **kwargs: Any,
    ) -> OutputDelayAt:
        """An :class:`OutputDelayAt` reading ``update``'s result ``time_and_index[0]`` back."""
        return OutputDelayAt(
            self, *time_and_index, delay_init=init, interpolation=interpolation, **kwargs
        )

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
    def delay(self) -> PrefetchDelay:
        """A :class:`PrefetchDelay`: ``.delay.at(time)`` reads the item ``time`` back."""
        return PrefetchDelay(self.module, self.item)

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


class PrefetchDelay(Node):
    """The delayed views of ``module.<item>``: :meth:`at` picks the delay.

    Args:
        module: the Dynamics holding the State.
        item: the State's attribute name.
    """

    def __init__(self, module: Module, item: str):
        super().__init__()
        self.module = module
        self.item = item

    def at(self, *delay_time: Any) -> PrefetchDelayAt:
        """A :class:`PrefetchDelayAt` of the item ``delay_time`` back (then optional indices)."""
        return PrefetchDelayAt(self.module, self.item, delay_time)


def _get_prefetch_delay_key(item: str, update_every: Any = None) -> str:
    return f"{item}-prefetch-delay-{update_every}"


def _get_output_delay_key(update_every: Any = None) -> str:
    return f"output-delay-{update_every}"


class PrefetchDelayAt(Node):
    """``module.<item>`` as it was ``time_and_index[0]`` ago: call it to read.

    The first one for an item (and ``update_every``) adds a ``StateWithDelay`` as an
    after-update of the module (key ``'<item>-prefetch-delay-<update_every>'``); later ones
    register their delay on it. The delay is rounded up to whole steps of ``dt``. With no time
    given it reads the current value.

    Args:
        module: the :class:`Dynamics` holding the State.
        item: the State's attribute name.
        *time_and_index: the delay time, then optional integer indices (or one tuple of them).
        delay_init: the history before the first step (number, array or initializer).
        interpolation: the ``Delay``'s interpolation method.
        update_every: store one history entry per this much time.
        **kwargs: other ``Delay`` arguments.

    Raises:
        TypeError: ``module`` is not a :class:`Dynamics`.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> class Leaky(facade.nn.Dynamics):
        ...     def init_state(self, batch_size=None):
        ...         self.v = facade.HiddenState(jnp.zeros(self.varshape))
        ...     def update(self, x):
        ...         self.v.value = 0.5 * self.v.value + x
        ...         return self.v.value
        >>> with facade.environ.context(dt=1.0):
        ...     cell = Leaky(1)
        ...     v_two_back = cell.prefetch_delay("v", 2.0)
        ...     _ = facade.nn.init_all_states(cell)
        ...     for x in [1.0, 2.0, 3.0]:
        ...         _ = cell(jnp.array([x]))
        >>> cell.v.value.tolist(), v_two_back().tolist()
        ([4.25], [1.0])
    """

    def __init__(
        self,
        module: Module,
        item: str,
        *time_and_index: Any,
        delay_init: Any = None,
        interpolation: str | None = None,
        update_every: Any = None,
        **kwargs: Any,
    ):
        super().__init__()
        if not isinstance(module, Dynamics):
            raise _ArgumentError(f"PrefetchDelayAt needs a Dynamics module, got {type(module)}.")
        self.module = module
        self.item = item
        if len(time_and_index) == 1 and isinstance(time_and_index[0], tuple | list):
            time_and_index = tuple(time_and_index[0])
        self.delay_time = time_and_index
        if time_and_index:
            key = _get_prefetch_delay_key(item, update_every)
            if not module.has_after_update(key):
                delay = StateWithDelay(
                    module,
                    item,
                    init=delay_init,
                    interpolation=interpolation,
                    update_every=update_every,
                    **kwargs,
                )
                module.add_after_update(key, not_receive_update_output(delay))
            self.state_delay = cast(StateWithDelay, module.get_after_update(key))
            self.delay_info = self.state_delay.register_delay(*time_and_index)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.delay_time:
            return Prefetch(self.module, self.item).get_item_value()
        # A delay time of None registers nothing: read the newest entry.
        return self.state_delay.retrieve_at_step(*(self.delay_info or (0,)))


class OutputDelayAt(Node):
    """``module``'s ``update`` result as it was ``delay_time[0]`` ago: call it to read.

    The first one (per ``update_every``) adds a ``Delay`` of shape ``module.out_size`` and the
    default float dtype as an after-update receiving the result (key
    ``'output-delay-<update_every>'``); later ones register their delay on it. A result with
    brainunit units is read back with them.

    Args:
        module: the :class:`Dynamics`.
        *delay_time: the delay time, then optional integer indices.
        delay_init, interpolation, update_every, **kwargs: as for :class:`PrefetchDelayAt`.

    Raises:
        TypeError: ``module`` is not a :class:`Dynamics`.
    """

    def __init__(
        self,
        module: Module,
        *delay_time: Any,
        delay_init: Any = None,
        interpolation: str | None = None,
        update_every: Any = None,
        **kwargs: Any,
    ):
        super().__init__()
        if not isinstance(module, Dynamics):
            raise _ArgumentError(f"OutputDelayAt needs a Dynamics module, got {type(module)}.")
        self.module = module
        key = _get_output_delay_key(update_every)
        if not module.has_after_update(key):
            delay = Delay(
                jax.ShapeDtypeStruct(module.out_size, environ.dftype()),
                take_aware_unit=True,
                init=delay_init,
                interpolation=interpolation,
                update_every=update_every,
                **kwargs,
            )
            module.add_after_update(key, receive_update_output(delay))
        self.out_delay = cast(Delay, module.get_after_update(key))
        self.delay_info = self.out_delay.register_delay(*delay_time)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.out_delay.retrieve_at_step(*(self.delay_info or (0,)))


def init_maybe_prefetch(target: Any, *args: Any, **kwargs: Any) -> None:
    """Check that a prefetch target resolves; any other target is left alone.

    A :class:`Prefetch` must name an existing attribute (``AttributeError``); a
    :class:`PrefetchDelay` must have its history on the module, i.e. a delay of that item
    registered (``KeyError`` if not); a :class:`PrefetchDelayAt` registered itself when built.
    """
    if isinstance(target, Prefetch):
        target.get_item()
    elif isinstance(target, PrefetchDelay):
        if not isinstance(target.module, Dynamics):
            raise _ArgumentError(
                f"The target module should be an instance of Dynamics. But got {target.module}."
            )
        # brainstate 0.5.4 calls its key function with one argument too few here and fails
        # with a TypeError; this looks the history up under the key it was stored with.
        found = target.module.get_after_update(_get_prefetch_delay_key(target.item))
        if not isinstance(found, StateWithDelay):
            raise TypeError(
                f"The prefetch target should be a StateWithDelay when accessing its delay. "
                f"But got {found}."
            )


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
