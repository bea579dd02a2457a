"""Run every ``examples/*.py`` with ``--quick`` in a subprocess, as CI does.

``VARIANTS`` adds runs with more options (``data_parallel.py --processes 2``: two processes
joined by ``jax.distributed``). The selected runs are started at once (at most one per CPU) when
the first test asks for its result, so the file takes about as long as the slowest examples
rather than their sum. Each runs in a
temporary working directory, where the demo writes its plot.

An example whose top-level imports are not installed (matplotlib and tqdm come with the
``examples`` extra) is skipped with the reason, not failed.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT = 300  # seconds, per example; they take a few seconds each on an idle machine

# Runs with more options than ``--quick``, each a test of its own: "<script> <options>".
VARIANTS = {"data_parallel.py --processes 2": ["--processes", "2"]}
RUNS = [p.name for p in EXAMPLES] + list(VARIANTS)

# What each example must print (beyond exiting with status 0).
EXPECTED = {
    "demo.py": ["vs raw JAX", "same losses", "Loss curves saved to"],
    "mlp_optax.py": ["same numbers from both styles"],
    "equinox_functional.py": ["loss "],
    "jaxtyping_pipeline.py": ["caught a shape error through F.grad", "parameter"],
    "recurrent_states.py": ["hidden state after the last step: (32, 16)"],
    "hessian_jacobians.py": ["Hessian-vector products match the full Hessian"],
    "data_parallel.py": ["data-parallel training matches one device"],
    "per_example_gradients.py": [
        "per-example gradients match jax.vmap(jax.grad)",
        "training accuracy after 40 DP-SGD steps",
    ],
    "batched_simulations.py": [
        "the vmapped for_loop matches the explicit jax.vmap(jax.lax.scan)",
        "Figure saved to",
    ],
    "snn_bptt.py": [
        "BPTT gradient through for_loop matches jax.grad of lax.scan",
        "Figure saved to",
    ],
    "digits_classifier.py": ["held-out accuracy:", "Learning curves saved to"],
    "gru_digits.py": [
        "BPTT gradient through for_loop matches the unrolled loop",
        "held-out accuracy:",
        "Learning curves saved to",
    ],
}


def _missing_imports(script: Path) -> list[str]:
    """Top-level modules imported by ``script`` that are not installed."""
    names = set()
    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    siblings = {p.stem for p in EXAMPLES}  # examples may share code with each other
    return sorted(n for n in names - siblings if importlib.util.find_spec(n) is None)


def _run(script: Path, cwd: Path, options: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, str(script), "--quick", *options],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, Future]]:
    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    started = {}
    # Only the runs whose tests were selected (``-k data_parallel`` starts two, not all).
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if item.path == Path(__file__) and hasattr(item, "callspec")
    }
    for run in [r for r in RUNS if r in selected]:
        script = ROOT / "examples" / run.split()[0]
        if _missing_imports(script):
            continue
        cwd = tmp_path_factory.mktemp(script.stem)
        started[run] = (cwd, pool.submit(_run, script, cwd, VARIANTS.get(run, [])))
    yield started
    pool.shutdown(wait=True)


def test_every_example_is_expected() -> None:
    names = {p.name for p in EXAMPLES}
    assert set(EXPECTED) <= names, f"missing examples: {set(EXPECTED) - names}"


@pytest.mark.parametrize("name", RUNS)
def test_example_runs_quickly(name: str, runs: dict[str, tuple[Path, Future]]) -> None:
    missing = _missing_imports(ROOT / "examples" / name.split()[0])
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)}: pip install -e '.[examples]'")
    cwd, future = runs[name]
    result = future.result()
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{name} failed:\n{output[-4000:]}"
    for text in EXPECTED.get(name.split()[0], []):
        assert text in result.stdout, f"{name} did not print {text!r}:\n{result.stdout[-2000:]}"
    if name == "demo.py":
        png = cwd / "stategrad_demo.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(png) in result.stdout
