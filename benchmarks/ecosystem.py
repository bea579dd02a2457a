"""Run brainstate's client libraries' own test suites under brainstate and under the facade.

Usage:
    python benchmarks/ecosystem.py                       # make/refresh the venv, run both
    python benchmarks/ecosystem.py --which facade        # only the facade column
    python benchmarks/ecosystem.py --suites brainpy-state --venv /tmp/eco --no-install
    nox -s ecosystem -- --which facade                   # the same through nox

It installs the pinned clients (``PINS``) and this project (editable) into a venv beside the
project (default ``<repo>/.ecosystem/venv``, not part of the repository), then runs each suite's
test files, which ship inside the client wheels, twice in that venv: with plain ``pytest`` (real
brainstate) and with ``python -m facade.compat pytest`` (``import brainstate`` resolves to the
facade). It prints the pass counts per suite, then, per suite, the most frequent first lines of
the facade's failures (what is missing or different), from pytest's JUnit XML.

Slow (the brainstate column alone takes about 10 minutes on 2 cores): not part of the default
test run. See docs/brainstate-compatibility.md for today's counts.
"""

from __future__ import annotations

import argparse
import ast
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The newest releases that install together on Python 3.11 with the project's jax (issue 18).
PINS = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "brainstate==0.5.4",
    "braintools==0.3.0",
    "brainpy==2.8.2",
    "brainpy_state==0.1.0",
    "pytest",
]

# Suite name -> test files, relative to site-packages (they ship in the client wheels).
SUITES: dict[str, list[str]] = {
    "braintools-optim": [
        "braintools/optim/_audit_fixes_test.py",
        "braintools/optim/_optax_lr_scheduler_test.py",
        "braintools/optim/_optax_optimizer_test.py",
        "braintools/optim/_reaudit_fixes_test.py",
        "braintools/optim/_sofo_optimizer_test.py",
        "braintools/optim/_state_uniquifier_test.py",
    ],
    "braintools-surrogate-init-input": [
        "braintools/surrogate/_impl_test.py",
        "braintools/init/_init_basic_test.py",
        "braintools/input/_composable_basic_test.py",
    ],
    "brainpy-state": [
        "brainpy_state/_base_test.py",
        "brainpy_state/_mixin_test.py",
        "brainpy_state/_brainpy/lif_test.py",
        "brainpy_state/_brainpy/izhikevich_test.py",
        "brainpy_state/_brainpy/exponential_test.py",
    ],
    # brainstate's own tests (issue 19). They import brainstate's private modules at module level,
    # so they run from a copy whose imports are guarded per name (see ``rewrite_imports``).
    "brainstate-transform": [
        f"brainstate/transform/{name}_test.py"
        for name in (
            "_loop_collect_return",
            "_loop_no_collection",
            "_conditions",
            "_grad_checkpoint",
            "_eval_shape",
            "_jit",
            "_mapping1",
            "_mapping2",
            "_mapping_core",
        )
    ],
    "brainstate-autodiff": [
        f"brainstate/transform/{name}_test.py"
        for name in ("_grad_grad", "_grad_hessian", "_grad_jacobian", "_grad_transform", "_vjp_jvp")
    ],
}

# Suites whose files are brainstate's own tests: copied and rewritten before they run.
BRAINSTATE_SUITES = {"brainstate-transform", "brainstate-autodiff"}

_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def make_venv(venv: Path, python: str) -> None:
    """Create ``venv`` if needed and install the pins, then this project (editable)."""
    if not _python(venv).exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(_python(venv)), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *PINS], check=True)
    subprocess.run([*pip, "-e", str(ROOT)], check=True)
    # Report, do not fail: a conflict is worth seeing next to the counts.
    subprocess.run([str(_python(venv)), "-m", "pip", "check"], check=False)


