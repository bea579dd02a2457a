"""Suite-wide configuration: cheaper XLA compiles.

Nearly all of the suite's time is XLA compiling small CPU programs. The tests check what the
library builds (which program, which values, which States), not how well LLVM optimises it, so
they run with the backend's optimisation passes off unless ``XLA_FLAGS`` is already set. Both
sides of every comparison (the facade's program and the raw-JAX one) are compiled the same way.
JAX reads ``XLA_FLAGS`` when its backend starts, at the first computation, which is after this
file is imported. Subprocesses the tests start inherit it. Benchmarks never run with it.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
)


_started: list[subprocess.Popen[bytes]] = []


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, start the reliability suite's subprocesses here, in the controller.

    Each pytest worker collects every test but runs only some files, so a worker cannot tell
    whether to start them; started here, once, they overlap everything else, and the test that
    needs one reads its report from the files (see ``reliability/_workers.py``).
    """
    if not hasattr(config, "workerinput") and (config.getoption("numprocesses", None) or 0):
        from reliability import _workers

        here = pathlib.Path(__file__).parent / "reliability"
        args = [pathlib.Path(a.split("::")[0]).resolve() for a in config.args] or [here.parent]
        needed = {
            name
            for file, name in _workers.NEEDED_BY.items()
            if any(a == here / file or a in (here / file).parents for a in args)
        }
        if needed:
            folder = tempfile.mkdtemp(prefix="stategrad-workers-")
            os.environ["STATEGRAD_WORKER_REPORTS"] = folder
            config.stash[_FOLDER] = folder
            _started.extend(_workers.start_to_files(name, folder) for name in sorted(needed))


def pytest_unconfigure(config: pytest.Config) -> None:
    for proc in _started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _started.clear()
    folder = config.stash.get(_FOLDER, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


_FOLDER = pytest.StashKey[str]()
