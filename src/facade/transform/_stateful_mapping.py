"""``StatefulMapping`` and the filter-based mapping family: ``vmap2``, ``pmap2``, and
``vmap2_new_states`` / ``pmap2_new_states`` (a module's States created per batch element).

All of them are the engine of ``_mapping`` with States chosen by filters (``state_in_axes`` /
``state_out_axes``) and a policy for batched writes nothing declares; ``pmap2`` maps with
``jax.pmap`` instead of ``jax.vmap``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax

from .._state import State
from ._mapping import Spec, filter_axes, vmap_call
from ._vmap import Mapped

_POLICIES = ("auto", "raise", "warn", "ignore")


def _as_tuple(x: Any) -> tuple[Any, ...]:
    if x is None:
        return ()
    if isinstance(x, int | str):
        return (x,)
    return tuple(x)


def _check_policy(policy: str, where: str) -> None:
    if policy not in _POLICIES:
        raise ValueError(
            f"{where}: unexpected_out_state_mapping must be one of {_POLICIES}, got {policy!r}"
        )


class StatefulMapping(Mapped):
    """A stateful function mapped over an axis (``jax.vmap`` by default): what :func:`vmap2`
    and :func:`pmap2` return, and a transform of its own.

    States are chosen by filters: ``state_in_axes`` (batched on entry) and ``state_out_axes``
    (written back with a batch axis) map axes to filters (a State subclass, a predicate
    ``(path, state) -> bool``, ``...``, a State or list of States; a bare filter means axis
    0). A State written with a batched value that no filter covers follows
    ``unexpected_out_state_mapping``:

    * ``'auto'`` (default): written back with the axis its value is batched on. A State the
      function reads and then writes (``w.value = w.value + x``) is fed per element when its
      value already has the batch size on that axis (so ``w = zeros(3)`` over 3 elements ends
      as ``[x0, x1, x2]``), and otherwise gains the batch axis, with a warning (once per State);
    * ``'warn'``: written back with a batch axis, with a warning; ``'ignore'``: the same,
      silently; ``'raise'``: :class:`BatchAxisError`.

    Random states give every element its own key (see :func:`vmap`). ``static_argnums`` and
    ``static_argnames`` are closed over, neither traced nor mapped (their ``in_axes`` entry is
    ignored); other keyword arguments are mapped over axis 0, as ``jax.vmap`` maps them.
    Called eagerly, one compiled program per call signature (static values included).

    Args:
        fun: the function; it may read and write States and draw random numbers.
        in_axes, out_axes: as ``jax.vmap``.
        state_in_axes, state_out_axes: ``{axis: filter}`` or one filter (axis 0).
        unexpected_out_state_mapping: ``'auto'``, ``'raise'``, ``'warn'`` or ``'ignore'``.
        static_argnums, static_argnames: arguments closed over as constants.
        axis_env, return_only_write: accepted and stored, unused (as in brainstate).
        axis_size: the size of the mapped axis (needed when nothing is mapped).
        axis_name: a name for the mapped axis, for collectives.
        name: a name for messages (``vmap2`` and ``pmap2`` give theirs).
        mapping_fn: the mapping primitive, called as ``mapping_fn(f, in_axes=, out_axes=,
            axis_name=, axis_size=, **mapping_kwargs)``: ``jax.vmap`` or ``jax.pmap``.
        mapping_kwargs: more keyword arguments of ``mapping_fn``.
        spmd_axis_name: as ``jax.vmap`` (keyword only; brainstate's ``vmap2`` binds it into
            ``mapping_fn``).

    Raises:
        ValueError: an unknown policy, a static argnum out of range, or as :func:`vmap`.
        BatchAxisError, TypeError: as :func:`vmap`.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> w = facade.ShortTermState(jnp.zeros(3))
        >>> def f(x):
        ...     w.value = w.value + x
        ...     return w.value
        >>> facade.transform.StatefulMapping(f)(jnp.asarray([1.0, 2.0, 3.0]))
        Array([1., 2., 3.], dtype=float32)
        >>> w.value
        Array([1., 2., 3.], dtype=float32)
    """

    def __init__(
        self,
        fun: Callable[..., Any],
        in_axes: int | Sequence[Any] | None = 0,
        out_axes: Any = 0,
        state_in_axes: Any = None,
        state_out_axes: Any = None,
        unexpected_out_state_mapping: str = "auto",
        static_argnums: int | Iterable[int] | None = (),
        static_argnames: str | Iterable[str] | None = (),
        axis_env: Any = None,
        return_only_write: bool = True,
        axis_size: int | None = None,
        axis_name: Any = None,
        name: str | None = None,
        mapping_fn: Callable[..., Any] = jax.vmap,
        mapping_kwargs: dict[str, Any] | None = None,
        *,
        spmd_axis_name: Any = None,
    ):
        where = name or "StatefulMapping"
        _check_policy(unexpected_out_state_mapping, where)
        in_filters = filter_axes(state_in_axes, "state_in_axes", where)
        out_filters = filter_axes(state_out_axes, "state_out_axes", where)
        self.origin_fun, self.name = fun, name
        self.in_axes, self.out_axes = in_axes, out_axes
        self.state_in_axes, self.state_out_axes = dict(in_filters), dict(out_filters)
        self.unexpected_out_state_mapping = unexpected_out_state_mapping
        self.static_argnums = _as_tuple(static_argnums)
        self.static_argnames = _as_tuple(static_argnames)
        self.axis_env, self.return_only_write = axis_env, return_only_write
        self.axis_size, self.axis_name = axis_size, axis_name
        self.mapping_fn = mapping_fn
        self.mapping_kwargs = dict(mapping_kwargs or {})
        spec = Spec(
            fun,
            where,
            in_axes,
            out_axes,
            axis_name,
            axis_size,
            spmd_axis_name,
            {},
            {},
            in_filters,
            out_filters,
            unexpected_out_state_mapping,
            # jax.vmap itself runs with spmd_axis_name through the engine's own call.
            mapping_fn=None if mapping_fn is jax.vmap else mapping_fn,
            mapping_kwargs=self.mapping_kwargs,
            static_argnums=self.static_argnums,
            static_argnames=self.static_argnames,
        )
        super().__init__(spec)


def vmap2(
    fn: Callable[..., Any] | None = None,
    *,
    in_axes: int | None | Sequence[Any] = 0,
    out_axes: Any = 0,
    axis_name: Any = None,
    axis_size: int | None = None,
    spmd_axis_name: Any = None,
    state_in_axes: Any = None,
    state_out_axes: Any = None,
    unexpected_out_state_mapping: str = "auto",
) -> Any:
    """:func:`vmap` with States chosen by filters instead of by instance: a
    :class:`StatefulMapping` over ``jax.vmap`` (see it for the filters and the
    ``unexpected_out_state_mapping`` policies).

    Returns:
        The :class:`StatefulMapping` (or a decorator when ``fn`` is omitted).

    Raises:
        ValueError: ``unexpected_out_state_mapping`` unknown, or as :func:`vmap`.
        BatchAxisError, TypeError: as :func:`vmap`.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> counter = facade.ShortTermState(jnp.zeros(3))
        >>> @facade.transform.vmap2(state_in_axes={0: facade.ShortTermState},
        ...                         state_out_axes={0: facade.ShortTermState})
        ... def accumulate(x):
        ...     counter.value = counter.value + x
        ...     return counter.value
        >>> accumulate(jnp.asarray([1.0, 2.0, 3.0]))
        Array([1., 2., 3.], dtype=float32)
    """
    where = "vmap2"
    _check_policy(unexpected_out_state_mapping, where)
    filter_axes(state_in_axes, "state_in_axes", where)  # malformed filters fail at once
    filter_axes(state_out_axes, "state_out_axes", where)

    def make(f: Callable[..., Any]) -> StatefulMapping:
        return StatefulMapping(
            f,
            in_axes=in_axes,
            out_axes=out_axes,
            state_in_axes=state_in_axes,
            state_out_axes=state_out_axes,
            unexpected_out_state_mapping=unexpected_out_state_mapping,
            axis_size=axis_size,
            axis_name=axis_name,
            name=where,
            spmd_axis_name=spmd_axis_name,
        )

    return make if fn is None else make(fn)


def _specified(argnums: Any) -> bool:
    if isinstance(argnums, int):
        return True
    return argnums is not None and len(tuple(argnums)) > 0


def pmap2(
    fn: Callable[..., Any] | None = None,
    axis_name: Any = None,
    *,
    in_axes: Any = 0,
    out_axes: Any = 0,
    static_broadcasted_argnums: int | Iterable[int] = (),
    devices: Sequence[Any] | None = None,
    backend: str | None = None,
    axis_size: int | None = None,
    donate_argnums: int | Iterable[int] = (),
    global_arg_shapes: Any = None,
    state_in_axes: Any = None,
    state_out_axes: Any = None,
    unexpected_out_state_mapping: str = "auto",
) -> Any:
    """:func:`vmap2` over devices: a :class:`StatefulMapping` whose mapping primitive is
    ``jax.pmap``, one element per device.

    States, random states and the ``unexpected_out_state_mapping`` policies behave as in
    :func:`vmap2`. ``static_broadcasted_argnums`` and ``donate_argnums`` are refused
    (``NotImplementedError``, as in brainstate): the mapped function's positions are not the
    user's. ``global_arg_shapes`` is not passed on (this jax has no such option).

    Returns:
        The :class:`StatefulMapping` (or a decorator when ``fn`` is omitted).

    Raises:
        NotImplementedError: ``static_broadcasted_argnums`` or ``donate_argnums`` given.
        ValueError: more elements than devices, or as :func:`vmap2`.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> n = jax.local_device_count()
        >>> facade.transform.pmap2(lambda x: x * 2.0)(jnp.ones(n)).shape == (n,)
        True
    """
    where = "pmap2"
    if fn is None:
        return functools.partial(
            pmap2,
            axis_name=axis_name,
            in_axes=in_axes,
            out_axes=out_axes,
            static_broadcasted_argnums=static_broadcasted_argnums,
            devices=devices,
            backend=backend,
            axis_size=axis_size,
            donate_argnums=donate_argnums,
            global_arg_shapes=global_arg_shapes,
            state_in_axes=state_in_axes,
            state_out_axes=state_out_axes,
            unexpected_out_state_mapping=unexpected_out_state_mapping,
        )
    for name, value in (
        ("static_broadcasted_argnums", static_broadcasted_argnums),
        ("donate_argnums", donate_argnums),
    ):
        if _specified(value):
            raise NotImplementedError(
                f"{where}: {name} is not supported: the function jax.pmap maps takes the "
                "States' values and your arguments bundled, so positions would not address "
                "your arguments. Close over a static value (or use static_argnames of "
                "StatefulMapping), or call jax.pmap directly."
            )
    return StatefulMapping(
        fn,
        in_axes=in_axes,
        out_axes=out_axes,
        state_in_axes=state_in_axes,
        state_out_axes=state_out_axes,
        unexpected_out_state_mapping=unexpected_out_state_mapping,
        axis_size=axis_size,
        axis_name=axis_name,
        name=where,
        mapping_fn=functools.partial(jax.pmap, devices=devices, backend=backend),
    )


# --- a module's States created per element -----------------------------------------------------


def _map_new_states(
    where: str,
    module: Any,
    init_kwargs: dict[str, Any] | None,
    state_tag: str | None,
    axis_size: int,
    state_out_axes: Any,
    axis_name: Any,
    spmd_axis_name: Any,
    mapping_fn: Callable[..., Any] | None,
) -> dict[Any, list[State]]:
    kwargs = dict(init_kwargs or {})
    init = getattr(module, "init_all_states", None)
    if not callable(init):
        from ..nn import init_all_states

        init = functools.partial(init_all_states, module)

    def run() -> None:
        init(**kwargs)  # the module, returned by some, is no array: nothing to map out

    spec = Spec(
        run,
        where,
        (),
        None,
        axis_name,
        axis_size,
        spmd_axis_name,
        {},
        {},
        new_states=True,
        state_tag=state_tag,
        new_filters=filter_axes(state_out_axes, "state_out_axes", where),
        mapping_fn=mapping_fn,
    )
    created: list[State] = []
    vmap_call(spec, (), {}, created)
    groups = {a: [s for s in created if spec.new_axis(s) == a] for a in spec.new_axes_order}
    return {a: states for a, states in groups.items() if states}


def vmap2_new_states(
    module: Any,
    init_kwargs: dict[str, Any] | None,
    state_tag: str | None = None,
    axis_size: int | None = None,
    state_out_axes: Any = None,
    spmd_axis_name: Any = None,
) -> dict[Any, list[State]]:
    """Create a module's States once per batch element: ``module.init_all_states(
    **init_kwargs)`` under :func:`vmap2`, so each State it creates holds the stacked values
    of ``axis_size`` elements (random initialisations differ along the axis).

    ``init_all_states`` runs twice (an abstract probe, then the mapped pass), as in
    brainstate: it must be idempotent (see :func:`in_new_state_probe`).

    Args:
        module: the module (``facade.nn.init_all_states(module, ...)`` when it has no
            ``init_all_states`` method).
        init_kwargs: keyword arguments of ``init_all_states``.
        state_tag: stored as ``metadata['tag']`` of every State created.
        axis_size: the number of elements (required).
        state_out_axes: ``{axis: filter}`` for the created States (first match wins; axis
            None shares a State between elements); the others get axis 0.
        spmd_axis_name: as ``jax.vmap``.

    Returns:
        ``{axis: [States]}``: the States created, by the axis they were batched on.

    Raises:
        ValueError: ``axis_size`` missing or not positive.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> class Counter(facade.nn.Module):
        ...     def init_state(self):
        ...         self.count = facade.ShortTermState(jnp.zeros(()))
        >>> module = Counter()
        >>> groups = facade.transform.vmap2_new_states(module, init_kwargs={}, axis_size=5)
        >>> module.count.value.shape, list(groups)
        ((5,), [0])
    """
    where = "vmap2_new_states"
    if axis_size is None:
        raise ValueError(f"{where}: axis_size is required (the number of elements)")
    return _map_new_states(
        where, module, init_kwargs, state_tag, axis_size, state_out_axes, None, spmd_axis_name, None
    )


def pmap2_new_states(
    module: Any,
    init_kwargs: dict[str, Any] | None,
    state_tag: str | None = None,
    axis_size: int | None = None,
    state_out_axes: Any = None,
    axis_name: Any = None,
) -> dict[Any, list[State]]:
    """:func:`vmap2_new_states` over devices (``jax.pmap``): one element per device,
    ``axis_size`` defaulting to ``jax.local_device_count()``.

    Returns:
        ``{axis: [States]}``: the States created, by the axis they were mapped on.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> class Counter(facade.nn.Module):
        ...     def init_state(self):
        ...         self.count = facade.ShortTermState(jnp.zeros(()))
        >>> module = Counter()
        >>> _ = facade.transform.pmap2_new_states(module, init_kwargs={})
        >>> module.count.value.shape == (jax.local_device_count(),)
        True
    """
    where = "pmap2_new_states"
    if axis_size is None:
        axis_size = jax.local_device_count()
    return _map_new_states(
        where, module, init_kwargs, state_tag, axis_size, state_out_axes, axis_name, None, jax.pmap
    )


__all__ = ["StatefulMapping", "pmap2", "pmap2_new_states", "vmap2", "vmap2_new_states"]
