"""Run the ``>>>`` examples in the docstrings of ``functional``, ``facade`` and ``stategrad``.

Collected with :class:`doctest.DocTestFinder` over every module of the packages (private ones
included; an object is tested in the module that defines it, once), and run with
``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``, numbers compared up to floating-point noise as in the
pages' outputs (``docs_testing.NumericOutputChecker``). One test per docstring that has examples.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
import types

import pytest
from docs_testing import FLAGS, NumericOutputChecker

PACKAGES = ["functional", "facade", "stategrad"]


def _modules() -> list[types.ModuleType]:
    found = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        found.append(package)
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), name + "."):
            found.append(importlib.import_module(info.name))
    return found


def _collect() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: dict[str, doctest.DocTest] = {}
    for module in _modules():
        for test in finder.find(module):
            if test.examples:
                tests.setdefault(test.name, test)
    return sorted(tests.values(), key=lambda t: t.name)


DOCTESTS = _collect()


def test_docstring_examples_are_found() -> None:
    names = {t.name for t in DOCTESTS}
    assert "functional.grad" in {n.replace("._transforms", "") for n in names}
    assert len(DOCTESTS) >= 10


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(checker=NumericOutputChecker(), optionflags=FLAGS, verbose=False)
    report = io.StringIO()
    result = runner.run(test, out=report.write, clear_globs=True)
    assert result.failed == 0, f"{test.name} ({test.filename}:{test.lineno}):\n{report.getvalue()}"