def site_packages(venv: Path) -> Path:
    out = subprocess.run(
        [str(_python(venv)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


# Written beside the rewritten copies. ``public`` is the fallback of a guarded import: the name as
# brainstate's public API exports it (the module path with its private tail cut off), else None.
_GUARD = '''"""Fallbacks for the guarded brainstate imports of these copied test files."""
import importlib


def public(module, name):
    parts = module.split(".")
    cut = next((i for i, p in enumerate(parts) if p.startswith("_")), len(parts))
    for end in range(cut, 0, -1):
        try:
            mod = importlib.import_module(".".join(parts[:end]))
        except Exception:
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
    return None
'''

# brainstate's conftest seeds its random generator before each test; so does this one (written
# here, not copied: the facade column must run it against the facade).
_CONFTEST = """import pytest
import brainstate


@pytest.fixture(autouse=True)
def _seed_brainstate_random():
    brainstate.random.seed(0)
    yield
"""


def rewrite_imports(source: str) -> str:
    """Guard each module-level ``from brainstate... import name`` of a test file, per name.

    A name that does not import (a private module the facade does not have, a public name it
    lacks) falls back to the public name, else None: only the tests that use it fail, not the
    whole file. Imports inside functions are left as they are (they fail only their own test).
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "brainstate":
            out = []
            for alias in node.names:
                bound = alias.asname or alias.name
                out.append(
                    f"try:\n"
                    f"    from {node.module} import {alias.name} as {bound}\n"
                    f"except Exception:\n"
                    f"    {bound} = _bs_guard.public({node.module!r}, {alias.name!r})\n"
                )
            edits.append((node.lineno, node.end_lineno, "".join(out)))
    for start, end, text in reversed(edits):
        lines[start - 1 : end] = [text]
    # The helper import goes after the docstring and any ``from __future__`` line.
    first = next(
        (
            n.lineno
            for n in tree.body
            if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
            and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")
        ),
        len(lines) + 1,
    )
    lines.insert(first - 1, "import _bs_guard\n")
    return "".join(lines)


def copy_rewritten(files: list[Path], into: Path) -> list[Path]:
    """Copy brainstate's test ``files`` into ``into`` with guarded imports; return the copies."""
    (into / "_bs_guard.py").write_text(_GUARD)
    (into / "conftest.py").write_text(_CONFTEST)
    copies = []
    for f in files:
        copy = into / f.name
        copy.write_text(rewrite_imports(f.read_text()))
        copies.append(copy)
    return copies


def run_suite(
    venv: Path, files: list[Path], facade: bool, timeout: float, rewrite: bool = False
) -> dict:
    """Run pytest on ``files`` in ``venv``; return the counts and the failures' first lines.

    With ``rewrite``, the files are brainstate's own tests: they run from rewritten copies.
    """
    with tempfile.TemporaryDirectory() as tmp:
        if rewrite:
            tests = Path(tmp) / "tests"
            tests.mkdir()
            files = copy_rewritten(files, tests)
        junit = Path(tmp) / "junit.xml"
        head = ["-m", "facade.compat", "pytest"] if facade else ["-m", "pytest"]
        cmd = [
            str(_python(venv)),
            *head,
            "-q",
            "-p",
            "no:cacheprovider",
            # A test file that fails to import must not stop the others from running.
            "--continue-on-collection-errors",
            f"--junitxml={junit}",
            "--rootdir",
            tmp,
            *map(str, files),
        ]
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        env.pop("PYTHONPATH", None)  # the venv's own packages only...
        if facade:  # ...and this checkout's facade, whichever one the venv has installed
            env["PYTHONPATH"] = str(ROOT / "src")
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp, env=env
            )
            tail = proc.stdout.strip().splitlines()[-1:] or [proc.stderr.strip()[-300:]]
        except subprocess.TimeoutExpired:
            tail = [f"timed out after {timeout:.0f} s"]
        counts = collections.Counter()
        for n, kind in _COUNT.findall(tail[0]):
            counts["errors" if kind.startswith("error") else kind] += int(n)
        reasons = _reasons(junit) if junit.exists() else collections.Counter()
        return {
            "counts": counts,
            "reasons": reasons,
            "tail": tail[0],
            "seconds": time.perf_counter() - start,
        }


# Lines JAX appends below an exception raised through its frames: not the reason.
_NOISE = ("For simplicity, JAX has removed", "-----", "See https://")
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Warning|Exit)\b")


def _reasons(junit: Path) -> collections.Counter:
    """Failures and errors grouped by the first line of their message (addresses removed)."""
    reasons: collections.Counter = collections.Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        for bad in (*case.findall("failure"), *case.findall("error")):
            # The raised exception: pytest's last "E   " line (a collection error's message is
            # only "collection failure"), else the message's first line.
            raised = [
                ln[1:].strip()
                for ln in (bad.text or "").splitlines()
                if ln[:2] == "E " and not ln[1:].strip().startswith(_NOISE)
            ]
            message = (bad.get("message") or "?").strip().splitlines() or ["?"]
            # Prefer the exception line itself ("SomeError: ...") over trailing notes.
            named = [ln for ln in raised if _EXCEPTION_LINE.match(ln)]
            line = named[-1] if named else raised[-1] if raised else message[0]
            line = re.sub(r" at 0x[0-9a-f]+", "", line)[:160]
            reasons[line] += 1
    return reasons


# Run in the venv: every `brainstate.<module>.<name>` the client packages' code uses (attribute
# chains and `from brainstate.<module> import <names>`), and which of them the facade lacks.
_SCAN = r"""
import collections, importlib, pathlib, re, sys
import facade.compat
facade.compat.install_brainstate_alias()
site = pathlib.Path(sys.argv[1])
missing = collections.defaultdict(set)
attr = re.compile(r"\bbrainstate((?:\.[A-Za-z_]\w*)+)")
frm = re.compile(r"^\s*from brainstate((?:\.\w+)*) import (\([^)]*\)|[^\n]+)", re.M)
for pkg in sys.argv[2:]:
    for path in (site / pkg).rglob("*.py"):
        if path.name.endswith("_test.py"):
            continue
        text = path.read_text(errors="replace")
        uses = [m.group(1).lstrip(".").split(".") for m in attr.finditer(text)]
        for m in frm.finditer(text):
            names = m.group(2).strip("()").split("#")[0].replace("\n", " ").split(",")
            uses += [m.group(1).lstrip(".").split(".") + [n.split()[0]]
                     for n in names if n.split()]
        for parts in uses:
            parts = [p for p in parts if p]
            obj, name = importlib.import_module("brainstate"), "brainstate"
            for part in parts:
                full = name + "." + part
                try:
                    if hasattr(obj, part):
                        obj = getattr(obj, part)
                    else:
                        obj = importlib.import_module(full)
                except Exception:
                    missing[full].add(str(path.relative_to(site)))
                    break
                name = full
for name, files in sorted(missing.items(), key=lambda kv: -len(kv[1])):
    print(f"{len(files):5d}  {name}")
"""


def scan_missing(venv: Path, packages: list[str]) -> str:
    """The brainstate names the clients' code uses that the facade lacks, by number of files."""
    out = subprocess.run(
        [str(_python(venv)), "-c", _SCAN, str(site_packages(venv)), *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout + (out.stderr[-2000:] if out.returncode else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".ecosystem" / "venv")
    parser.add_argument("--python", default=sys.executable, help="interpreter for a new venv")
    parser.add_argument("--no-install", action="store_true", help="use the venv as it is")
    parser.add_argument("--which", choices=["both", "brainstate", "facade"], default="both")
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated names")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per suite run")
    parser.add_argument("--reasons", type=int, default=8, help="failure causes shown per suite")
    parser.add_argument(
        "--scan",
        action="store_true",
        help="only list the brainstate names the clients' code uses that the facade lacks",
    )
    args = parser.parse_args(argv)

    names = [s for s in args.suites.split(",") if s]
    unknown = sorted(set(names) - set(SUITES))
    if unknown:
        parser.error(f"unknown suites {unknown}; known: {sorted(SUITES)}")
    if not args.no_install:
        make_venv(args.venv, args.python)
    site = site_packages(args.venv)
    if args.scan:
        print("files  brainstate name the facade lacks (client code, tests excluded)")
        print(scan_missing(args.venv, ["braintools", "brainpy_state", "brainpy"]))
        return 0

    columns = {"both": ("brainstate", "facade"), "brainstate": ("brainstate",)}.get(
        args.which, ("facade",)
    )
    results: dict[tuple[str, str], dict] = {}
    for name in names:
        files = [site / f for f in SUITES[name]]
        for column in columns:
            res = run_suite(
                args.venv, files, column == "facade", args.timeout, name in BRAINSTATE_SUITES
            )
            results[name, column] = res
            print(f"[{name} / {column}] {res['tail']} ({res['seconds']:.0f} s)", flush=True)

    print()
    print("| suite | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name in names:
        cells = []
        # A file that fails to import counts as one error, not as its tests: when brainstate's
        # column ran, its count of tests is the denominator of both.
        reference = results.get((name, "brainstate"))
        for column in columns:
            c = results[name, column]["counts"]
            total = sum((reference or results[name, column])["counts"].values())
            cells.append(f"{c['passed']} / {total}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if "facade" in columns:
        for name in names:
            reasons = results[name, "facade"]["reasons"]
            if reasons:
                print(f"\n{name}: the facade's top failure causes (tests: first line)")
                for line, n in reasons.most_common(args.reasons):
                    print(f"  {n:4d}  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
