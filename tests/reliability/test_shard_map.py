"""``facade.transform.shard_map`` on 8 simulated CPU devices (a subprocess, as for test_sharding).

``_shard_map_worker.py`` runs with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``,
started by ``conftest.py`` at collection so it overlaps the other tests. There, each check
compares the stateful ``shard_map`` with the explicit ``jax.shard_map`` (or single-device)
program over the States' values: replicated and sharded States, a 2 x 4 mesh, a gradient under
``jit``, a ``vmap`` with a batched State inside, a State that cannot be split. Written States
must keep the sharding their spec gives them. Each check is one test here.
"""

from __future__ import annotations

from typing import Any

import pytest

from . import _workers

CHECKS = [
    "replicated_states_read_and_reduced_write",
    "per_shard_buffer_keeps_its_sharding_and_compiles_once",
    "two_axis_mesh_model_parallel_state",
    "gradient_through_shard_map_under_jit",
    "vmap_with_a_batched_state_inside_shard_map",
    "a_state_that_does_not_split_is_named_and_kept",
]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return _workers.report("shard_map")


def test_every_check_ran(report: dict[str, Any]) -> None:
    assert sorted(report) == sorted(CHECKS)


@pytest.mark.parametrize("name", CHECKS)
def test_shard_map(report: dict[str, Any], name: str) -> None:
    result = report[name]
    assert result["ok"], result["detail"]
