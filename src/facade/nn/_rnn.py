"""Recurrent cells: ``ValinaRNNCell``, ``GRUCell`` and ``LSTMCell``, one time step per call.

A cell's hidden state is a :class:`~facade.HiddenState` created by ``init_state(batch_size)``
(usually through :func:`~facade.nn.init_all_states`), so it has shape ``(batch_size, num_out)``
(``(num_out,)`` without a batch size). Each call reads it, computes one step and writes it.
The weights are :class:`~facade.nn.Linear` layers over the concatenation ``[x, h]``, as in
brainstate, so the parameter paths are ``('W', 'weight')`` and the like.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

import jax
import jax.numpy as jnp

from .._state import HiddenState
from . import _activations, init
from ._checks import InitLike, Integer, positive, typechecked
from ._linear import Linear
from ._module import Module

__all__ = ["GRUCell", "LSTMCell", "RNNCell", "ValinaRNNCell"]

ZEROS = init.ZeroInit()
XAVIER_NORMAL = init.XavierNormal()
ORTHOGONAL = init.Orthogonal()
Activation = str | Callable[..., typing.Any]


def _activation(activation: Activation, owner: str) -> Callable[..., typing.Any]:
    """A callable from a name in :mod:`facade.nn`'s activation functions, or the callable."""
    if not isinstance(activation, str):
        return activation
    fn = getattr(_activations, activation, None)
    if activation not in _activations.__all__ or not callable(fn) or isinstance(fn, type):
        raise ValueError(
            f"{owner}: unknown activation {activation!r}; use a function name of facade.nn "
            "such as 'tanh' or 'relu', or pass a callable"
        )
    return fn


class RNNCell(Module):
    """Base class of the recurrent cells: sizes, the hidden states and their (re)setting.

    Subclasses list their hidden states' names in ``_hidden`` and define ``update(x)``.
    """

    _hidden: tuple[str, ...] = ("h",)
    _repr_fields = ("in_size", "out_size", "activation")

    def _setup(self, num_in: typing.Any, num_out: typing.Any, state_init: typing.Any) -> None:
        owner = type(self).__name__
        self.num_in = positive(num_in, owner, "num_in")
        self.num_out = positive(num_out, owner, "num_out")
        self.in_size, self.out_size = (self.num_in,), (self.num_out,)
        self._state_initializer = state_init

    def _initial(self, batch_size: Integer | None) -> jax.Array:
        return jnp.asarray(init.param(self._state_initializer, (self.num_out,), batch_size))

    @typechecked
    def init_state(self, batch_size: Integer | None = None, **kwargs: typing.Any) -> None:
        """Create the hidden state(s), of shape ``(batch_size, num_out)`` or ``(num_out,)``.

        Args:
            batch_size: the batch size, or None for a single sequence.
            **kwargs: ignored (other modules' ``init_state`` options).

        Raises:
            ValueError: ``batch_size`` below 1.
        """
        for name in self._hidden:
            setattr(self, name, HiddenState(self._initial(batch_size)))

    @typechecked
    def reset_state(self, batch_size: Integer | None = None, **kwargs: typing.Any) -> None:
        """Put the hidden state(s) back to their initial value (the same State objects).

        Args:
            batch_size: the batch size, or None for a single sequence.
            **kwargs: ignored.

        Raises:
            AttributeError: :meth:`init_state` has not been called.
        """
        for name in self._hidden:
            self._state(name).value = self._initial(batch_size)

    def _state(self, name: str) -> HiddenState:
        state = vars(self).get(name)
        if state is None:
            raise AttributeError(
                f"{type(self).__name__} has no hidden state {name!r} yet: call "
                "facade.nn.init_all_states(model, batch_size=...) (or cell.init_state(...)) "
                "before using it"
            )
        return state


class ValinaRNNCell(RNNCell):
    """The vanilla RNN step: ``h = activation(W [x, h] + b)``.

    Args:
        num_in: input features.
        num_out: hidden units.
        state_init: the initializer of ``h`` (or an array or number).
        w_init: the initializer of ``W``, of shape ``(num_in + num_out, num_out)``.
        b_init: the initializer of ``b``.
        activation: a function name (``'relu'``, ``'tanh'``, ...) or a callable.
        name: an optional name.

    Raises:
        TypeError: an argument of the wrong type. ValueError: a size below 1 or an unknown
            activation name.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> cell = facade.nn.init_all_states(facade.nn.ValinaRNNCell(3, 4), batch_size=2)
        >>> cell(jnp.ones((2, 3))).shape, list(cell.states())
        ((2, 4), [('W', 'weight'), ('h',)])
    """

    @typechecked
    def __init__(
        self,
        num_in: Integer,
        num_out: Integer,
        state_init: InitLike = ZEROS,
        w_init: InitLike = XAVIER_NORMAL,
        b_init: InitLike = ZEROS,
        activation: Activation = "relu",
        name: str | None = None,
    ):
        super().__init__(name=name)
        self._setup(num_in, num_out, state_init)
        self.activation = _activation(activation, "ValinaRNNCell")
        self.W = Linear(self.num_in + self.num_out, self.num_out, w_init=w_init, b_init=b_init)

    def update(self, x: typing.Any) -> jax.Array:
        """One step: the new hidden state (also written to ``h``).

        Args:
            x: ``(batch_size, num_in)`` (or ``(num_in,)`` without a batch).

        Returns:
            The new ``h``.

        Raises:
            AttributeError: the hidden state has not been created.
        """
        h = self._state("h")
        h.value = self.activation(self.W(jnp.concatenate([x, h.value], axis=-1)))
        return h.value


