"""Two processes on 127.0.0.1, one 4-device mesh: both layers train data-parallel across them.

``_multiprocess_worker.py launch`` (started by ``conftest.py`` at collection, to overlap the
other tests) starts two processes with 2 simulated CPU devices each; they join with
``jax.distributed.initialize`` and run the same checks on a ``("data", "model")`` mesh over the
4 devices, the batch assembled with ``jax.make_array_from_process_local_data``. The launcher
kills and reaps both processes if one fails and at a deadline, so this file cannot hang the
suite. Here each check becomes a test against the other process and against raw JAX on one
device in this process (:func:`_multiprocess_worker.reference`).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pytest

import facade

from . import _multiprocess_worker as W
from . import _workers

TRAINED = ["facade_replicated", "facade_split", "functional_replicated", "functional_split"]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return _workers.report("multiprocess")


@pytest.fixture(scope="module")
def seeded_init() -> dict[str, Any]:
    """The model's initial values in this process (one device, no jax.distributed) after
    ``facade.random.seed(SEED)``; the default stream's key is restored afterwards."""
    key = facade.random.get_key()
    try:
        facade.random.seed(W.SEED)
        return jax.tree.map(np.asarray, W.model_params(W.build_model(facade)))
    finally:
        facade.random.set_key(key)


@pytest.fixture(scope="module")
def references(seeded_init: dict[str, Any]) -> dict[bool, Any]:
    """Raw JAX on one device: ``{momentum: (final params, losses)}``."""
    return {m: W.reference(seeded_init, momentum=m) for m in (True, False)}


def each(report: dict[str, Any], name: str) -> list[Any]:
    """The check's value in each process (failing with the traceback if it raised)."""
    values = []
    for i, proc in enumerate(report["processes"]):
        result = proc[name]
        assert result["ok"], f"process {i}: {result['detail']}"
        values.append(result["value"])
    return values


def assert_tree_close(got: Any, want: dict[str, Any], what: str) -> None:
    """``got`` (nested lists from a report) equals ``want`` ({"l0": {"weight": ...}, ...})."""
    for layer, params in want.items():
        for k, w in params.items():
            np.testing.assert_allclose(
                np.asarray(got[layer][k], np.float32),
                np.asarray(w, np.float32),
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"{what}{layer}.{k}",
            )


def test_every_check_ran(report: dict[str, Any]) -> None:
    for proc in report["processes"]:
        assert list(proc) == list(W.CHECKS)


def test_one_mesh_over_two_processes(report: dict[str, Any]) -> None:
    first, second = each(report, "setup")
    for i, info in enumerate((first, second)):
        assert info["process_index"] == i and info["process_count"] == 2
        assert info["devices"] == 4 and info["local_devices"] == 2
        assert not info["batch_fully_addressable"]
    # Each process holds its own rows of the global batch.
    assert first["local_rows"] == [0, 0] and second["local_rows"] == [8, 8]


def test_seed_gives_every_process_the_same_parameters(
    report: dict[str, Any], seeded_init: dict[str, Any]
) -> None:
    first, second = each(report, "random_stream")
    # Unseeded, facade.random starts from OS entropy: each process draws other parameters.
    assert not np.allclose(first["unseeded"]["l0"]["weight"], second["unseeded"]["l0"]["weight"])
    # facade.random.seed(s) before building the model: the same parameters everywhere, and the
    # same as one process without jax.distributed draws.
    assert first["seeded"] == second["seeded"]
    assert_tree_close(first["seeded"], seeded_init, "seeded ")


@pytest.mark.parametrize("name", TRAINED)
def test_training_matches_one_device(
    report: dict[str, Any], seeded_init: dict[str, Any], references: dict[bool, Any], name: str
) -> None:
    """STEPS optax SGD-with-momentum steps; the layouts were checked after every step in the
    workers (every State, the momentum included, kept its global sharding)."""
    first, second = each(report, name)
    assert first["init"] == second["init"]
    assert_tree_close(first["init"], seeded_init, "init ")
    # One SPMD program: both processes hold bit-identical results.
    assert first["final"] == second["final"] and first["losses"] == second["losses"]
    want, losses = references[True]
    assert_tree_close(first["final"], want, f"{name} final ")
    np.testing.assert_allclose(first["losses"], losses, rtol=1e-5)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", ["eager_grad", "eager_for_loop_progress_bar"])
