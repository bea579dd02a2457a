"""The distribution reports its version as ``stategrad.__version__``."""

import importlib.metadata
import re
from pathlib import Path

import stategrad


def test_version_is_the_installed_distributions() -> None:
    assert stategrad.__version__ == importlib.metadata.version("stategrad")


def test_version_is_pep440_like_and_in_the_changelog() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([.+-].*)?", stategrad.__version__)
    changelog = (Path(__file__).resolve().parents[2] / "CHANGELOG.md").read_text()
    assert f"## [{stategrad.__version__}]" in changelog
