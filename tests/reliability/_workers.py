"""The suite's subprocesses: started early so they overlap the in-process tests.

``conftest.py`` starts each worker when the collected tests include one that needs it; a test
then calls :func:`report` for the worker's JSON report (starting it there if it was not started).
Under pytest-xdist the controller starts them instead (``tests/conftest.py``, before any pytest
worker runs), writing their output to files in ``$STATEGRAD_WORKER_REPORTS``, which
:func:`report` then reads in whichever pytest worker runs the test.
The workers are: ``models`` (1,000 models created and dropped, see ``_models_worker.py``),
``sharding`` (8 simulated CPU devices, see ``_sharding_worker.py``), ``shard_map`` (the
facade's stateful ``shard_map`` on 8 simulated CPU devices, see ``_shard_map_worker.py``) and
``multiprocess`` (two processes joined by ``jax.distributed``, see ``_multiprocess_worker.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
N_MODELS = 1_000
MODEL_WINDOW = 40  # models measured per kind with tracemalloc on

WORKERS: dict[str, tuple[list[str], dict[str, str]]] = {
    "models": (
        [os.path.join(HERE, "_models_worker.py"), str(N_MODELS), str(MODEL_WINDOW)],
        {},
    ),
    "sharding": (
        [os.path.join(HERE, "_sharding_worker.py")],
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
    ),
    "shard_map": (
        [os.path.join(HERE, "_shard_map_worker.py")],
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
    ),
    # Starts two processes itself, each with 2 devices and the inherited XLA_FLAGS.
    "multiprocess": ([os.path.join(HERE, "_multiprocess_worker.py"), "launch"], {}),
}
# Which test module needs which worker.
NEEDED_BY = {
    "test_memory.py": "models",
    "test_sharding.py": "sharding",
    "test_shard_map.py": "shard_map",
    "test_multiprocess.py": "multiprocess",
}

_procs: dict[str, subprocess.Popen[str]] = {}
_reports: dict[str, dict[str, Any]] = {}


def _command(name: str) -> tuple[list[str], dict[str, str]]:
    """The worker's command line and environment."""
    argv, extra_env = WORKERS[name]
    return [sys.executable, *argv], dict(os.environ, JAX_PLATFORMS="cpu", **extra_env)


def _parse(name: str, returncode: int, out: str, err: str) -> dict[str, Any]:
    assert returncode == 0, f"{name} worker failed:\n{err[-4000:]}"
    line = next(x for x in out.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT ") :])  # type: ignore[no-any-return]


def start(name: str) -> None:
    if name in _procs or name in _reports:
        return
    command, env = _command(name)
    _procs[name] = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def start_to_files(name: str, folder: str) -> subprocess.Popen[bytes]:
    """Start worker ``name`` with its output in ``folder``; its exit code lands in ``name.rc``."""
    command, env = _command(name)
    base = os.path.join(folder, name)
    # A small parent records the exit code once the worker is done, for any process to read.
    record = (
        "import os, subprocess, sys; rc = subprocess.call(sys.argv[2:]); tmp = sys.argv[1] + '~'; "
        "open(tmp, 'w').write(str(rc)); os.replace(tmp, sys.argv[1])"
    )
    with open(base + ".out", "wb") as out, open(base + ".err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-c", record, base + ".rc", *command],
            stdout=out,
            stderr=err,
            env=env,
        )


def _report_from_files(name: str, folder: str) -> dict[str, Any]:
    base = os.path.join(folder, name)
    deadline = time.monotonic() + 900
    while not os.path.exists(base + ".rc"):
        assert time.monotonic() < deadline, f"{name} worker did not finish within 900 s"
        time.sleep(0.2)
    with open(base + ".rc") as f:
        returncode = int(f.read())
    with open(base + ".out") as f:
        out = f.read()
    with open(base + ".err") as f:
        err = f.read()
    return _parse(name, returncode, out, err)


def report(name: str) -> dict[str, Any]:
    """The worker's report (waits for it); raises AssertionError if the worker failed."""
    folder = os.environ.get("STATEGRAD_WORKER_REPORTS")
    if name not in _reports and folder and os.path.exists(os.path.join(folder, name + ".out")):
        _reports[name] = _report_from_files(name, folder)
    if name not in _reports:
        start(name)
        proc = _procs.pop(name)
        out, err = proc.communicate(timeout=900)
        _reports[name] = _parse(name, proc.returncode, out, err)
    return _reports[name]


def stop_all() -> None:
    for proc in _procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _procs.clear()
