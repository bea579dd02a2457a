"""The benchmark script runs end to end (``--quick``) and prints its table; timings are not
asserted here (tests never assert timings; see docs/performance.md for the numbers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_quick_run_prints_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "median per-call time" in out
    header = next(line for line in out.splitlines() if line.startswith("case "))
    for column in ("raw JAX", "functional jit", "facade eager", "facade jit"):
        assert column in header
    assert "grad chain N=10" in out
    assert "targets (issue 5):" in out
