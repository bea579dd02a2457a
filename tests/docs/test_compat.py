"""docs/brainstate-compatibility.md says, per brainstate module, which names the facade provides
and which it does not. Both lists are checked against the facade modules here, so the page
cannot claim a name that is gone or call missing a name that exists."""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

PAGE = pathlib.Path(__file__).parents[2] / "docs" / "brainstate-compatibility.md"
_SECTION = re.compile(r"^## `(brainstate[\w.]*)` → `(facade[\w.]*)`$", re.M)
_NAME = re.compile(r"`(\w+)`")


def _sections() -> list[tuple[str, str, list[str], list[str]]]:
    text = PAGE.read_text()
    heads = list(_SECTION.finditer(text))
    out = []
    for head, nxt in zip(heads, heads[1:] + [None], strict=True):
        body = text[head.end() : nxt.start() if nxt else len(text)]
        provided = [m.group(1) for m in re.finditer(r"^\| `(\w+)` \|", body, re.M)]
        missing_line = re.search(r"^Not provided: (.*)$", body, re.M)
        assert missing_line, f"section {head.group(1)} has no 'Not provided' line"
        missing = _NAME.findall(missing_line.group(1))
        out.append((head.group(1), head.group(2), provided, missing))
    return out


SECTIONS = _sections()


def test_the_page_covers_every_facade_module_brainstate_has() -> None:
    assert [s[0] for s in SECTIONS] == [
        "brainstate",
        "brainstate.transform",
        "brainstate.nn",
        "brainstate.random",
        "brainstate.environ",
        "brainstate.graph",
        "brainstate.util.filter",
        "brainstate.util",
        "brainstate.typing",
        "brainstate.mixin",
    ]
    for bs, _, provided, missing in SECTIONS:
        assert provided, bs
        assert not set(provided) & set(missing), bs


@pytest.mark.parametrize(
    ("bs", "module", "provided", "missing"), SECTIONS, ids=[s[0] for s in SECTIONS]
)
def test_listed_names_match_the_facade(
    bs: str, module: str, provided: list[str], missing: list[str]
) -> None:
    mod = importlib.import_module(module)
    gone = [n for n in provided if not hasattr(mod, n)]
    assert not gone, f"the page lists {gone} as provided by {module}, which has no such names"
    present = [n for n in missing if hasattr(mod, n)]
    assert not present, f"the page lists {present} as not provided, but {module} has them"
    counted = re.search(
        rf"## `{re.escape(bs)}`.*?\n\n(\d+) of (\d+) names provided", PAGE.read_text(), re.S
    )
    assert counted and int(counted.group(1)) == len(provided)
    assert int(counted.group(2)) == len(provided) + len(missing)