class GRUCell(RNNCell):
    """The gated recurrent unit step.

    ``r, z = sigmoid(Wrz [x, h])`` (split in two halves), ``c = activation(Wh [x, r * h])``,
    ``h = (1 - z) * h + z * c``.

    Args:
        num_in: input features.
        num_out: hidden units.
        w_init: the initializer of ``Wrz`` and ``Wh``.
        b_init: the initializer of their biases.
        state_init: the initializer of ``h``.
        activation: a function name or a callable for the candidate state.
        name: an optional name.

    Raises:
        TypeError: an argument of the wrong type. ValueError: a size below 1 or an unknown
            activation name.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> cell = facade.nn.GRUCell(num_in=3, num_out=4)
        >>> cell.init_state(batch_size=2)
        >>> cell(jnp.ones((2, 3))).shape
        (2, 4)
        >>> cell.reset_state(batch_size=5)
        >>> cell(jnp.ones((5, 3))).shape
        (5, 4)
    """

    @typechecked
    def __init__(
        self,
        num_in: Integer,
        num_out: Integer,
        w_init: InitLike = ORTHOGONAL,
        b_init: InitLike = ZEROS,
        state_init: InitLike = ZEROS,
        activation: Activation = "tanh",
        name: str | None = None,
    ):
        super().__init__(name=name)
        self._setup(num_in, num_out, state_init)
        self.activation = _activation(activation, "GRUCell")
        n = self.num_in + self.num_out
        self.Wrz = Linear(n, self.num_out * 2, w_init=w_init, b_init=b_init)
        self.Wh = Linear(n, self.num_out, w_init=w_init, b_init=b_init)

    def update(self, x: typing.Any) -> jax.Array:
        """One step: the new hidden state (also written to ``h``).

        Args:
            x: ``(batch_size, num_in)`` (or ``(num_in,)``).

        Returns:
            The new ``h``.

        Raises:
            AttributeError: the hidden state has not been created.
        """
        state = self._state("h")
        h = state.value
        r, z = jnp.split(jax.nn.sigmoid(self.Wrz(jnp.concatenate([x, h], axis=-1))), 2, axis=-1)
        candidate = self.activation(self.Wh(jnp.concatenate([x, r * h], axis=-1)))
        state.value = (1 - z) * h + z * candidate
        return state.value


class LSTMCell(RNNCell):
    """The long short-term memory step.

    ``i, g, f, o = W [x, h]`` (split in four, in that order), ``c = sigmoid(f + 1) * c +
    sigmoid(i) * activation(g)``, ``h = sigmoid(o) * activation(c)``. The ``+ 1`` on the
    forget gate makes the cell keep its memory at the start of training.

    Args:
        num_in: input features.
        num_out: hidden (and cell) units.
        w_init: the initializer of ``W``, of shape ``(num_in + num_out, 4 * num_out)``.
        b_init: the initializer of its bias.
        state_init: the initializer of ``h`` and ``c``.
        activation: a function name or a callable.
        name: an optional name.

    Raises:
        TypeError: an argument of the wrong type. ValueError: a size below 1 or an unknown
            activation name.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> cell = facade.nn.init_all_states(facade.nn.LSTMCell(3, 4), batch_size=2)
        >>> cell(jnp.ones((2, 3))).shape, cell.c.value.shape
        ((2, 4), (2, 4))
    """

    _hidden = ("h", "c")

    @typechecked
    def __init__(
        self,
        num_in: Integer,
        num_out: Integer,
        w_init: InitLike = XAVIER_NORMAL,
        b_init: InitLike = ZEROS,
        state_init: InitLike = ZEROS,
        activation: Activation = "tanh",
        name: str | None = None,
    ):
        super().__init__(name=name)
        self._setup(num_in, num_out, state_init)
        self.activation = _activation(activation, "LSTMCell")
        self.W = Linear(self.num_in + self.num_out, self.num_out * 4, w_init=w_init, b_init=b_init)

    def update(self, x: typing.Any) -> jax.Array:
        """One step: the new hidden state (``h`` and ``c`` are written).

        Args:
            x: ``(batch_size, num_in)`` (or ``(num_in,)``).

        Returns:
            The new ``h``.

        Raises:
            AttributeError: the hidden states have not been created.
        """
        h_state, c_state = self._state("h"), self._state("c")
        gates = self.W(jnp.concatenate([x, h_state.value], axis=-1))
        i, g, f, o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(f + 1.0) * c_state.value + jax.nn.sigmoid(i) * self.activation(g)
        h = jax.nn.sigmoid(o) * self.activation(c)
        c_state.value, h_state.value = c, h
        return h
