"""``Map``: a module whose states are initialised ``init_map_size`` times over and whose calls are
vectorized over them (brainstate's ``nn.Map`` with ``behavior='vmap'``)."""

from __future__ import annotations

import typing
from collections.abc import Callable

from .. import graph, transform
from ._module import Module
from ._vmap_init import vmap_init_all_states

__all__ = ["Map"]


def _states(module: Module, *filters: typing.Any) -> graph.FlatDict:
    """``graph.states`` with at most one filter: one FlatDict."""
    return typing.cast(graph.FlatDict, graph.states(module, *filters))


def _only_axis_zero(axes: dict | None, what: str) -> typing.Any:
    """The filter of axis 0 in ``{axis: filter}`` (other axes are not supported yet)."""
    if axes is None:
        return None
    other = sorted(set(axes) - {0})
    if other:
        raise NotImplementedError(f"Map: {what} on axes {other}: only axis 0 is supported")
    return axes.get(0)


class Map(Module):
    """Vectorize a module over ``init_map_size`` independently initialised copies of its states.

    Call :meth:`init_all_states` first: it runs the module's ``init_state`` hooks
    ``init_map_size`` times (``nn.vmap_init_all_states``), so every State they create gets a
    leading axis of that size; :meth:`update` then calls the module under ``transform.vmap``
    with those States mapped on axis 0, the module's other States shared.

    Args:
        module: the module to map.
        init_map_size: the number of copies.
        init_state_axes: ``{axis: filter}`` for the created States; only axis 0 is supported,
            and as in brainstate the States no filter names go to axis 0 too.
        state_tag: stored as ``metadata['tag']`` of every State created.
        in_axes: the inputs' mapped axes.
        out_axes: the outputs' mapped axes.
        axis_name: the mapped axis' name, for collectives.
        spmd_axis_name: passed to ``transform.vmap``.
        call_state_axes: ``{0: filter}``: more of the module's States to map at every call.
        behavior: ``'vmap'``; ``'pmap'`` (brainstate's ``pmap2``) is not provided yet.

    Raises:
        ValueError: ``behavior`` is neither ``'vmap'`` nor ``'pmap'``, or :meth:`update` is
            called before :meth:`init_all_states`.
        NotImplementedError: ``behavior='pmap'``, or a state axis other than 0.
        AssertionError: ``init_map_size`` is not an int.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> class Dot(facade.nn.Module):
        ...     def init_state(self, size):
        ...         self.weight = facade.ParamState(facade.random.randn(*size))
        ...     def update(self, x):
        ...         return x @ self.weight.value
        >>> dot = Dot()
        >>> mapped = facade.nn.Map(dot, init_map_size=10)
        >>> mapped.init_all_states(size=(5,))
        >>> dot.weight.value.shape, mapped(jnp.ones((10, 5))).shape
        ((10, 5), (10,))
    """

    # The cached vmap transforms hold the module: not a path to its states.
    graph_invisible_attrs = ("_calls",)

    def __init__(
        self,
        module: Module,
        init_map_size: typing.Any,  # an int, asserted below (brainstate raises AssertionError)
        init_state_axes: dict | None = None,
        state_tag: str | None = None,
        in_axes: typing.Any = 0,
        out_axes: typing.Any = 0,
        axis_name: typing.Any = None,
        spmd_axis_name: typing.Any = None,
        call_state_axes: dict | None = None,
        behavior: str = "vmap",
    ):
        super().__init__()
        assert isinstance(init_map_size, int), "init_map_size must be an integer."
        if behavior not in ("vmap", "pmap"):
            raise ValueError(f"Map: behavior must be 'vmap' or 'pmap', got {behavior!r}")
        if behavior == "pmap":
            raise NotImplementedError("Map(behavior='pmap') needs transform.pmap2, not provided")
        if not isinstance(module, Module):
            raise TypeError(f"Map: module must be a Module, got {type(module).__name__}")
        self.module = module
        self.init_map_size = init_map_size
        self.init_filter = _only_axis_zero(init_state_axes, "init_state_axes")
        self.call_filter = _only_axis_zero(call_state_axes, "call_state_axes")
        self.state_tag = state_tag
        self.in_axes, self.out_axes = in_axes, out_axes
        self.axis_name, self.spmd_axis_name = axis_name, spmd_axis_name
        self.behavior = behavior
        #: ``{0: [the mapped States]}`` after :meth:`init_all_states`, else None.
        self.dict_vmap_states: dict[int, list] | None = None
        self._calls: dict = {}

    def init_all_states(self, **kwargs: typing.Any) -> None:  # type: ignore[override]
        """Run the module's ``init_state`` hooks ``init_map_size`` times, stacked on axis 0."""
        before = {id(s) for s in _states(self.module).values()}
        vmap_init_all_states(
            self.module, axis_size=self.init_map_size, state_tag=self.state_tag, **kwargs
        )
        mapped = [s for s in _states(self.module).values() if id(s) not in before]
        if self.call_filter is not None:
            extra = _states(self.module, self.call_filter).values()
            mapped += [s for s in extra if all(s is not m for m in mapped)]
        self.dict_vmap_states = {0: mapped}
        self._calls = {}

    def _mapped(self, fn: Callable, in_axes: typing.Any, out_axes: typing.Any, name: typing.Any):
        if self.dict_vmap_states is None:
            raise ValueError(
                "Map.update called before init_all_states. Please call init_all_states first."
            )
        key = (fn, repr(in_axes), repr(out_axes), name)
        if key not in self._calls:  # one transform per method: its compiled programs are kept
            states = {0: list(self.dict_vmap_states[0])}
            self._calls[key] = transform.vmap(
                fn,
                in_axes=in_axes,
                out_axes=out_axes,
                axis_name=name,
                spmd_axis_name=self.spmd_axis_name,
                in_states=states,
                out_states=states,
            )
        return self._calls[key]

    def update(self, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        """The module's call, vectorized over the inputs and the mapped States."""
        call = self._mapped(self.module, self.in_axes, self.out_axes, self.axis_name)
        return call(*args, **kwargs)

    def map(
        self,
        fn: str | Callable,
        in_axes: typing.Any = 0,
        out_axes: typing.Any = 0,
        axis_name: str | None = None,
        state_axes: dict | None = None,
    ) -> Callable:
        """A method of the module (by name) or a function, vectorized like :meth:`update`.

        Raises:
            NotImplementedError: ``state_axes`` is given (brainstate's per-call state axes).
        """
        if state_axes is not None:
            raise NotImplementedError("Map.map(state_axes=...) is not supported yet")
        target = getattr(self.module, fn) if isinstance(fn, str) else fn
        return self._mapped(target, in_axes, out_axes, axis_name)
