"""Subprocess worker for test_sharding: runs on 8 simulated CPU devices, prints a JSON report.

Started with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (JAX reads it once, at
start-up, so the pytest process cannot do this itself). Every check is run independently and
reported as ``{"ok": bool, "detail": str}``; the test module turns each into one test.
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
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import facade  # noqa: E402
import functional as F  # noqa: E402
from facade import transform as T  # noqa: E402

CHECKS: dict[str, Callable[[], None]] = {}


def check(fn: Callable[[], None]) -> Callable[[], None]:
    CHECKS[fn.__name__] = fn
    return fn


# --- the problem: a 2-layer MLP, parameters sharded over "model", the batch over "data" --------

assert len(jax.devices()) == 8, jax.devices()
MESH = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))
SPECS = {"w1": P(None, "model"), "b1": P("model"), "w2": P("model", None), "b2": P()}
LR = 0.1

rng = np.random.RandomState(0)
PARAMS_NP = {
    "w1": rng.normal(size=(16, 32)).astype(np.float32) / 4,
    "b1": rng.normal(size=(32,)).astype(np.float32) / 10,
    "w2": rng.normal(size=(32, 4)).astype(np.float32) / 6,
    "b2": np.zeros(4, np.float32),
}
X_NP = rng.normal(size=(64, 16)).astype(np.float32)
Y_NP = rng.normal(size=(64, 4)).astype(np.float32)


def sharding(spec: P) -> NamedSharding:
    return NamedSharding(MESH, spec)


def sharded_params() -> dict[str, jax.Array]:
    return {k: jax.device_put(v, sharding(SPECS[k])) for k, v in PARAMS_NP.items()}


def sharded_batch() -> tuple[jax.Array, jax.Array]:
    return (
        jax.device_put(X_NP, sharding(P("data", None))),
        jax.device_put(Y_NP, sharding(P("data", None))),
    )


def hidden(p: dict[str, Any], x: Any) -> Any:
    return jnp.tanh(x @ p["w1"] + p["b1"])


def loss(p: dict[str, Any], x: Any, y: Any) -> Any:
    return jnp.mean((hidden(p, x) @ p["w2"] + p["b2"] - y) ** 2)


# Single-device reference, computed on device 0 only.
DEV0 = SingleDeviceSharding(jax.devices()[0])
_p0 = {k: jax.device_put(v, DEV0) for k, v in PARAMS_NP.items()}
_x0, _y0 = jax.device_put(X_NP, DEV0), jax.device_put(Y_NP, DEV0)
REF_GRADS = jax.tree.map(np.asarray, jax.grad(loss)(_p0, _x0, _y0))
REF_LOSS = float(loss(_p0, _x0, _y0))
REF_HIDDEN = np.asarray(hidden(_p0, _x0))
REF_STEP = {k: PARAMS_NP[k] - LR * REF_GRADS[k] for k in PARAMS_NP}


def assert_close(got: Any, want: Any, what: str) -> None:
    np.testing.assert_allclose(
        np.asarray(got), np.asarray(want), rtol=2e-5, atol=2e-6, err_msg=what
    )


def assert_sharded_like(x: jax.Array, spec: P, what: str) -> None:
    want = sharding(spec)
    assert isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer), what
    assert x.sharding.is_equivalent_to(want, x.ndim), (
        f"{what}: sharding {x.sharding} is not equivalent to {want}"
    )


def check_grads(grads: dict[str, jax.Array], what: str) -> None:
    for k in PARAMS_NP:
        assert_close(grads[k], REF_GRADS[k], f"{what}[{k}]")
        assert_sharded_like(grads[k], SPECS[k], f"{what}[{k}]")


@check
def setup_is_really_sharded() -> None:
    """Guards the other checks: the arrays really are split over the 2 x 4 mesh."""
    p = sharded_params()
    assert p["w1"].addressable_shards[0].data.shape == (16, 8)
    assert p["w2"].addressable_shards[0].data.shape == (8, 4)
    assert p["b2"].sharding.is_fully_replicated
    x, _ = sharded_batch()
    assert x.addressable_shards[0].data.shape == (32, 16)
    assert len({d for s in x.addressable_shards for d in [s.device]}) == 8
    # And a single-device array is not "equivalent" to a sharded one.
    try:
        assert_sharded_like(_p0["w1"], SPECS["w1"], "single-device w1")
    except AssertionError:
        return
    raise AssertionError("assert_sharded_like accepted a single-device array")


# --- functional ----------------------------------------------------------------------------------


@check
def functional_grad_eager() -> None:
    x, y = sharded_batch()
    check_grads(F.grad(loss)(sharded_params(), x, y), "functional.grad")


@check
def functional_grad_jit() -> None:
    x, y = sharded_batch()
    grads, value = jax.jit(F.grad(loss, return_value=True))(sharded_params(), x, y)
    check_grads(grads, "jit(functional.grad)")
    assert_close(value, REF_LOSS, "loss")


@check
def functional_vjp_and_jacrev() -> None:
    x, y = sharded_batch()
    params = sharded_params()
    out, vjp_fn = F.vjp(loss, params, x, y)
    check_grads(vjp_fn(jnp.ones_like(out)), "functional.vjp")
    jac = F.jacrev(lambda p: hidden(p, x)[:2, :3])(params)
    want = jax.jacrev(lambda p: hidden(p, _x0)[:2, :3])(_p0)
    for k in PARAMS_NP:
        assert_close(jac[k], want[k], f"functional.jacrev[{k}]")


@check
def functional_train_step_keeps_sharding() -> None:
    x, y = sharded_batch()

    @jax.jit
    def step(p: Any, x: Any, y: Any) -> Any:
        g = F.grad(loss)(p, x, y)
        return jax.tree.map(lambda a, b: a - LR * b, p, g)

    new = step(sharded_params(), x, y)
    for k in PARAMS_NP:
        assert_close(new[k], REF_STEP[k], f"step[{k}]")
        assert_sharded_like(new[k], SPECS[k], f"step[{k}]")


# --- facade --------------------------------------------------------------------------------------


class MLP:
    def __init__(self) -> None:
        self.params = {k: facade.ParamState(v, name=k) for k, v in sharded_params().items()}
        # A per-example state written by every call: sharded like the batch.
        self.h = facade.HiddenState(
            jax.device_put(np.zeros((64, 32), np.float32), sharding(P("data", "model"))),
            name="h",
        )
        self.calls = facade.State(jnp.array(0, jnp.int32), name="calls")

    def loss(self, x: Any, y: Any) -> Any:
        p = {k: s.value for k, s in self.params.items()}
        self.h.value = hidden(p, x)
        self.calls.value = self.calls.value + 1
        return jnp.mean((self.h.value @ p["w2"] + p["b2"] - y) ** 2)

    def check_states(self, what: str, params: dict[str, np.ndarray], calls: int) -> None:
        for k, s in self.params.items():
            assert_close(s.value, params[k], f"{what}: {k}")
            assert_sharded_like(s.value, SPECS[k], f"{what}: State {k}")
        assert_close(self.h.value, REF_HIDDEN, f"{what}: h")
        assert_sharded_like(self.h.value, P("data", "model"), f"{what}: State h")
        assert int(self.calls.value) == calls


@check
def facade_grad() -> None:
    model = MLP()
    x, y = sharded_batch()
    grads, value = T.grad(model.loss, grad_states=model.params, return_value=True)(x, y)
    check_grads(grads, "facade.grad")
    assert_close(value, REF_LOSS, "loss")
    model.check_states("after facade.grad", PARAMS_NP, 1)


@check
def facade_grad_with_argnums() -> None:
    model = MLP()
    x, y = sharded_batch()
    (grads, gx) = T.grad(model.loss, grad_states=model.params, argnums=0)(x, y)
    check_grads(grads, "facade.grad")
    want = jax.grad(loss, argnums=1)(_p0, _x0, _y0)
    assert_close(gx, want, "d loss / d x")
    assert_sharded_like(gx, P("data", None), "d loss / d x")


@check
def facade_vjp() -> None:
    model = MLP()
    x, y = sharded_batch()
    out, vjp_fn = T.vjp(model.loss, x, y, grad_states=model.params, argnums=None)
    check_grads(vjp_fn(jnp.ones_like(out)), "facade.vjp")
    model.check_states("after facade.vjp", PARAMS_NP, 1)


@check
def facade_jit_train_step() -> None:
    model = MLP()
    x, y = sharded_batch()
    grad_fn = T.grad(model.loss, grad_states=model.params)

    @T.jit
    def step(x: Any, y: Any) -> None:
        grads = grad_fn(x, y)
        for k, s in model.params.items():
            s.value = s.value - LR * grads[k]

    step(x, y)
    model.check_states("after facade.jit step", REF_STEP, 1)
    step(x, y)  # the cached program, again
    for k, s in model.params.items():
        assert_sharded_like(s.value, SPECS[k], f"second step: State {k}")
    assert int(model.calls.value) == 2


@check
def facade_eager_update_keeps_sharding() -> None:
    model = MLP()
    x, y = sharded_batch()
    grads = T.grad(model.loss, grad_states=model.params)(x, y)
    for k, s in model.params.items():
        s.value = s.value - LR * grads[k]
    model.check_states("after eager update", REF_STEP, 1)


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
