"""``python -m facade.compat pytest ARGS...`` or ``python -m facade.compat script.py ARGS...``.

Installs the brainstate alias, then runs pytest (in this process, so the alias is active in the
tests) or the script as ``__main__`` with ``sys.argv`` set as if it were run directly.
"""

from __future__ import annotations

import os
import runpy
import sys

from . import install_brainstate_alias

_USAGE = (
    "usage: python -m facade.compat pytest [PYTEST ARGS...]\n"
    "       python -m facade.compat SCRIPT.py [ARGS...]\n"
    "       python -m facade.compat -m MODULE [ARGS...]\n"
    "Runs the command with `import brainstate` resolving to the facade."
)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0 if argv else 2
    install_brainstate_alias()
    if argv[0] == "pytest":
        import pytest

        return int(pytest.main(argv[1:]))
    if argv[0] == "-m":
        if len(argv) < 2:
            print(_USAGE, file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    sys.argv = argv
    # As `python script.py` does: the script's own directory first on the import path.
    sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
    runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
