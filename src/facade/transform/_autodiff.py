"""State-aware autodiff: the bridge's pure function through the ``functional`` engine.

Each transform differentiates ``pure(state_values, *args)`` with respect to the grad_states'
slice of ``state_values`` (the bridge puts them first) and the ``argnums``, through
``functional.engine.build(..., leading=True)``, which owns the argnums layout and the return
table. The states written come out as auxiliary data and are written back by the lowering.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

import functional as F
from functional import engine

from .._core.bridge import Discovery, Pure, alive
from .._core.sites import PLAIN_TYPES, Lowering, Transformed, call, hint
from .._state import ARRAY_TYPES, State, active_frames, frame, peek
from ._grad_states import RepeatedStates, flatten_grad_states, unread_error

# An int or a sequence of ints. Annotated loosely on purpose: ``engine.check_argnums`` checks it
# and raises ArgnumsError (a TypeError and a ValueError: brainstate code expects ValueError).
Argnums = Any
GradStates = State | Sequence[State] | dict[Any, State] | None


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or repr(fn)


def check_facade_argnums(argnums: Any) -> None:
    """brainstate's rule for ``argnums``: non-negative ints (``engine.ArgnumsError`` if not)."""
    engine.check_argnums(argnums, allow_negative=False)


def _check_reads(
    name: str, states: Sequence[State]
) -> Callable[[Discovery, tuple[State, ...]], None]:
    """``check`` for a lowering: every one of ``states`` (the grad_states) must be read."""
    refs = tuple(weakref.ref(s) for s in states)

    def check(found: Discovery, first: tuple[State, ...]) -> None:
        for s in alive(refs):
            if s not in found.reads:
                raise unread_error(s, name)

    return check


class DrawKey:
    """``fwd_grad``'s default ``key``: a fresh key from ``facade.random`` at every call.

    The lowering gives the program the random state's value; the program draws with it in a
    frame of its own and passes the advanced key on to the function, so the draw is threaded
    through the compiled program like any other state write.
    """

    def __repr__(self) -> str:
        return "<a fresh key from facade.random>"


DRAW_KEY = DrawKey()


def _draw_key(pure: Pure, values: Sequence[Any]) -> tuple[Any, list[Any]]:
    """Split the random state's value in ``values``: ``(key, values with it advanced)``."""
    from .. import random

    (current,) = pure.values_of(values, [random.DEFAULT])
    with frame({random.DEFAULT: current}) as f:
        key = random.split_key()
        advanced = f.values[random.DEFAULT]
    return key, pure.replaced(values, [random.DEFAULT], [advanced])


class _NonFinite(Exception):
    pass


_WHILE_LOOP_MESSAGE = "Reverse-mode differentiation does not work for lax.while_loop"


@contextlib.contextmanager
def _while_loop_hint(name: str) -> Iterator[None]:
    """Turn JAX's refusal to reverse-differentiate a while loop into advice for the facade."""
    try:
        yield
    except ValueError as err:
        if _WHILE_LOOP_MESSAGE not in str(err):
            raise
        raise ValueError(
            f"{name!r} runs a while loop (facade.transform.while_loop or jax.lax.while_loop), "
            "which reverse mode (grad, vjp, jacrev) cannot differentiate: its number of steps "
            "is unknown when the program is built. Use facade.transform.bounded_while_loop("
            "cond_fun, body_fun, init_val, max_steps=...) instead, or forward mode (jacfwd, "
            "jvp)."
        ) from None


