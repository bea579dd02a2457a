"""``jit_error_if``: raise an error from inside a compiled function when a condition holds."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ._vmap import unvmap


def _raise_message(message: str, *args: Any, **kwargs: Any) -> None:
    """brainstate's string form: ``%``-format positional args (``str.format`` when ``%`` does
    not apply), ``str.format`` the keyword args, raise ``ValueError``."""
    if args:
        try:
            message = message % args
        except (TypeError, ValueError):
            message = message.format(*args)
    if kwargs:
        message = message.format(**kwargs)
    raise ValueError(message)


def _holds_tracer(tree: Any) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree))


def jit_error_if(
    pred: Any, error: Callable[..., Any] | str, *err_args: Any, **err_kwargs: Any
) -> None:
    """Raise ``error`` when ``pred`` holds, also from inside a compiled (traced) function.

    ``error`` is a function that raises, called with ``*err_args, **err_kwargs``, or a message:
    its positional args are ``%``-formatted into it (``str.format`` when ``%`` does not apply)
    and its keyword args ``str.format``-ted, and a ``ValueError`` of it is raised. ``pred`` may
    be an array: the error is raised if any element (of any batch element, under ``vmap``) is
    true.

    When ``pred`` is a concrete value (an eager call, or a constant while tracing), the check
    runs at once and ``error``'s own exception propagates. When it is traced, the program
    calls ``error`` through ``jax.debug.callback`` when the condition holds at run time; JAX
    then reports it as a ``jax.errors.JaxRuntimeError`` whose message contains ``error``'s.

    Args:
        pred: a boolean, or a boolean array.
        error: a function that raises, or a message.
        *err_args: arguments of ``error`` (or of the message), may be traced.
        **err_kwargs: keyword arguments of ``error`` (or of the message), may be traced.

    Raises:
        ValueError: ``error`` is a message and ``pred`` holds (an eager call).

    Example:
        >>> import jax.numpy as jnp, facade
        >>> x = jnp.array([1.0, -2.0])
        >>> facade.transform.jit_error_if(jnp.any(x > 5.0), "too large: {m}", m=x.max())
        >>> try:
        ...     facade.transform.jit_error_if(jnp.any(x < 0.0), "negative: {m}", m=x.min())
        ... except ValueError as err:
        ...     print(err)
        negative: -2.0
    """
    fun = functools.partial(_raise_message, error) if isinstance(error, str) else error
    if not callable(fun):
        raise TypeError(f"jit_error_if: error must be a callable or a str, got {error!r}")
    if not isinstance(pred, jax.core.Tracer):
        # Concrete: decide now, in Python. Under brainstate an eager call also goes through
        # a callback and surfaces as JaxRuntimeError; here the error's own exception does.
        if np.any(np.asarray(pred)):
            fun(*err_args, **err_kwargs)
        return
    # Traced: the program checks at run time. Batched operands are unbatched (stacked on a
    # leading axis) so the callback runs once, with every batch element's values.
    args, kwargs = jax.tree.map(lambda a: unvmap(a, op="none"), (err_args, err_kwargs))

    def raise_it(args: Any, kwargs: Any) -> None:
        jax.debug.callback(fun, *args, **kwargs, ordered=True)

    jax.lax.cond(unvmap(pred, op="any"), raise_it, lambda args, kwargs: None, args, kwargs)
