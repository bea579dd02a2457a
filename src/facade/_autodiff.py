"""State-aware autodiff: each transform lowers a stateful call and calls ``functional``."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

import functional as F
from functional._argnums import resolve_argnums
from functional._engine import check_argnums, check_bool, check_callable, pack, split_aux
from functional._transforms import _check_transform_params

from ._grad_states import flatten_grad_states, unread_error
from ._lowering import Lowering
from ._state import State

Argnums = int | Sequence[int]
GradStates = State | Sequence[State] | dict[Any, State] | None

# Positions in the pure function: (grad_values, kwargs, *args).
_ARGS_OFFSET = 2


class _NonFinite(Exception):
    pass


def _functional_argnums(argnums: Argnums | None, num_args: int, with_states: bool) -> Any:
    """``argnums`` of the user's function, as positions in the pure function."""
    positions = () if argnums is None else resolve_argnums(argnums, num_args)
    shifted = tuple(_ARGS_OFFSET + p for p in positions)
    if with_states:
        return 0 if argnums is None else (0, *shifted)
    return shifted[0] if isinstance(argnums, int) else shifted


def _arrange(grads: Any, argnums: Argnums | None, with_states: bool) -> Any:
    """Give the gradients the spec's structure: var_grads, arg_grads or (var_grads, arg_grads)."""
    if not with_states or argnums is None:
        return grads
    return grads[0], grads[1] if isinstance(argnums, int) else tuple(grads[1:])


def _by_argnum(grads: Any, out_tree: Any, count: int) -> tuple[Any, ...]:
    """Regroup a Jacobian that JAX nests output first, then by argnum, argnum first.

    ``jax.jacrev(f, argnums=(0, 1))`` of a dict output is ``{"a": (J0, J1), ...}``; the return
    table wants ``(var_grads, arg_grads)``: ``({"a": J0, ...}, {"a": J1, ...})``.
    """
    per_output = out_tree.flatten_up_to(grads)
    return tuple(out_tree.unflatten([p[i] for p in per_output]) for i in range(count))


def _structured(f: Callable[..., Any], treedef: Any) -> Callable[..., Any]:
    """``f`` taking the grad_states' values in the user's structure instead of a flat list.

    Differentiating w.r.t. the structured values makes every level of a transform's result
    carry that structure (the rows of a Jacobian of a pytree output, the blocks of a Hessian),
    which unflattening a flat result afterwards cannot do.
    """
    if treedef is None:
        return f

    def g(grad_values: Any, kw: Any, *args: Any) -> Any:
        return f(treedef.flatten_up_to(grad_values), kw, *args)

    return g


def _check_states_read(grad_states: Sequence[State], fn: Any) -> Callable[..., None]:
    def on_discovered(reads: dict[State, None], writes: dict[State, None]) -> None:
        for s in grad_states:
            if s not in reads:
                raise unread_error(s, fn)

    return on_discovered


def _with_aux(pure: Any, has_aux: bool, fn: Any) -> Callable[..., Any]:
    """``pure`` as a function returning ``(value, (aux, written))`` for the functional engine."""

    def f(grad_values: Any, kw: Any, *args: Any) -> Any:
        out, written = pure(grad_values, kw, *args)
        value, aux = split_aux(out, has_aux, fn)
        return value, (aux, written)

    return f


def _via_transform(
    transform: Callable[..., Any], params: dict[str, Any] | None
) -> Callable[..., Any]:
    """``functional.transform`` with ``transform`` fixed, called like ``functional.grad``."""

    def lowered(f: Callable[..., Any], argnums: Any, **options: Any) -> Callable[..., Any]:
        return F.transform(f, transform, argnums, transform_params=params, **options)

    return lowered


