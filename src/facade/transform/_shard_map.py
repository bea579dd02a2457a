"""State-aware ``shard_map``: a stateful function run on every shard of a device mesh (SPMD).

The bridge's ``discover`` probes the function abstractly under ``jax.shard_map`` to find the
States it touches (its value provider hands each State a placeholder of its per-shard shape).
Then the bridge's ``pure`` goes through one ``jax.shard_map``: each State enters with its spec
(replicated by default), each written State leaves with its out spec, and the new values are
written back, so they keep the sharding their spec gives them on the mesh.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._core import sites
from .._core.bridge import Discovery, Pure, Signature, discover, read_values, write_values
from .._state import State

REPLICATED = P()


def _state_specs(specs: Any, name: str) -> Any:
    """``state_in_specs``/``state_out_specs``: None, one spec for every State, or
    ``{state: spec}``."""
    if specs is None or isinstance(specs, P):
        return specs
    if isinstance(specs, dict):
        for s, spec in specs.items():
            if not isinstance(s, State):
                raise TypeError(f"shard_map: the keys of {name} must be States, got {s!r}")
            if not isinstance(spec, P):
                raise TypeError(
                    f"shard_map: {name}[{s._describe()}] must be a PartitionSpec, got {spec!r}"
                )
        return dict(specs)
    raise TypeError(
        f"shard_map: {name} must be None, a PartitionSpec or a dict from States to "
        f"PartitionSpecs, got {type(specs).__name__}: {specs!r}"
    )


class _ShardSpec:
    """The function, the mesh and the specs of a :func:`shard_map`."""

    def __init__(
        self,
        fun: Callable[..., Any],
        mesh: Mesh,
        in_specs: Any,
        out_specs: Any,
        state_in_specs: Any,
        state_out_specs: Any,
        check_vma: bool,
    ):
        if not callable(fun):
            raise TypeError(f"shard_map: fun must be callable, got {type(fun).__name__}")
        if not isinstance(mesh, Mesh):
            raise TypeError(f"shard_map: mesh must be a jax.sharding.Mesh, got {mesh!r}")
        if not isinstance(check_vma, bool):
            raise TypeError(f"shard_map: check_vma must be a bool, got {check_vma!r}")
        self.fun, self.mesh, self.out_specs, self.check_vma = fun, mesh, out_specs, check_vma
        self.in_specs = tuple(in_specs) if isinstance(in_specs, list) else in_specs
        self.state_in = _state_specs(state_in_specs, "state_in_specs")
        self.state_out = _state_specs(state_out_specs, "state_out_specs")

    def in_spec(self, s: State) -> P:
        if isinstance(self.state_in, P):
            return self.state_in
        if isinstance(self.state_in, dict):
            return self.state_in.get(s, REPLICATED)
        return REPLICATED

    def out_spec(self, s: State) -> P:
        """A written State's spec: its out spec if given, else the spec it came in with."""
        if isinstance(self.state_out, P):
            return self.state_out
        if isinstance(self.state_out, dict) and s in self.state_out:
            return self.state_out[s]
        return self.in_spec(s)

    def arg_specs(self, n: int) -> tuple[Any, ...]:
        if not isinstance(self.in_specs, tuple) or isinstance(self.in_specs, P):
            return (self.in_specs,) * n
        if len(self.in_specs) != n:
            raise ValueError(
                f"shard_map: in_specs has {len(self.in_specs)} entries but fun was called with "
                f"{n} positional arguments; give one spec per argument, or one spec for all"
            )
        return self.in_specs

    def shard_shape(self, s: State, shape: tuple[int, ...], spec: P) -> tuple[int, ...]:
        """The per-shard shape of a leaf of ``s``, checked to split evenly."""
        if len(spec) > len(shape):
            raise ValueError(
                f"shard_map: {s._describe()} has shape {shape}, which has fewer axes than its "
                f"spec {spec}"
            )
        out = list(shape)
        for i, names in enumerate(spec):
            if names is None:
                continue
            count = int(np.prod([self.mesh.shape[a] for a in _names(names)]))
            if shape[i] % count:
                raise ValueError(
                    f"shard_map: {s._describe()} has shape {shape}; its axis {i} of size "
                    f"{shape[i]} does not split into {count} shards (spec {spec})"
                )
            out[i] = shape[i] // count
        return tuple(out)


def _names(names: Any) -> tuple[Any, ...]:
    return tuple(names) if isinstance(names, tuple | list) else (names,)


def _axes_of(spec: P) -> tuple[Any, ...]:
    return tuple(a for names in spec if names is not None for a in _names(names))


