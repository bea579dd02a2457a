"""State-aware ``checkpoint`` (``remat``): a stateful function rematerialised on the backward pass.

The function is made pure over the states it touches and passed through ``jax.checkpoint``;
the states it writes come out as outputs and are written back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax

from .._core import sites
from .._core.bridge import Pure, Signature, discover, read_values, write_values


def _checkpoint_traced(
    fun: Callable[..., Any],
    prevent_cse: bool,
    policy: Callable[..., bool] | None,
    static_argnums: tuple[int, ...],
    *args: Any,
    **kwargs: Any,
) -> Any:
    nums = frozenset(i % len(args) for i in static_argnums if -len(args) <= i < len(args))
    sig = Signature(args, kwargs, nums)
    d, _ = discover(fun, args, kwargs, static_argnums=nums)
    args_dyn, kw_dyn = sig.split(args, kwargs)
    pure = Pure(fun, d, sig)

    def rematerialised(values: Any, *a: Any, **kw: Any) -> Any:
        return pure(values, *a, **kw)

    out, written = jax.checkpoint(rematerialised, prevent_cse=prevent_cse, policy=policy)(
        read_values(d), *args_dyn, **kw_dyn
    )
    pure.check_traces("checkpoint")
    write_values(d.writes, written)
    return out


class _Checkpointed(sites.HeldTransform):
    """``fun`` under :func:`checkpoint`; callable like ``fun``."""

    def __init__(
        self,
        fun: Callable[..., Any],
        prevent_cse: bool,
        policy: Callable[..., bool] | None,
        static_argnums: tuple[int, ...],
    ):
        self.fun, self.prevent_cse, self.policy = fun, prevent_cse, policy
        self.static_argnums = static_argnums
        run = functools.partial(_checkpoint_traced, fun, prevent_cse, policy, static_argnums)
        super().__init__(fun, run, "checkpoint", static_argnums)


def checkpoint(
    fun: Callable[..., Any] | None = None,
    *,
    prevent_cse: bool = True,
    policy: Callable[..., bool] | None = None,
    static_argnums: int | Sequence[int] = (),
) -> Any:
    """Make a stateful ``fun`` recompute its intermediates when differentiated (``jax.checkpoint``).

    States ``fun`` reads are inputs and the states it writes are outputs of the rematerialised
    function, written back after the call. Usable as ``@checkpoint`` or ``@checkpoint(...)``.

    Args:
        fun: the function; it may read and write States.
        prevent_cse: as ``jax.checkpoint`` (set False inside loops).
        policy: a ``jax.checkpoint_policies`` policy deciding what may be saved.
        static_argnums: arguments that are static (hashable Python values).

    Raises:
        TypeError: ``fun`` or ``policy`` not callable, ``static_argnums`` not ints.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> w = facade.ParamState(jnp.array(2.0))
        >>> f = facade.transform.checkpoint(lambda x: jnp.sin(jnp.sin(w.value * x)))
        >>> g = facade.transform.grad(f, grad_states=w)(1.0)
        >>> bool(jnp.allclose(g, jnp.cos(jnp.sin(2.0)) * jnp.cos(2.0)))
        True
    """
    if not isinstance(prevent_cse, bool):
        raise TypeError(f"checkpoint: prevent_cse must be a bool, got {prevent_cse!r}")
    if policy is not None and not callable(policy):
        raise TypeError(f"checkpoint: policy must be callable or None, got {policy!r}")
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    for i in nums:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"checkpoint: static_argnums must be ints, got {static_argnums!r}")

    def make(f: Callable[..., Any]) -> _Checkpointed:
        if not callable(f):
            raise TypeError(f"checkpoint: fun must be callable, got {type(f).__name__}")
        return _Checkpointed(f, prevent_cse, policy, nums)

    return make if fun is None else make(fun)


remat = checkpoint