class GradientTransform:
    """A stateful function transformed by a JAX-style gradient transform.

    Args:
        target: the function; it may read and write States.
        transform: a JAX-style transform, called as
            ``transform(f, argnums=..., has_aux=True, **transform_params)``.
        grad_states: States to differentiate: one, a sequence or a dict (state gradients come
            back in the same structure).
        argnums: positional arguments to differentiate (default 0 when ``grad_states`` is None).
        return_value: also return the function's value.
        has_aux: the function returns ``(value, aux)``.
        transform_params: extra keyword arguments for ``transform``.
        check_states: raise ValueError if a grad_state is never read.
        debug_nan: raise RuntimeError naming the operation when a gradient is NaN or Inf.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> w = facade.State(jnp.array([1.0, 2.0]))
        >>> g = facade.transform.GradientTransform(lambda x: jnp.sum(w.value * x), jax.grad,
        ...                                        grad_states=w)
        >>> g(jnp.array([3.0, 4.0]))
        Array([3., 4.], dtype=float32)
    """

    def __init__(
        self,
        target: Callable[..., Any],
        transform: Callable[..., Any],
        grad_states: GradStates = None,
        argnums: Argnums | None = None,
        return_value: bool = False,
        has_aux: bool = False,
        transform_params: dict[str, Any] | None = None,
        check_states: bool = True,
        debug_nan: bool = False,
        *,
        _functional: Callable[..., Any] | None = None,
        _output_first: bool = False,
    ):
        check_callable(target, "target")
        check_callable(transform, "transform")
        for name, flag in [
            ("return_value", return_value),
            ("has_aux", has_aux),
            ("check_states", check_states),
            ("debug_nan", debug_nan),
        ]:
            check_bool(flag, name)
        if transform_params is not None and not isinstance(transform_params, dict):
            raise TypeError(
                f"transform_params must be a dict, got {type(transform_params).__name__}"
            )
        states, self._states_treedef = flatten_grad_states(grad_states)
        if argnums is None and not states:
            argnums = 0
        if argnums is not None:
            check_argnums(argnums)
        if _functional is None:
            _check_transform_params(transform, transform_params or {})
            _functional = _via_transform(transform, transform_params)
        self.target = target
        self.transform = transform
        self.grad_states = grad_states
        self.argnums = argnums
        self.has_aux = has_aux
        self.return_value = return_value
        self.debug_nan = debug_nan
        self._functional = _functional
        # Jacobian-style transforms nest their result by the output's structure first.
        self._output_first = _output_first
        self._lowering = Lowering(
            target,
            self._body,
            states,
            on_discovered=_check_states_read(states, target) if check_states else None,
        )
        functools.update_wrapper(self, target, updated=())

    def _body(self, pure: Any, grad_values: Any, kw: Any, args: tuple[Any, ...]) -> Any:
        treedef = self._states_treedef
        with_aux = _with_aux(pure, self.has_aux, self.target)
        out_tree: list[Any] = []  # the output's tree structure, seen at trace time

        def recording(*a: Any) -> Any:
            result = with_aux(*a)
            out_tree[:] = [jax.tree.structure(result[0])]
            return result

        f = _structured(recording, treedef)
        argnums = _functional_argnums(self.argnums, len(args), bool(self._lowering.grad_states))
        if treedef is not None:
            grad_values = treedef.unflatten(grad_values)
        # The value is computed only when asked for: as an extra output of an eager program
        # it would cost an N-long reduction per call and many times the compile time.
        out = self._functional(f, argnums, has_aux=True, return_value=self.return_value)(
            grad_values, kw, *args
        )
        if self.return_value:
            grads, value, (aux, written) = out
        else:
            (grads, (aux, written)), value = out, None
        if self._output_first and treedef is not None and not isinstance(argnums, int):
            # Only the (var_grads, arg_grads) layout regroups; without grad_states the result
            # is exactly JAX's.
            grads = _by_argnum(grads, out_tree[0], len(argnums))
        grads = _arrange(grads, self.argnums, treedef is not None)
        # The result leaves the compiled program already in the return table's shape.
        return pack(grads, value, aux, self.has_aux, self.return_value), written

    def _check_finite(self, result: Any) -> None:
        grads = result[0] if self.has_aux or self.return_value else result
        leaves = jax.tree.leaves(grads)
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            return  # inside an outer trace: nothing concrete to check
        if not all(
            bool(jnp.all(jnp.isfinite(x))) for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)
        ):
            raise _NonFinite

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.debug_nan:
            return self._lowering(args, kwargs)
        try:
            return self._lowering(args, kwargs, check=self._check_finite)
        except _NonFinite:
            raise self._diagnose_nan(args, kwargs) from None

    def _diagnose_nan(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RuntimeError:
        """Re-run with JAX's NaN/Inf checks on, which name the primitive that produced it."""
        name = getattr(self.target, "__name__", repr(self.target))
        try:
            with jax.debug_nans(True), jax.debug_infs(True):
                self._lowering(args, kwargs, check=self._check_finite)
        except FloatingPointError as err:
            return RuntimeError(f"debug_nan: the gradients of {name!r} hold NaN or Inf: {err}")
        except _NonFinite:
            pass
        return RuntimeError(
            f"debug_nan: the gradients of {name!r} hold NaN or Inf, already present in the "
            "inputs or states (no operation produced it)"
        )


def _decorator_or(fun: Any, make: Callable[[Callable[..., Any]], Any]) -> Any:
    """Support both ``grad(f, ...)`` and ``@grad(...)``."""
    return make if fun is None else make(fun)


def _unit_aware_transform(unit_aware: bool, name: str) -> Callable[..., Any] | None:
    """brainunit's JAX-style transform ``name`` when ``unit_aware``; it plugs into the engine.

    Its gradients carry units (output unit / input unit); without brainunit this raises.
    """
    check_bool(unit_aware, "unit_aware")
    if not unit_aware:
        return None
    try:
        import brainunit
    except ImportError:
        raise ImportError(
            "unit_aware=True needs the optional 'brainunit' package: pip install 'stategrad[units]'"
        ) from None
    return getattr(brainunit.autograd, name)


def _named(
    functional_fn: Callable[..., Any],
    transform: Callable[..., Any],
    fun: Any,
    grad_states: GradStates,
    argnums: Argnums | None,
    has_aux: bool | None,
    return_value: bool,
    check_states: bool,
    debug_nan: bool,
    unit_aware: bool,
    params: dict[str, Any],
) -> Any:
    unit_transform = _unit_aware_transform(unit_aware, getattr(transform, "__name__", ""))
    has_aux = bool(has_aux) if has_aux is None else has_aux
    lowered: Callable[..., Any]
    if unit_transform is None:
        lowered = functools.partial(functional_fn, **params)
    else:
        lowered = _via_transform(unit_transform, params)
    return _decorator_or(
        fun,
        lambda f: GradientTransform(
            f,
            transform,
            grad_states=grad_states,
            argnums=argnums,
            return_value=return_value,
            has_aux=has_aux,
            check_states=check_states,
            debug_nan=debug_nan,
            _functional=lowered,
            _output_first=transform in (jax.jacrev, jax.jacfwd),
        ),
    )


def grad(
    fun: Callable[..., Any] | None = None,
    grad_states: GradStates = None,
    argnums: Argnums | None = None,
    holomorphic: bool = False,
    allow_int: bool = False,
    has_aux: bool | None = None,
    return_value: bool = False,
    unit_aware: bool = False,
    check_states: bool = True,
    debug_nan: bool = False,
) -> Any:
    """Gradient of a scalar stateful function w.r.t. ``grad_states`` and/or ``argnums``.

    Returns the spec's table: ``grads``; ``(grads, aux)``; ``(grads, value)``;
    ``(grads, value, aux)``, where ``grads`` is ``arg_grads``, ``var_grads`` or
    ``(var_grads, arg_grads)``. Used as ``@grad(grad_states=...)`` when ``fun`` is omitted.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> w = facade.ParamState(jnp.array(2.0))
        >>> facade.transform.grad(lambda x: (w.value * x) ** 2, grad_states=w)(3.0)
        Array(36., dtype=float32, weak_type=True)
    """
    check_bool(holomorphic, "holomorphic")
    check_bool(allow_int, "allow_int")
    return _named(
        F.grad,
        jax.grad,
        fun,
        grad_states,
        argnums,
        has_aux,
        return_value,
        check_states,
        debug_nan,
        unit_aware,
        {"holomorphic": holomorphic, "allow_int": allow_int},
    )


def vector_grad(
    func: Callable[..., Any] | None = None,
    grad_states: GradStates = None,
    argnums: Argnums | None = None,
    return_value: bool = False,
    has_aux: bool | None = None,
    unit_aware: bool = False,
    check_states: bool = True,
    debug_nan: bool = False,
) -> Any:
    """Gradient of the sum of a vector-valued stateful function's outputs (``ones @ J``).

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.transform.vector_grad(lambda x: x ** 2)(jnp.array([1.0, 2.0]))
        Array([2., 4.], dtype=float32)
    """
    return _named(
        F.vector_grad,
        F.vector_grad,
        func,
        grad_states,
        argnums,
        has_aux,
        return_value,
        check_states,
        debug_nan,
        unit_aware,
        {},
    )


def jacrev(
    fun: Callable[..., Any] | None = None,
    grad_states: GradStates = None,
    argnums: Argnums | None = None,
    has_aux: bool | None = None,
    return_value: bool = False,
    holomorphic: bool = False,
    allow_int: bool = False,
    unit_aware: bool = False,
    check_states: bool = True,
    debug_nan: bool = False,
) -> Any:
    """Jacobian of a stateful function by reverse mode.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.transform.jacrev(lambda x: x ** 2)(jnp.array([1.0, 2.0]))
        Array([[2., 0.],
               [0., 4.]], dtype=float32)
    """
    check_bool(holomorphic, "holomorphic")
    check_bool(allow_int, "allow_int")
    return _named(
        F.jacrev,
        jax.jacrev,
        fun,
        grad_states,
        argnums,
        has_aux,
        return_value,
        check_states,
        debug_nan,
        unit_aware,
        {"holomorphic": holomorphic, "allow_int": allow_int},
    )


jacobian = jacrev


def jacfwd(
    func: Callable[..., Any] | None = None,
    grad_states: GradStates = None,
    argnums: Argnums | None = None,
    has_aux: bool | None = None,
    return_value: bool = False,
    holomorphic: bool = False,
    unit_aware: bool = False,
    check_states: bool = True,
    debug_nan: bool = False,
) -> Any:
    """Jacobian of a stateful function by forward mode.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.transform.jacfwd(lambda x: x ** 2)(jnp.array([1.0, 2.0]))
        Array([[2., 0.],
               [0., 4.]], dtype=float32)
    """
    check_bool(holomorphic, "holomorphic")
    return _named(
        F.jacfwd,
        jax.jacfwd,
        func,
        grad_states,
        argnums,
        has_aux,
        return_value,
        check_states,
        debug_nan,
        unit_aware,
        {"holomorphic": holomorphic},
    )


def hessian(
    func: Callable[..., Any] | None = None,
    grad_states: GradStates = None,
    argnums: Argnums | None = None,
    has_aux: bool | None = None,
    return_value: bool = False,
    holomorphic: bool = False,
    unit_aware: bool = False,
    check_states: bool = True,
    debug_nan: bool = False,
) -> Any:
    """Hessian of a scalar stateful function.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.transform.hessian(lambda x: jnp.dot(x, x))(jnp.array([1.0, 2.0]))
        Array([[2., 0.],
               [0., 2.]], dtype=float32)
    """
    check_bool(holomorphic, "holomorphic")
    return _named(
        F.hessian,
        jax.hessian,
        func,
        grad_states,
        argnums,
        has_aux,
        return_value,
        check_states,
        debug_nan,
        unit_aware,
        {"holomorphic": holomorphic},
    )


def _default_key() -> Any:
    from . import random

    return random.split_key()


def fwd_grad(
    func: Callable[..., Any] | None = None,
    grad_states: GradStates = None,
    argnums: Argnums | None = None,
    has_aux: bool | None = None,
    return_value: bool = False,
    tangent_size: int | None = None,
    drct_der_clip: float | None = None,
    key: Any = None,
    check_states: bool = True,
    debug_nan: bool = False,
) -> Any:
    """Forward-gradient estimate of a scalar stateful function (random directions).

    ``key=None`` draws fresh directions from ``facade.random`` at every call; the draw is
    threaded through the compiled program like any other state.
    """
    return _named(
        F.fwd_grad,
        F.fwd_grad,
        func,
        grad_states,
        argnums,
        has_aux,
        return_value,
        check_states,
        debug_nan,
        False,
        {
            "tangent_size": tangent_size,
            "drct_der_clip": drct_der_clip,
            "key": _default_key if key is None else key,
        },
    )


# --- vjp / jvp: one-shot calls, so their lowerings are cached on the function itself --------

_KEPT = 8  # lowerings kept per holder: a bound on what one long-lived object holds


def _shared_lowering(
    fun: Any, states: tuple[State, ...], config: Any, make: Callable[[], Lowering]
) -> Lowering:
    """The Lowering of a one-shot call (``vjp``/``jvp``), cached where it dies with the model.

    With grad_states it is kept on the first of them: a long-lived function (say a module-level
    loss) then never keeps a dropped model alive, since the cycle state -> lowering -> state is
    collected with the model. Without grad_states it is kept in ``fun.__dict__``.
    """
    if states:
        holder_cache = states[0].lowerings
        if holder_cache is None:
            holder_cache = states[0].lowerings = OrderedDict()
        key: Any = (fun, config)
    else:
        store = getattr(fun, "__dict__", None) if not hasattr(fun, "__self__") else None
        if store is None:
            return make()
        holder_cache = store.setdefault("__stategrad_lowerings__", OrderedDict())
        key = config
    try:
        lowering = holder_cache.get(key)
    except TypeError:  # unhashable config
        return make()
    if lowering is None:
        lowering = holder_cache[key] = make()
        while len(holder_cache) > _KEPT:
            holder_cache.popitem(last=False)
    else:
        holder_cache.move_to_end(key)
    return lowering


def _apply(pullback: Any, cotangent: Any) -> Any:
    return pullback(cotangent)


def vjp(
    fun: Callable[..., Any],
    *primals: Any,
    grad_states: GradStates = None,
    argnums: Argnums | None = 0,
    has_aux: bool = False,
) -> tuple[Any, ...]:
    """State-aware vector-Jacobian product: ``(out, vjp_fn)`` or ``(out, vjp_fn, aux)``.

    ``vjp_fn(v)`` returns ``arg_cts``, ``(state_cts, arg_cts)`` or ``state_cts`` (see the
    spec's vjp page); states written by ``fun`` keep their new values.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> w = facade.State(jnp.array([2.0, 3.0]))
        >>> out, vjp_fn = facade.transform.vjp(lambda x: jnp.sum(w.value * x), jnp.ones(2),
        ...                                    grad_states=w)
        >>> vjp_fn(1.0)
        (Array([1., 1.], dtype=float32), Array([2., 3.], dtype=float32))
    """
    check_callable(fun)
    check_bool(has_aux, "has_aux")
    states, treedef = flatten_grad_states(grad_states)
    if not primals:
        argnums = None
    if argnums is not None:
        check_argnums(argnums)
    if argnums is None and not states:
        raise ValueError(
            "vjp has nothing to differentiate: pass primals with argnums, or grad_states"
        )
    argnums_key = argnums if argnums is None or isinstance(argnums, int) else tuple(argnums)

    def make() -> Lowering:
        def body(pure: Any, grad_values: Any, kw: Any, args: tuple[Any, ...]) -> Any:
            nums = _functional_argnums(argnums, len(args), bool(states))
            # Without states, the pure function's first position is kept, with nothing in it.
            grad_values = treedef.unflatten(grad_values) if states else []
            out, pullback, (aux, written) = F.vjp(
                _structured(_with_aux(pure, has_aux, fun), treedef),
                grad_values,
                kw,
                *args,
                argnums=nums,
                has_aux=True,
            )
            return (out, pullback, aux), written

        return Lowering(fun, body, states, on_discovered=_check_states_read(states, fun))

    lowering = _shared_lowering(fun, states, ("vjp", states, argnums_key, has_aux), make)
    out, pullback, aux = lowering(primals, {})
    # The pullback runs as one compiled program too; its jit lives (and dies) with the lowering.
    apply = lowering.__dict__.get("apply_pullback")
    if apply is None:
        apply = lowering.__dict__["apply_pullback"] = jax.jit(_apply)

    def vjp_fn(cotangent: Any) -> Any:
        return _arrange(apply(pullback, cotangent), argnums, bool(states))

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def jvp(
    fun: Callable[..., Any],
    primals: Sequence[Any],
    tangents: Sequence[Any],
    *,
    grad_states: GradStates = None,
    state_tangents: Any = None,
    has_aux: bool = False,
) -> tuple[Any, ...]:
    """State-aware Jacobian-vector product: ``(out, tangent_out)`` or ``(..., aux)``.

    ``state_tangents`` (same structure as ``grad_states``) perturbs states as ``tangents``
    perturbs ``primals``; states written by ``fun`` keep their new values.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> w = facade.State(jnp.array(2.0))
        >>> facade.transform.jvp(lambda x: w.value * x, (3.0,), (1.0,), grad_states=w,
        ...                      state_tangents=jnp.array(1.0))
        (Array(6., dtype=float32, weak_type=True), Array(5., dtype=float32, weak_type=True))
    """
    check_callable(fun)
    check_bool(has_aux, "has_aux")
    states, treedef = flatten_grad_states(grad_states)
    if (state_tangents is None) != (not states):
        raise ValueError("state_tangents must be given exactly when grad_states is")
    if isinstance(primals, str) or not isinstance(primals, Sequence):
        raise TypeError(f"primals must be a tuple of pytrees, got {type(primals).__name__}")
    if isinstance(tangents, str) or not isinstance(tangents, Sequence):
        raise TypeError(f"tangents must be a tuple of pytrees, got {type(tangents).__name__}")
    if len(primals) != len(tangents):
        raise TypeError(
            f"tangents must have one entry per primal: got {len(tangents)} for {len(primals)}"
        )
    state_tangent_list: list[Any] = []
    if states:
        state_tangent_list = treedef.flatten_up_to(state_tangents)
    n = len(primals)

    def make() -> Lowering:
        def body(pure: Any, grad_values: Any, kw: Any, args: tuple[Any, ...]) -> Any:
            primal_args, tangent_args = args[:n], args[n:]
            f = _with_aux(pure, has_aux, fun)
            out, tangent_out, (aux, written) = F.jvp(
                lambda gv, *p: f(gv, kw, *p, *tangent_args),
                (list(grad_values), *primal_args),
                (list(tangent_args[0]), *tangent_args[1:]),
                has_aux=True,
            )
            return (out, tangent_out, aux), written

        def pure_args_fn(*a: Any, **k: Any) -> Any:
            return fun(*a[:n], **k)

        return Lowering(pure_args_fn, body, states, on_discovered=_check_states_read(states, fun))

    lowering = _shared_lowering(fun, states, ("jvp", states, n, has_aux), make)
    out, tangent_out, aux = lowering((*primals, state_tangent_list, *tangents), {})
    return (out, tangent_out, aux) if has_aux else (out, tangent_out)