def _all_finite(grads: Any) -> Any:
    """One boolean: whether every inexact leaf of ``grads`` is finite (reduced in the program,
    so that it is the same on every device and in every process)."""
    flags = [
        jnp.all(jnp.isfinite(g))
        for g in jax.tree.leaves(grads)
        if jnp.issubdtype(g.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(flags)) if flags else jnp.array(True)


def _report_non_finite(name: str, finite: Any) -> None:
    """Run-time check (through ``jax.debug.callback``) for a program traced inside another."""
    if not bool(finite):
        raise FloatingPointError(f"debug_nan: the gradients of {name!r} hold NaN or Inf")


def _split_aux(out: Any, has_aux: bool, name: str) -> tuple[Any, Any]:
    """``engine.split_aux``, then a check that the aux can leave a compiled program."""
    value, aux = engine.split_aux(out, has_aux, name)
    for leaf in jax.tree.leaves(aux):
        if not isinstance(leaf, ARRAY_TYPES):
            raise TypeError(
                f"has_aux=True: the auxiliary output of {name!r} must be a pytree of arrays "
                f"(it leaves a compiled program); it holds a {type(leaf).__name__}: {leaf!r}"
            )
    return value, aux


def _check_grad_dtypes(
    states: Sequence[State], values: Sequence[Any], params: dict[str, Any]
) -> None:
    """Refuse, naming the State, grad_states JAX's own transforms cannot differentiate."""
    for s, v in zip(states, values, strict=True):
        for leaf in jax.tree.leaves(v):
            dtype = jnp.result_type(leaf)
            if params.get("holomorphic") and not jnp.issubdtype(dtype, jnp.complexfloating):
                raise TypeError(
                    f"holomorphic=True needs complex grad_states, but {s._describe()} holds {dtype}"
                )
            if not jnp.issubdtype(dtype, jnp.inexact) and not params.get("allow_int"):
                raise TypeError(
                    f"grad_states holds {s._describe()} of dtype {dtype}; differentiating it "
                    "needs an inexact (floating or complex) dtype: pass allow_int=True (grad, "
                    "jacrev; its gradient is then float0) or leave it out of grad_states"
                )


def _jax_style_builtin(transform: Any) -> bool:
    """JAX's transforms and this package's own, whose dtype rules are known."""
    known = (
        jax.grad,
        jax.jacrev,
        jax.jacfwd,
        jax.hessian,
        engine.vector_grad_transform,
        engine.fwd_grad_transform,
    )
    return any(transform is t for t in known)


def _lower_autodiff(
    transform: Callable[..., Any],
    params: dict[str, Any],
    states: Sequence[State],
    treedef: Any,
    argnums: Argnums | None,
    has_aux: bool,
    return_value: bool,
    name: str,
    check_in_program: bool,
) -> Callable[[Pure], Callable[..., Any]]:
    """``lower(pure)`` for an autodiff transform.

    The grad_states' values are found among the state values by identity (``pure.values_of``),
    and differentiated as the tree ``treedef`` rebuilds. Closes over no State (weak references
    only) and no user function: nothing a transform keeps may keep a model alive.
    """
    refs = tuple(weakref.ref(s) for s in states)
    draws_key = isinstance(params.get("key"), DrawKey)
    checks_dtypes = _jax_style_builtin(transform)

    def lower(pure: Pure) -> Callable[..., Any]:
        def program(values: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
            grad_states = alive(refs)
            grad_values = pure.values_of(values, grad_states)
            if checks_dtypes:
                _check_grad_dtypes(grad_states, grad_values, params)
            options = params
            if draws_key:
                key, values = _draw_key(pure, values)
                options = {**params, "key": key}

            def with_states(grad_tree: Any, *a: Any, **kw: Any) -> Any:
                new = treedef.flatten_up_to(grad_tree)
                out, written = pure(pure.replaced(values, grad_states, new), *a, **kw)
                value, aux = _split_aux(out, has_aux, name)
                return value, (aux, written)

            def without_states(*a: Any, **kw: Any) -> Any:
                out, written = pure(values, *a, **kw)
                value, aux = _split_aux(out, has_aux, name)
                return value, (aux, written)

            leading = treedef is not None
            g = engine.build(
                with_states if leading else without_states,
                transform,
                argnums,
                has_aux=True,
                # The value is computed only when asked for: as an extra output of an eager
                # program it costs an N-long reduction per call and much compile time.
                return_value=return_value,
                transform_params=options,
                leading=leading,
            )
            with _while_loop_hint(name):
                if leading:
                    out = g(treedef.unflatten(grad_values), *args, **kwargs)
                else:
                    out = g(*args, **kwargs)
            if return_value:
                grads, value, (aux, written) = out
            else:
                (grads, (aux, written)), value = out, None
            if check_in_program:
                # Partitioned: the check runs on every device, so every process raises, not only
                # the one a single callback would run in.
                jax.debug.callback(
                    functools.partial(_report_non_finite, name),
                    _all_finite(grads),
                    partitioned=True,
                )
            return engine.pack(grads, value, aux, has_aux, return_value), written

        return program

    return lower


class GradientTransform(Transformed):
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
        debug_nan: raise when a gradient is NaN or Inf: eagerly a RuntimeError naming the
            operation that produced it; inside ``jit`` or another transform, an error raised
            when the compiled program runs.

    Raises:
        TypeError: ``target`` or ``transform`` not callable, a flag not a bool, a grad_state
            that is not a State.
        ValueError: ``argnums`` negative, not ints, empty or repeated (an
            ``engine.ArgnumsError``, also a TypeError); a State listed twice.

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
    ):
        engine.check_callable(target, "target")
        engine.check_callable(transform, "transform")
        for flag_name, flag in [
            ("return_value", return_value),
            ("has_aux", has_aux),
            ("check_states", check_states),
            ("debug_nan", debug_nan),
        ]:
            engine.check_bool(flag, flag_name)
        if transform_params is not None and not isinstance(transform_params, dict):
            raise TypeError(
                f"transform_params must be a dict, got {type(transform_params).__name__}"
            )
        states, treedef = flatten_grad_states(grad_states)
        if argnums is None and not states:
            argnums = 0
        if argnums is not None:
            check_facade_argnums(argnums)
        params = dict(transform_params or {})
        engine.check_transform_params(transform, params)
        self.target = self._fn = target
        self.transform = transform
        self.grad_states = grad_states
        self.argnums = argnums
        self.has_aux = has_aux
        self.return_value = return_value
        self.check_states = check_states
        self.debug_nan = debug_nan
        self.transform_params = params
        self._states = states
        name = _name(target)

        # fwd_grad's default key is drawn inside the program from the random state, which is
        # then always an input and always written.
        own = (_random_state(),) if isinstance(params.get("key"), DrawKey) else ()

        def make(check_in_program: bool) -> Lowering:
            lower = _lower_autodiff(
                transform,
                params,
                states,
                treedef,
                argnums,
                has_aux,
                return_value,
                name,
                check_in_program,
            )
            check = _check_reads(name, states) if check_states else None
            return Lowering(
                lower,
                (*states, *own),
                own_writes=own,
                check=check,
                hint=hint("grad", target),
                fast=not debug_nan,  # a call checks its gradients for NaN
            )

        self._lowering = make(False)
        # A program traced inside another trace checks its gradients when it runs.
        self._checking_lowering = make(True) if debug_nan else None
        functools.update_wrapper(self, target, updated=())

    def __repr__(self) -> str:
        options = [
            f"target={_name(self.target)}",
            f"transform={_name(self.transform)}",
            f"grad_states={_describe_grad_states(self.grad_states)}",
            f"argnums={self.argnums!r}",
            f"has_aux={self.has_aux}",
            f"return_value={self.return_value}",
        ]
        if self.transform_params:
            options.append(f"transform_params={self.transform_params!r}")
        if not self.check_states:
            options.append("check_states=False")
        if self.debug_nan:
            options.append("debug_nan=True")
        return f"GradientTransform({', '.join(options)})"

    def _check_args(self, args: tuple[Any, ...]) -> None:
        argnums: Any = self.argnums
        positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        for i in positions:
            if i >= len(args) or type(args[i]) in PLAIN_TYPES:
                continue
            if any(isinstance(x, State) for x in jax.tree.leaves(args[i])):
                raise TypeError(
                    f"argnums={self.argnums!r} points at argument {i}, which holds a State; a "
                    "State is differentiated through grad_states, not passed as an argument "
                    "(pass its value instead)"
                )

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.argnums is not None:
            self._check_args(args)
        if not self.debug_nan:
            return self._lowering(self.target, args, kwargs)
        if active_frames():
            return self._checking_lowering(self.target, args, kwargs)  # type: ignore[misc]
        try:
            return self._lowering(self.target, args, kwargs, self._check_finite)
        except _NonFinite:
            raise self._diagnose_nan(args, kwargs) from None

    def _check_finite(self, result: Any) -> None:
        grads = result[0] if self.has_aux or self.return_value else result
        leaves = jax.tree.leaves(grads)
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            return  # inside a raw JAX trace: nothing concrete to check
        if not all(
            bool(jnp.all(jnp.isfinite(x))) for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)
        ):
            raise _NonFinite

    def _diagnose_nan(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RuntimeError:
        """Re-run with JAX's NaN/Inf checks on, which name the primitive that produced it."""
        name = _name(self.target)
        if jax.process_count() > 1:
            # JAX's checks look at each process's own shards: the process without the NaN would
            # wait forever for the others. Every process saw the (all-reduced) non-finite result.
            return RuntimeError(
                f"debug_nan: the gradients of {name!r} hold NaN or Inf (the operation that made "
                "it is not looked for when several processes run the program)"
            )
        try:
            with jax.debug_nans(True), jax.debug_infs(True):
                self._lowering(self.target, args, kwargs, self._check_finite)
        except FloatingPointError as err:
            return RuntimeError(f"debug_nan: the gradients of {name!r} hold NaN or Inf: {err}")
        except _NonFinite:
            pass
        return RuntimeError(
            f"debug_nan: the gradients of {name!r} hold NaN or Inf, already present in the "
            "inputs or states (no operation produced it)"
        )


def _describe_grad_states(grad_states: Any) -> str:
    if grad_states is None:
        return "None"
    if isinstance(grad_states, State):
        return grad_states._describe()
    if isinstance(grad_states, Mapping):
        return "{" + ", ".join(f"{k!r}: {type(v).__name__}" for k, v in grad_states.items()) + "}"
    return "[" + ", ".join(type(s).__name__ for s in grad_states) + "]"


def _decorator_or(fun: Any, make: Callable[[Callable[..., Any]], Any]) -> Any:
    """Support both ``grad(f, ...)`` and ``@grad(...)``."""
    return make if fun is None else make(fun)


def _unit_aware_transform(unit_aware: bool, name: str) -> Callable[..., Any] | None:
    """brainunit's JAX-style transform ``name`` when ``unit_aware``; it plugs into the engine.

    Its gradients carry units (output unit / input unit); without brainunit this raises.
    """
    engine.check_bool(unit_aware, "unit_aware")
    if not unit_aware:
        return None
    try:
        import brainunit
    except ImportError:
        raise ImportError(
            "unit_aware=True needs the optional 'brainunit' package: pip install 'stategrad[units]'"
        ) from None
    return getattr(brainunit.autograd, name)  # type: ignore[no-any-return]


def _named(
    transform: Callable[..., Any],
    unit_name: str,
    fun: Any,
    fun_name: str,
    grad_states: GradStates,
    argnums: Argnums | None,
    has_aux: bool | None,
    return_value: bool,
    check_states: bool,
    debug_nan: bool,
    unit_aware: bool,
    params: dict[str, Any],
) -> Any:
    unit_transform = _unit_aware_transform(unit_aware, unit_name)
    has_aux = bool(has_aux) if has_aux is None else has_aux

    def make(f: Callable[..., Any]) -> GradientTransform:
        engine.check_callable(f, fun_name)
        return GradientTransform(
            f,
            transform if unit_transform is None else unit_transform,
            grad_states=grad_states,
            argnums=argnums,
            return_value=return_value,
            has_aux=has_aux,
            transform_params=params,
            check_states=check_states,
            debug_nan=debug_nan,
        )

    return _decorator_or(fun, make)


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
    engine.check_bool(holomorphic, "holomorphic")
    engine.check_bool(allow_int, "allow_int")
    return _named(
        jax.grad,
        "grad",
        fun,
        "fun",
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
        engine.vector_grad_transform,
        "vector_grad",
        func,
        "func",
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
    engine.check_bool(holomorphic, "holomorphic")
    engine.check_bool(allow_int, "allow_int")
    return _named(
        jax.jacrev,
        "jacrev",
        fun,
        "fun",
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
    engine.check_bool(holomorphic, "holomorphic")
    return _named(
        jax.jacfwd,
        "jacfwd",
        func,
        "func",
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
    return_value: bool = False,
    holomorphic: bool = False,
    has_aux: bool | None = None,
    unit_aware: bool = False,
    check_states: bool = True,
    debug_nan: bool = False,
) -> Any:
    """Hessian of a scalar stateful function.

    The positional order is brainstate's: ``return_value`` before ``holomorphic`` and
    ``has_aux``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.transform.hessian(lambda x: jnp.dot(x, x))(jnp.array([1.0, 2.0]))
        Array([[2., 0.],
               [0., 2.]], dtype=float32)
    """
    engine.check_bool(holomorphic, "holomorphic")
    return _named(
        jax.hessian,
        "hessian",
        func,
        "func",
        grad_states,
        argnums,
        has_aux,
        return_value,
        check_states,
        debug_nan,
        unit_aware,
        {"holomorphic": holomorphic},
    )


def _random_state() -> State:
    from .. import random

    return random.DEFAULT


def fwd_grad(
    func: Callable[..., Any] | None = None,
    grad_states: GradStates = None,
    argnums: Argnums | None = None,
    return_value: bool = False,
    has_aux: bool | None = None,
    tangent_size: int | None = None,
    drct_der_clip: float | None = None,
    key: Any = None,
    check_states: bool = True,
    debug_nan: bool = False,
) -> Any:
    """Forward-gradient estimate of a scalar stateful function (random directions).

    The positional order is brainstate's: ``return_value`` before ``has_aux``. ``key=None``
    draws fresh directions from ``facade.random`` at every call; the draw is threaded through
    the compiled program like any other state. An int seed or a size-1 integer array is
    accepted as ``key``.

    Raises:
        TypeError: an argument of an integer dtype (the directions need an inexact one).
        ValueError: a non-scalar output, a ``tangent_size`` below 1 or a non-positive
            ``drct_der_clip``.
    """
    engine.check_fwd_grad_options(tangent_size, drct_der_clip)
    return _named(
        engine.fwd_grad_transform,
        "fwd_grad",
        func,
        "func",
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
            "key": DRAW_KEY if key is None else key,
        },
    )


# --- vjp / jvp: one-shot calls, traced on every call ---------------------------------------


def _apply_pullback(pullback: Any, cotangent: Any) -> Any:
    """Run the pullback as a transform called anew: its static part (its linear jaxpr) is a new
    object on every trace of ``vjp``, so it is traced into the program (and the executable
    found by that program), never passed to ``jax.jit`` as a static value; its residuals are
    arguments."""
    residuals, structure = jax.tree.flatten(pullback)

    def apply(residuals: Any, cotangent: Any) -> Any:
        return jax.tree.unflatten(structure, residuals)(cotangent)

    return call("vjp_pullback", apply, (residuals, cotangent))


def _lower_vjp(
    states: Sequence[State],
    treedef: Any,
    argnums: Argnums | None,
    has_aux: bool,
    name: str,
    structure: list[Any],
) -> Callable[[Pure], Callable[..., Any]]:
    """``lower`` of ``vjp``: the program returns the pullback's residuals; the pullback's
    structure (its linear jaxpr, a new object on every trace) is put in ``structure`` instead
    of being an output, so that no output tree structure of a compiled program holds a jaxpr
    (JAX keeps such structures in caches of thousands of entries)."""
    refs = tuple(weakref.ref(s) for s in states)

    def lower(pure: Pure) -> Callable[..., Any]:
        def program(values: Sequence[Any], *args: Any) -> Any:
            grad_states = alive(refs)

            def with_states(grad_tree: Any, *a: Any) -> Any:
                new = treedef.flatten_up_to(grad_tree)
                out, written = pure(pure.replaced(values, grad_states, new), *a)
                value, aux = _split_aux(out, has_aux, name)
                return value, (aux, written)

            def without_states(*a: Any) -> Any:
                out, written = pure(values, *a)
                value, aux = _split_aux(out, has_aux, name)
                return value, (aux, written)

            with _while_loop_hint(name):
                if treedef is not None:
                    out, pullback, (aux, written) = F.vjp(
                        with_states,
                        treedef.unflatten(pure.values_of(values, grad_states)),
                        *args,
                        argnums=argnums,
                        has_aux=True,
                        leading=True,
                    )
                else:
                    out, pullback, (aux, written) = F.vjp(
                        without_states, *args, argnums=argnums, has_aux=True
                    )
            residuals, structure[:] = jax.tree.flatten(pullback), []
            structure.append(residuals[1])
            return (out, residuals[0], aux), written

        return program

    return lower


def vjp(
    fun: Callable[..., Any],
    *primals: Any,
    grad_states: GradStates = None,
    argnums: Argnums | None = 0,
    has_aux: bool = False,
) -> tuple[Any, ...]:
    """State-aware vector-Jacobian product: ``(out, vjp_fn)`` or ``(out, vjp_fn, aux)``.

    ``vjp_fn(v)`` returns ``arg_cts``, ``(state_cts, arg_cts)`` or ``state_cts`` (see the
    spec's vjp page); states written by ``fun`` keep their new values. A Python scalar is a
    valid cotangent for a scalar output of any dtype.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> w = facade.State(jnp.array([2.0, 3.0]))
        >>> out, vjp_fn = facade.transform.vjp(lambda x: jnp.sum(w.value * x), jnp.ones(2),
        ...                                    grad_states=w)
        >>> vjp_fn(1.0)
        (Array([1., 1.], dtype=float32), Array([2., 3.], dtype=float32))
    """
    engine.check_callable(fun)
    engine.check_bool(has_aux, "has_aux")
    states, treedef = flatten_grad_states(grad_states)
    if not primals:
        argnums = None
    if argnums is not None:
        # brainstate's vjp, unlike its other transforms, counts negative argnums from the end.
        engine.check_argnums(argnums)
        resolved = engine.resolve_argnums(argnums, len(primals))
        argnums = resolved[0] if isinstance(argnums, int) else resolved
    if argnums is None and not states:
        raise ValueError(
            "vjp has nothing to differentiate: pass primals with argnums, or grad_states"
        )
    name = _name(fun)
    structure: list[Any] = []
    site = Lowering(
        _lower_vjp(states, treedef, argnums, has_aux, name, structure),
        states,
        check=_check_reads(name, states),
        hint=hint("vjp", fun),
    )
    out, residuals, aux = site(fun, primals, {})
    pullback = jax.tree.unflatten(structure[0], residuals)

    def vjp_fn(cotangent: Any) -> Any:
        # A Python scalar takes the output's dtype here: inside the jitted pullback it would be
        # a weakly typed int32 or float32 array, refused for another output dtype.
        if isinstance(cotangent, int | float | complex) and not isinstance(cotangent, bool):
            if isinstance(out, jax.Array):
                cotangent = jnp.asarray(cotangent, out.dtype)
        with _while_loop_hint(name):
            return _apply_pullback(pullback, cotangent)

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _lower_jvp(
    states: Sequence[State], has_aux: bool, name: str
) -> Callable[[Pure], Callable[..., Any]]:
    """``lower`` of ``jvp``: the program takes the tangents as its own inputs (the States' and
    the primals'), before the primals it passes on to the function."""
    refs = tuple(weakref.ref(s) for s in states)

    def lower(pure: Pure) -> Callable[..., Any]:
        def program(values: Sequence[Any], tangents: Any, *primals: Any) -> Any:
            grad_states = alive(refs)
            state_tangents, primal_tangents = tangents

            def f(grad_values: Any, *p: Any) -> Any:
                out, written = pure(pure.replaced(values, grad_states, grad_values), *p)
                value, aux = _split_aux(out, has_aux, name)
                return value, (aux, written)

            out, tangent_out, (aux, written) = F.jvp(
                f,
                (pure.values_of(values, grad_states), *primals),
                (list(state_tangents), *primal_tangents),
                has_aux=True,
            )
            return (out, tangent_out, aux), written

        return program

    return lower


def _flatten_like(grad_states: Any, treedef: Any, state_tangents: Any) -> list[Any]:
    """``state_tangents`` as one tangent per grad_state, in the grad_states' order.

    A plain dict with the same keys as a grad_states mapping (e.g. a ``FlatDict``) is accepted.
    """
    try:
        if isinstance(treedef, RepeatedStates):  # a State listed twice: its tangents add up
            return treedef.sum_up_to(state_tangents)
        return treedef.flatten_up_to(state_tangents)  # type: ignore[no-any-return]
    except (ValueError, TypeError):
        if isinstance(grad_states, Mapping) and isinstance(state_tangents, Mapping):
            if set(grad_states) == set(state_tangents):
                return [t for k in grad_states for t in jax.tree.leaves(state_tangents[k])]
        raise TypeError(
            "state_tangents must have the structure of grad_states "
            f"{treedef}, got {jax.tree.structure(state_tangents)}"
        ) from None


def jvp(
    fun: Callable[..., Any],
    primals: Sequence[Any],
    tangents: Sequence[Any],
    has_aux: bool = False,
    *,
    grad_states: GradStates = None,
    state_tangents: Any = None,
) -> tuple[Any, ...]:
    """State-aware Jacobian-vector product: ``(out, tangent_out)`` or ``(..., aux)``.

    ``state_tangents`` (the structure of ``grad_states``, or a plain dict with the same keys)
    perturbs states as ``tangents`` perturbs ``primals``; states written by ``fun`` keep their
    new values.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> w = facade.State(jnp.array(2.0))
        >>> facade.transform.jvp(lambda x: w.value * x, (3.0,), (1.0,), grad_states=w,
        ...                      state_tangents=jnp.array(1.0))
        (Array(6., dtype=float32, weak_type=True), Array(5., dtype=float32, weak_type=True))
    """
    engine.check_callable(fun)
    engine.check_bool(has_aux, "has_aux")
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
    tangents = [
        engine.check_tangent(p, t, f"tangents[{i}]")
        for i, (p, t) in enumerate(zip(primals, tangents, strict=True))
    ]
    state_tangent_list: list[Any] = []
    if states:
        state_tangent_list = [
            engine.check_tangent(peek(s), t, f"state_tangents for {s._describe()}")
            for s, t in zip(
                states, _flatten_like(grad_states, treedef, state_tangents), strict=True
            )
        ]
    name = _name(fun)
    site = Lowering(
        _lower_jvp(states, has_aux, name),
        states,
        check=_check_reads(name, states),
        hint=hint("jvp", fun),
    )
    out, tangent_out, aux = site(
        fun, tuple(primals), {}, inputs=(state_tangent_list, list(tangents))
    )
    return (out, tangent_out, aux) if has_aux else (out, tangent_out)
