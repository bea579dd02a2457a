"""Sharded arrays on 8 simulated CPU devices: both layers work with no special code.

JAX reads ``XLA_FLAGS`` once, when it starts, and it has already started in the pytest process,
so the checks run in a subprocess (``_sharding_worker.py``, started by ``conftest.py`` at
collection to overlap the other tests) with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``. There: parameters of a 2-layer MLP are
sharded over a 2 x 4 ``("data", "model")`` mesh with ``NamedSharding``, the batch over
``"data"``. Gradients (functional eager and jitted, functional vjp/jacrev, facade grad/vjp) must
equal the single-device result and keep the parameters' sharding, and States must keep their
sharding after write-back (facade grad, eager updates, a facade-jitted train step). Each check
is one test here.
"""

from __future__ import annotations

from typing import Any

import pytest

from . import _workers

CHECKS = [
    "setup_is_really_sharded",
    "functional_grad_eager",
    "functional_grad_jit",
    "functional_vjp_and_jacrev",
    "functional_train_step_keeps_sharding",
    "facade_grad",
    "facade_grad_with_argnums",
    "facade_vjp",
    "facade_jit_train_step",
    "facade_eager_update_keeps_sharding",
]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return _workers.report("sharding")


def test_every_check_ran(report: dict[str, Any]) -> None:
    assert sorted(report) == sorted(CHECKS)


@pytest.mark.parametrize("name", CHECKS)
def test_sharded(report: dict[str, Any], name: str) -> None:
    result = report[name]
    assert result["ok"], result["detail"]