def _probe(
    spec: _ShardSpec, arg_specs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Discovery:
    """The States the call touches, found by the bridge's probe run under ``jax.shard_map``."""

    # Every State gets a placeholder of its per-shard shape (a State is never closed over: a
    # value sharded on a mesh with explicit axes cannot be).
    def per_shard(s: State, value: Any) -> Any:
        state_spec = spec.in_spec(s)
        axes = _axes_of(state_spec)

        def placeholder(leaf: Any) -> Any:
            shape = spec.shard_shape(s, tuple(np.shape(leaf)), state_spec)
            z = jnp.zeros(shape, jnp.result_type(leaf))
            return jax.lax.pcast(z, axes, to="varying") if spec.check_vma and axes else z

        return jax.tree.map(placeholder, value)

    def under(probe: Callable[..., Any]) -> Callable[..., Any]:
        specs = (arg_specs, REPLICATED)
        mapped = jax.shard_map(
            lambda a, kw: (probe(a, kw), ())[1],
            mesh=spec.mesh,
            in_specs=specs,
            out_specs=(),
            check_vma=spec.check_vma,
        )
        return lambda *inputs: mapped(*_placed(spec.mesh, specs, inputs))

    d, _ = discover(spec.fun, args, kwargs, values=per_shard, under=under)
    return d


def _placed(mesh: Mesh, specs: Any, tree: Any) -> Any:
    """``tree`` put on ``mesh`` with ``specs`` (a prefix tree of it): what shard_map needs of its
    inputs on a mesh with explicit axes."""

    def put(spec: Any, sub: Any) -> Any:
        sharding = NamedSharding(mesh, spec)
        return jax.tree.map(lambda x: jax.device_put(x, sharding), sub)

    return jax.tree.map(put, specs, tree)


def _shard_map_traced(spec: _ShardSpec, *args: Any, **kwargs: Any) -> Any:
    sig = Signature(args, kwargs)
    args_dyn, kw_dyn = sig.split(args, kwargs)
    arg_specs = spec.arg_specs(len(args_dyn))
    d = _probe(spec, arg_specs, args, kwargs)
    state_specs = [spec.in_spec(s) for s in d.states]
    written_specs = [spec.out_spec(s) for s in d.writes]
    pure = Pure(spec.fun, d, sig)

    def body(values: list[Any], a: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        return pure(values, *a, **kw)

    in_specs = (state_specs, arg_specs, REPLICATED)
    inputs = _placed(spec.mesh, in_specs, (read_values(d), args_dyn, kw_dyn))
    out, written = jax.shard_map(
        body,
        mesh=spec.mesh,
        in_specs=in_specs,
        out_specs=(spec.out_specs, written_specs),
        check_vma=spec.check_vma,
    )(*inputs)
    pure.check_traces("shard_map")
    write_values(d.writes, written)
    return out


class ShardMapped(sites.HeldTransform):
    """A function under :func:`shard_map`; callable like it."""

    def __init__(self, spec: _ShardSpec):
        self.spec = spec
        super().__init__(spec.fun, functools.partial(_shard_map_traced, spec), "shard_map")


def shard_map(
    fun: Callable[..., Any],
    mesh: Mesh,
    in_specs: Any,
    out_specs: Any,
    *,
    state_in_specs: P | dict[State, P] | None = None,
    state_out_specs: P | dict[State, P] | None = None,
    check_vma: bool = True,
) -> ShardMapped:
    """Run a stateful ``fun`` on every shard of a device mesh (``jax.shard_map``), with States.

    Positional arguments are split per ``in_specs``; keyword arguments are replicated. The
    States ``fun`` touches are replicated unless ``state_in_specs`` gives them a spec; a
    written State leaves with its ``state_out_specs`` spec, or else the spec it came in with,
    and after the call holds a value sharded that way on ``mesh``. A replicated State written
    with a value that differs between shards is an error of ``jax.shard_map`` (reduce it with
    ``jax.lax.psum`` first). A random state is replicated too: every shard draws the same
    numbers unless ``fun`` folds in ``jax.lax.axis_index``. Called eagerly, one compiled
    program per call signature; inputs are placed on the mesh inside it.

    Args:
        fun: the per-shard function; it may read and write States.
        mesh: the device mesh.
        in_specs: a PartitionSpec for every positional argument, or a tuple of one per
            argument (each a prefix tree of its argument).
        out_specs: the PartitionSpec(s) of the output.
        state_in_specs: one PartitionSpec for every State, or ``{state: spec}``; the others
            are replicated.
        state_out_specs: the same, for the written States.
        check_vma: as ``jax.shard_map``.

    Returns:
        The mapped function.

    Raises:
        TypeError: ``fun`` not callable, ``mesh`` not a Mesh, a malformed spec.
        ValueError: ``in_specs`` with the wrong number of entries, a State whose shape does
            not split evenly over its spec's mesh axes.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> from jax.sharding import PartitionSpec as P
        >>> mesh = jax.make_mesh((jax.device_count(),), ("x",))
        >>> total = facade.State(jnp.zeros(()))
        >>> def fun(data):
        ...     total.value = total.value + jax.lax.psum(data.sum(), "x")
        ...     return data * 2
        >>> f = facade.transform.shard_map(fun, mesh, in_specs=P("x"), out_specs=P("x"))
        >>> f(jnp.arange(4.0 * jax.device_count()))[:4]
        Array([0., 2., 4., 6.], dtype=float32)
        >>> float(total.value) == sum(range(4 * jax.device_count()))
        True
    """
    return ShardMapped(
        _ShardSpec(fun, mesh, in_specs, out_specs, state_in_specs, state_out_specs, check_vma)
    )


__all__ = ["shard_map"]
