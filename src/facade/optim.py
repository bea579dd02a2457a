"""Optimizers over States, on optax: ``OptaxOptimizer`` and the ``SGD``/``Adam``/``AdamW`` presets.

The names are braintools' (``register_trainable_weights``, ``update``), so brainstate training
loops port unchanged. The update rule is always an optax ``GradientTransformation``; the
optimizer only moves values between States and optax. Its optax state lives in a State too
(:class:`OptimState`), so a :func:`facade.transform.jit` training step that calls
``update(grads)`` writes both the parameters and the optimizer state back.

Example:
    >>> import jax.numpy as jnp, optax, facade
    >>> w = facade.ParamState(jnp.array([1.0, -2.0]))
    >>> opt = facade.optim.OptaxOptimizer(optax.sgd(0.1))
    >>> opt.register_trainable_weights({"w": w})
    OptaxOptimizer(trainable states: 1)
    >>> loss = lambda: jnp.sum(w.value ** 2)
    >>> grads = facade.transform.grad(loss, {"w": w})()
    >>> opt.update(grads)
    >>> w.value
    Array([ 0.8, -1.6], dtype=float32)
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping

import jax
from beartype import beartype
from jaxtyping import jaxtyped

from ._state import LongTermState, State

__all__ = ["SGD", "Adam", "AdamW", "OptaxOptimizer", "OptimState"]

typechecked = jaxtyped(typechecker=beartype)
LearningRate = float | int | Callable[..., typing.Any]  # a number or an optax schedule


class OptimState(LongTermState):
    """The optax state of an :class:`OptaxOptimizer` (kept across steps, never trained)."""

    __slots__ = ()


def _optax() -> typing.Any:
    """The optax module, imported on first use: ``import facade`` does not need it."""
    try:
        import optax
    except ImportError:
        raise ImportError(
            "facade.optim builds on optax, which is not installed: pip install optax "
            "(or pip install 'stategrad[optim]')"
        ) from None
    return optax


def _is_state(x: typing.Any) -> bool:
    return isinstance(x, State)


def _key_text(path: tuple) -> str:
    return jax.tree_util.keystr(path) or "(the root)"


def _lookup(tree: typing.Any, path: tuple) -> typing.Any:
    """The subtree of ``tree`` at a JAX key path (dict keys, indices, attribute names)."""
    for entry in path:
        if isinstance(entry, jax.tree_util.GetAttrKey):
            tree = getattr(tree, entry.name)
        elif isinstance(entry, jax.tree_util.SequenceKey):
            tree = tree[entry.idx]
        else:  # DictKey, FlattenedIndexKey
            tree = tree[entry.key]
    return tree


class OptaxOptimizer:
    """Apply an optax ``GradientTransformation`` to a pytree of States.

    Call :meth:`register_trainable_weights` with the States to train (e.g.
    ``model.states(facade.ParamState)``), then :meth:`update` with their gradients, in the
    same structure, at every step: it computes the optax update from the current values,
    writes the new values into the States and keeps optax's state in :attr:`opt_state`.

    Args:
        tx: the optax transformation (``optax.adam(1e-3)``, a chain, ...).

    Raises:
        TypeError: ``tx`` is not an optax ``GradientTransformation``.
        ImportError: optax is not installed.

    Example:
        >>> import jax.numpy as jnp, optax, facade
        >>> model = facade.nn.Linear(3, 1)
        >>> opt = facade.optim.OptaxOptimizer(optax.adam(1e-2))
        >>> _ = opt.register_trainable_weights(model.states(facade.ParamState))
        >>> x, y = jnp.ones((4, 3)), jnp.zeros((4, 1))
        >>> loss = lambda: jnp.mean((model(x) - y) ** 2)
        >>> @facade.transform.jit
        ... def train_step():
        ...     grads, value = facade.transform.grad(
        ...         loss, model.states(facade.ParamState), return_value=True
        ...     )()
        ...     opt.update(grads)
        ...     return value
        >>> losses = [float(train_step()) for _ in range(50)]
        >>> losses[-1] < losses[0]
        True
    """

    def __init__(self, tx: typing.Any):
        if not isinstance(tx, _optax().GradientTransformation):
            raise TypeError(
                "OptaxOptimizer: tx must be an optax GradientTransformation (e.g. "
                f"optax.adam(1e-3)), got {type(tx).__name__}"
            )
        self.tx = tx
        self.param_states: typing.Any = None
        self.opt_state: OptimState | None = None
        self._states: list[State] = []
        self._paths: list[tuple] = []
        self._treedef: typing.Any = None

    def register_trainable_weights(self, param_states: typing.Any) -> OptaxOptimizer:
        """Choose the States to train and initialise the optax state from their values.

        Args:
            param_states: a pytree whose leaves are States: a
                :class:`~facade.graph.FlatDict` from ``model.states(...)``, a dict of
                States, a list, ...

        Returns:
            This optimizer.

        Raises:
            TypeError: ``param_states`` holds a leaf that is not a State, or no State.
            ValueError: a State appears twice.

        Example:
            >>> import jax.numpy as jnp, optax, facade
            >>> opt = facade.optim.SGD(lr=0.1)
            >>> opt.register_trainable_weights([facade.ParamState(jnp.zeros(2))]).opt_state
            OptimState(value=(EmptyState(), EmptyState()))
        """
        pairs, treedef = jax.tree_util.tree_flatten_with_path(param_states, is_leaf=_is_state)
        if not pairs:
            raise TypeError("register_trainable_weights: param_states holds no State")
        seen: dict[int, tuple] = {}
        for path, leaf in pairs:
            if not isinstance(leaf, State):
                raise TypeError(
                    f"register_trainable_weights: the leaf at {_key_text(path)} is a "
                    f"{type(leaf).__name__}, not a State"
                )
            if id(leaf) in seen:
                raise ValueError(
                    f"register_trainable_weights: {leaf._describe()} appears twice, at "
                    f"{_key_text(seen[id(leaf)])} and {_key_text(path)}"
                )
            seen[id(leaf)] = path
        self.param_states = param_states
        self._paths = [path for path, _ in pairs]
        self._states = [leaf for _, leaf in pairs]
        self._treedef = treedef
        self.opt_state = OptimState(self.tx.init(self._values()))
        return self

    def _values(self) -> typing.Any:
        return jax.tree.unflatten(self._treedef, [s.value for s in self._states])

    def _aligned(self, grads: typing.Any) -> typing.Any:
        """``grads`` rebuilt in the structure of ``param_states``, matched by keys."""
        if isinstance(grads, Mapping) and isinstance(self.param_states, Mapping):
            extra = set(grads) - set(self.param_states)
            if extra:
                raise ValueError(
                    f"update: grads has keys that are not registered: {sorted(map(str, extra))}"
                )
        leaves = []
        for path in self._paths:
            try:
                leaves.append(_lookup(grads, path))
            except (KeyError, IndexError, TypeError, AttributeError):
                raise ValueError(
                    f"update: grads has no gradient for the registered state at {_key_text(path)}"
                ) from None
        return jax.tree.unflatten(self._treedef, leaves)

    def update(self, grads: typing.Any) -> None:
        """One optimisation step: new values for the registered States from ``grads``.

        Args:
            grads: the gradients, in the structure of ``param_states`` (what
                ``facade.transform.grad(loss, param_states)`` returns); a mapping may be of
                another mapping type with the same keys.

        Raises:
            ValueError: :meth:`register_trainable_weights` was not called, or ``grads`` lacks
                a registered state's gradient or has an unregistered key.

        Example:
            >>> import jax.numpy as jnp, facade
            >>> w = facade.ParamState(jnp.array(1.0))
            >>> opt = facade.optim.SGD(lr=0.5).register_trainable_weights({"w": w})
            >>> opt.update({"w": jnp.array(2.0)})
            >>> w.value
            Array(0., dtype=float32)
        """
        if self.opt_state is None:
            raise ValueError("update: call register_trainable_weights(states) first")
        grads = self._aligned(grads)
        params = self._values()
        updates, self.opt_state.value = self.tx.update(grads, self.opt_state.value, params)
        new_values = _optax().apply_updates(params, updates)
        for state, value in zip(self._states, self._treedef.flatten_up_to(new_values), strict=True):
            state.value = value

    step = update  # the PyTorch-style name braintools also offers

    def __repr__(self) -> str:
        count = len(self._states)
        return f"{type(self).__name__}(trainable states: {count})"


def _with_weight_decay(tx: typing.Any, weight_decay: float) -> typing.Any:
    """Add ``weight_decay * param`` to the gradient first (L2, as in PyTorch's SGD/Adam)."""
    if weight_decay == 0:
        return tx
    optax = _optax()
    return optax.chain(optax.add_decayed_weights(weight_decay), tx)


def _check_rates(owner: str, **values: typing.Any) -> None:
    for name, value in values.items():
        if not callable(value) and value < 0:
            raise ValueError(f"{owner}: {name} must not be negative, got {value!r}")


class SGD(OptaxOptimizer):
    """Stochastic gradient descent: :class:`OptaxOptimizer` over ``optax.sgd``.

    Args:
        lr: the learning rate, or an optax schedule (step -> rate).
        momentum: the momentum (0 for none).
        weight_decay: L2 penalty added to the gradient (``optax.add_decayed_weights`` first).
        nesterov: use Nesterov momentum.

    Raises:
        ValueError: a negative ``lr``, ``momentum`` or ``weight_decay``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> w = facade.ParamState(jnp.array(1.0))
        >>> opt = facade.optim.SGD(lr=0.1).register_trainable_weights([w])
        >>> opt.update([jnp.array(1.0)])
        >>> w.value
        Array(0.9, dtype=float32)
    """

    @typechecked
    def __init__(
        self,
        lr: LearningRate = 1e-3,
        momentum: float | int = 0.0,
        weight_decay: float | int = 0.0,
        nesterov: bool = False,
    ):
        _check_rates("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
        tx = _optax().sgd(lr, momentum=momentum or None, nesterov=nesterov)
        super().__init__(_with_weight_decay(tx, weight_decay))


class Adam(OptaxOptimizer):
    """Adam: :class:`OptaxOptimizer` over ``optax.adam``.

    Args:
        lr: the learning rate, or an optax schedule.
        betas: the decay rates ``(b1, b2)`` of the first and second moments.
        eps: added to the denominator.
        weight_decay: L2 penalty added to the gradient before Adam (for decoupled weight
            decay use :class:`AdamW`).

    Raises:
        ValueError: a negative rate, or ``betas`` outside [0, 1).

    Example:
        >>> import jax.numpy as jnp, facade
        >>> w = facade.ParamState(jnp.array(1.0))
        >>> opt = facade.optim.Adam(lr=0.1).register_trainable_weights([w])
        >>> opt.update([jnp.array(3.0)])  # Adam's first step is lr * sign(grad)
        >>> round(float(w.value), 5)
        0.9
    """

    @typechecked
    def __init__(
        self,
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | int = 0.0,
    ):
        _check_betas("Adam", betas)
        _check_rates("Adam", lr=lr, eps=eps, weight_decay=weight_decay)
        tx = _optax().adam(lr, b1=betas[0], b2=betas[1], eps=eps)
        super().__init__(_with_weight_decay(tx, weight_decay))


class AdamW(OptaxOptimizer):
    """Adam with decoupled weight decay: :class:`OptaxOptimizer` over ``optax.adamw``.

    Args:
        lr: the learning rate, or an optax schedule.
        betas: the decay rates ``(b1, b2)`` of the first and second moments.
        eps: added to the denominator.
        weight_decay: the decoupled decay rate (times ``lr``, applied to the parameters).

    Raises:
        ValueError: a negative rate, or ``betas`` outside [0, 1).

    Example:
        >>> import jax.numpy as jnp, facade
        >>> w = facade.ParamState(jnp.array(1.0))
        >>> opt = facade.optim.AdamW(lr=0.1, weight_decay=0.5).register_trainable_weights([w])
        >>> opt.update([jnp.array(0.0)])  # no gradient: only the decay, lr * 0.5 * w
        >>> w.value
        Array(0.95, dtype=float32)
    """

    @typechecked
    def __init__(
        self,
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | int = 0.01,
    ):
        _check_betas("AdamW", betas)
        _check_rates("AdamW", lr=lr, eps=eps, weight_decay=weight_decay)
        tx = _optax().adamw(lr, b1=betas[0], b2=betas[1], eps=eps, weight_decay=weight_decay)
        super().__init__(tx)


def _check_betas(owner: str, betas: tuple[float, float]) -> None:
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"{owner}: betas[{i}] must be in [0, 1), got {b!r}")