def test_eager_calls_on_arrays_no_process_holds_whole(
    report: dict[str, Any], references: dict[bool, Any], name: str
) -> None:
    """An eager ``transform.grad`` and an eager ``for_loop`` each run as one compiled SPMD
    program over the global arrays: plain SGD steps, equal to raw JAX's."""
    first, second = each(report, name)
    assert first["final"] == second["final"]
    want, _ = references[False]
    assert_tree_close(first["final"], want, f"{name} final ")


def test_progress_bar_draws_in_the_first_process(report: dict[str, Any]) -> None:
    """The bar's host callback is a ``jax.debug.callback``, which JAX runs on one device, the
    first one: process 0 draws the one complete bar, the other process draws nothing (and
    neither waits for the other: the training result is checked above)."""
    first, second = each(report, "eager_for_loop_progress_bar")
    assert first["updates"] == list(range(W.STEPS))
    assert f"{W.STEPS}/{W.STEPS}" in first["bar"][-1]
    assert second["updates"] == [] and second["bar"] == []


def test_reading_values_that_span_processes(report: dict[str, Any]) -> None:
    for value in each(report, "reading_values"):
        # Replicated, or split only over devices of this process: readable on the host.
        assert value["replicated_asarray"] == {"ok": True, "value": [0.0, 0.0]}
        assert value["split_asarray"]["ok"] and not value["split_fully_addressable"]
        # Split over "data" (each process holds half): JAX refuses, naming the cause ...
        assert not value["batch_asarray"]["ok"]
        assert "non-addressable" in value["batch_asarray"]["error"], value["batch_asarray"]
        # ... while a State's repr (shape and dtype only) and the Module's still work, and
        # process_allgather brings the whole value to every host.
        assert value["batch_repr"] == {
            "ok": True,
            "value": "State(value=float32[16, 6], name='batch')",
        }
        assert value["split_repr"]["ok"] and value["module_repr"]["ok"]
        assert value["batch_allgather_shape"] == [16, 6]
        assert value["loss_float"]["ok"]


def test_debug_nan_with_finite_gradients(report: dict[str, Any]) -> None:
    for value in each(report, "debug_nan_finite"):
        assert value["eager"]["ok"] and value["jit"]["ok"]


def test_debug_nan_raises_in_the_process_that_holds_the_nan(report: dict[str, Any]) -> None:
    """The process whose rows hold the NaN raises the clear eager error; no State changed."""
    last = report["processes"][-1]["debug_nan_eager"]
    assert last["ok"], last["detail"]
    assert "debug_nan: the gradients of 'loss' hold NaN or Inf" in last["value"]["call"]["error"]
    assert last["value"]["states_finite"]


def test_debug_nan_eager_raises_in_every_process(report: dict[str, Any]) -> None:
    """Every process raises (none waits in a collective for a diagnostic re-run)."""
    for i, proc in enumerate(report["processes"]):
        result = proc["debug_nan_eager"]
        assert result["ok"] and not result["value"]["call"]["ok"], f"process {i}: {result}"


def test_debug_nan_under_jit_raises_in_every_process(report: dict[str, Any]) -> None:
    """The in-program check is a partitioned callback of one replicated flag: it runs, and
    raises, in every process."""
    for i, value in enumerate(each(report, "debug_nan_jit")):
        assert not value["call"]["ok"], f"process {i} returned NaN gradients without error"


# --- the order of initialisation ------------------------------------------------------------


def test_import_facade_then_initialize(report: dict[str, Any]) -> None:
    """``import facade`` starts no JAX backend, so jax.distributed.initialize() may follow it.
    The other order (initialize, then import facade) is what the workers do."""
    probe = report["import_first"]
    assert probe["returncode"] == 0, probe["stderr"]
