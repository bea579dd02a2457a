"""Subprocess worker for test_shard_map: ``facade.transform.shard_map`` on 8 simulated CPU devices.

Started with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (see ``_workers.py``). Each
check compares the facade's stateful ``shard_map`` with the explicit ``jax.shard_map`` program
over the States' values, and checks the written States' shardings; each is reported as
``{"ok": bool, "detail": str}`` and becomes one test in ``test_shard_map.py``.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from typing import Any

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import facade  # noqa: E402
from facade import transform as T  # noqa: E402

CHECKS: dict[str, Callable[[], None]] = {}


def check(fn: Callable[[], None]) -> Callable[[], None]:
    CHECKS[fn.__name__] = fn
    return fn


assert len(jax.devices()) == 8, jax.devices()
MESH = jax.make_mesh((8,), ("x",))
MESH2 = jax.make_mesh((2, 4), ("data", "model"))
rng = np.random.RandomState(0)
DATA = rng.normal(size=(32, 4)).astype(np.float32)
W_NP = rng.normal(size=(4, 8)).astype(np.float32)


def assert_close(got: Any, want: Any, what: str) -> None:
    np.testing.assert_allclose(
        np.asarray(got), np.asarray(want), rtol=2e-5, atol=2e-6, err_msg=what
    )


def assert_sharding(x: Any, mesh: Any, spec: P, what: str) -> None:
    assert isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer), what
    want = NamedSharding(mesh, spec)
    assert x.sharding.is_equivalent_to(want, x.ndim), f"{what}: {x.sharding} is not {want}"


@check
def replicated_states_read_and_reduced_write() -> None:
    w = facade.ParamState(jnp.asarray(W_NP), name="w")
    seen = facade.State(jnp.zeros(()), name="seen")

    def fun(x):
        seen.value = seen.value + jax.lax.psum(x.shape[0], "x")
        return jnp.tanh(x @ w.value)

    f = T.shard_map(fun, MESH, in_specs=P("x"), out_specs=P("x"))
    out = f(DATA)
    raw = jax.shard_map(
        lambda w, x: jnp.tanh(x @ w), mesh=MESH, in_specs=(P(), P("x")), out_specs=P("x")
    )(
        jax.device_put(W_NP, NamedSharding(MESH, P())),
        jax.device_put(DATA, NamedSharding(MESH, P("x"))),
    )
    assert_close(out, raw, "output")
    assert_sharding(out, MESH, P("x"), "output")
    assert float(seen.value) == 32.0
    assert_sharding(seen.value, MESH, P(), "replicated written state")
    assert_close(w.value, W_NP, "read-only state unchanged")


@check
def per_shard_buffer_keeps_its_sharding_and_compiles_once() -> None:
    buf = facade.State(jnp.zeros((32, 4)), name="buf")
    traces = []

    def accumulate(x):
        traces.append(1)
        buf.value = buf.value + x
        return x.sum(axis=1)

    f = T.shard_map(
        accumulate, MESH, in_specs=(P("x"),), out_specs=P("x"), state_in_specs={buf: P("x")}
    )
    f(DATA)
    f(DATA)  # traced again: buf's value is now sharded (part of its type on an explicit mesh)
    first = len(traces)
    f(DATA)
    assert len(traces) == first, (first, len(traces))
    assert_close(buf.value, 3 * DATA, "buffer after three calls")
    assert_sharding(buf.value, MESH, P("x"), "buffer")
    assert buf.value.addressable_shards[0].data.shape == (4, 4)


@check
def two_axis_mesh_model_parallel_state() -> None:
    # The weight's columns are split over "model", the batch over "data".
    w = facade.ParamState(jnp.asarray(W_NP), name="w")
    acts = facade.State(jnp.zeros((32, 8)), name="acts")
    spec_w, spec_a = P(None, "model"), P("data", "model")

    def fun(x):
        acts.value = jnp.tanh(x @ w.value)
        return jax.lax.psum(acts.value.sum(), ("data", "model"))

    f = T.shard_map(
        fun,
        MESH2,
        in_specs=P("data"),
        out_specs=P(),
        state_in_specs={w: spec_w, acts: spec_a},
    )
    total = f(DATA)
    want = np.tanh(DATA @ W_NP)
    assert_close(acts.value, want, "activations")
    assert_sharding(acts.value, MESH2, spec_a, "activations")
    assert_close(total, want.sum(), "total")


@check
def gradient_through_shard_map_under_jit() -> None:
    w = facade.ParamState(jnp.asarray(W_NP), name="w")

    def loss(x):
        f = T.shard_map(
            lambda x: jax.lax.pmean(jnp.mean(jnp.tanh(x @ w.value) ** 2), "x"),
            MESH,
            in_specs=P("x"),
            out_specs=P(),
        )
        return f(x)

    grads = T.jit(T.grad(loss, grad_states=w))(DATA)
    raw = jax.grad(lambda w: jnp.mean(jnp.tanh(DATA @ w) ** 2))(jnp.asarray(W_NP))
    assert_close(grads, raw, "gradient")


@check
def vmap_with_a_batched_state_inside_shard_map() -> None:
    h = facade.HiddenState(jnp.zeros((32, 8)), name="h")
    w = facade.ParamState(jnp.asarray(W_NP), name="w")

    def step(x):
        h.value = jnp.tanh(x @ w.value + h.value)
        return h.value.sum()

    per_shard = T.vmap(step, in_states=h, out_states=h)
    f = T.shard_map(per_shard, MESH, in_specs=P("x"), out_specs=P("x"), state_in_specs={h: P("x")})
    out = f(DATA)
    want_h = np.tanh(DATA @ W_NP)
    assert_close(h.value, want_h, "hidden state")
    assert_close(out, want_h.sum(axis=1), "output")
    assert_sharding(h.value, MESH, P("x"), "hidden state")


@check
def a_state_that_does_not_split_is_named_and_kept() -> None:
    odd = facade.State(jnp.ones(10), name="odd")

    def fun(x):
        odd.value = odd.value * 2
        return x

    f = T.shard_map(fun, MESH, in_specs=P("x"), out_specs=P("x"), state_in_specs={odd: P("x")})
    try:
        f(DATA)
    except ValueError as e:
        assert "State 'odd'" in str(e) and "8 shards" in str(e), str(e)
    else:
        raise AssertionError("no error for a State of 10 elements over 8 shards")
    assert_close(odd.value, np.ones(10), "state kept")
    assert not isinstance(odd._value, jax.core.Tracer)


def main() -> dict[str, Any]:
    report = {}
    for name, fn in CHECKS.items():
        try:
            fn()
            report[name] = {"ok": True, "detail": ""}
        except Exception:
            report[name] = {"ok": False, "detail": traceback.format_exc()[-3000:]}
    return report


if __name__ == "__main__":
    print("REPORT " + json.dumps(main()))
