"""The benchmark script runs end to end (``--quick``) and prints its tables; every column of ours
was checked against raw JAX before it was timed (the script fails otherwise). Timings are not
asserted here (tests never assert timings; see docs/performance.md for the numbers)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import facade

ROOT = Path(__file__).resolve().parents[1]

ROWS = [
    "grad chain N=10",
    "grad MLP 8x64 b32",
    "vjp+pullback, 1 program",
    "vjp, then pullback",
    "jacrev 8x8",
    "hessian 8x8",
    "BPTT w32 T=100",
    "first call N=10",
    "first call BPTT w32 T=100",
    "anew: grad chain N=10",
    "anew: for_loop w32 T=100",
]
BATCH_ROWS = ["per-example grads b64 w32", "vmapped BPTT b16 w32 T=100"]
OURS = ("raw JAX", "functional jit", "facade eager", "facade jit", "facade anew")


def _table(out: str, title: str) -> list[str]:
    """The lines of the table that starts with ``title`` (header included)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 1 : end]


def _cells(header: str, row: str, columns: tuple[str, ...]) -> dict[str, str]:
    """The cells of ``row`` under ``columns`` (each right-aligned under its header)."""
    ends = sorted((header.index(c) + len(c), c) for c in columns if c in header)
    out, start = {}, header.index("raw JAX")
    for end, column in ends:
        out[column] = row[start:end].strip()
        start = end
    return out


def test_benchmarks_quick_run_prints_every_row_and_target() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    header, *rows = _table(out, "ratio to raw JAX")
    for column in OURS:
        assert column in header
    expected = ROWS + (BATCH_ROWS if hasattr(facade.transform, "vmap") else [])
    names = [r[: header.index("raw JAX")].strip() for r in rows]
    for name in expected:
        assert name in names, name
    for r in rows:
        cells = _cells(header, r, OURS)
        assert "error" not in cells.values(), r  # none of ours failed (an optional one may)
        assert cells["raw JAX"] == "1.00x", r
    assert "disagrees with raw JAX" not in out
    assert "memory of the compiled BPTT gradient" in out
    # The facade's compiled programs against raw JAX's, and the training steps' memory.
    compiled = _table(out, "compiled memory against raw JAX")
    for case in ("jit(grad) MLP", "train step MLP", "states", "BPTT", "checkpointed_for_loop"):
        assert any(case in line for line in compiled), case
    assert "transform.jit training steps" in out
    for transform in ("for_loop", "scan", "cond", "while_loop", "checkpoint"):
        assert f"no growth, eager {transform}:" in out
    targets = _table(out, "targets")
    for label in (
        "per call, facade eager",
        "first call, facade jit",
        "called anew, anew: for_loop",
        "checkpointed",
        "compiled memory equal to raw JAX",
        "no hidden copy on write-back",
        "no growth, training facade jit",
    ):
        assert any(label in line for line in targets), label
    assert not any("[n/a ]" in line for line in targets)
    # A transform called anew traces every call but compiles its program once: at most one
    # executable per facade column of the row (eager and jit hold different programs).
    anew = [line for line in targets if "called anew" in line]
    counts = [
        int(re.search(r"executables compiled over the row's calls: (\d+)", x)[1]) for x in anew
    ]
    assert anew and all(c <= 2 for c in counts), anew
