"""No page says that a name the facade provides is missing.

docs/coming-from-brainstate.md once said that ``brainstate.nn`` was "the Module base class only:
no `Linear`, `Dropout`, optimizers", long after the facade had them. The compatibility page is
checked name by name against the code (test_compat.py); this scans the text of every page for a
claim of absence and checks each name the claim makes against the facade.

A claim of absence, as the pages word them: ``no `X```, ``no `X`, `Y` or `Z```, ```X` is not
provided`` (or available, supported, reproduced, implemented), ``missing `X```, and the names of
a sentence after ``missing:``, ``not provided:``, ``not yet:`` or ``not there:``.

A name counts if the facade provides it: a bare name in the ``__all__`` of a facade module, or a
dotted path (``brainstate.nn.Linear``, ``nn.Linear``) that resolves in the facade to something
other than a module (a module may be partly provided, and a page may say which part is not).
Other libraries' names (``jax.vmap``, ``eqx.filter``) do not count.
"""

from __future__ import annotations

import importlib
import pathlib
import re
import types

import pytest

import facade

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
MODULES = [
    "facade",
    "facade.environ",
    "facade.graph",
    "facade.nn",
    "facade.nn.init",
    "facade.optim",
    "facade.random",
    "facade.transform",
    "facade.util.filter",
]
_NAME = r"`[\w.]+`"
_SEPARATOR = r"(?:\s*,\s*(?:or\s+|and\s+|nor\s+)?|\s+or\s+|\s+and\s+|\s+nor\s+|\s*/\s*)"
_NAMES = rf"{_NAME}(?:{_SEPARATOR}{_NAME})*"  # `A`, `B` or `C`; `A`/`B`
CLAIMS = [
    re.compile(rf"\bno\s+({_NAMES})", re.I),
    re.compile(
        rf"({_NAMES})\s+(?:is|are)\s+(?:not|never)\s+"
        r"(?:provided|available|supported|reproduced|implemented)",
        re.I,
    ),
    re.compile(rf"\b(?:not provided|missing)\s+({_NAMES})", re.I),
    # A list after a colon, to the end of its sentence: "Not yet: pooling, `Conv3d`, ...".
    re.compile(r"\b(?:not provided|missing|not yet|not there)\s*:\s*((?:[^.`]|`[^`]*`)*)", re.I),
]
# The compatibility page's per-module "Not provided:" lists are checked, module by module, by
# test_compat.py (a name missing from one module may exist in another).
SKIP = re.compile(r"^Not provided: .*$", re.M)


def provided_names() -> set[str]:
    return {n for m in MODULES for n in importlib.import_module(m).__all__}


PROVIDED = provided_names()


def is_provided(token: str) -> bool:
    """Whether the backquoted ``token`` names something the facade provides (not a module)."""
    parts = token.split(".")
    if len(parts) == 1:
        return token in PROVIDED
    if parts[0] in ("brainstate", "facade"):
        parts = parts[1:]
    elif not isinstance(getattr(facade, parts[0], None), types.ModuleType):
        return False  # another library's name (jax.vmap, eqx.filter)
    obj: object = facade  # `nn.Linear` counts as `brainstate.nn.Linear`
    for part in parts:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return not isinstance(obj, types.ModuleType)


def claimed_missing(text: str) -> list[str]:
    """The provided names that ``text`` says are missing."""
    text = re.sub(r"\s+", " ", SKIP.sub("", text))  # a sentence may run over lines
    found = []
    for claim in CLAIMS:
        for m in claim.finditer(text):
            found += [n for n in re.findall(r"`([\w.]+)`", m.group(1)) if is_provided(n)]
    return found


def test_claims_are_found() -> None:
    stale = """* `brainstate.nn` here is the `Module` base class only: no `Linear`, `Dropout`,
    optimizers or other layers."""
    assert claimed_missing(stale) == ["Linear", "Dropout"]
    assert claimed_missing("`brainstate.nn.GRUCell` and `MaxPool2d` are not provided.") == [
        "brainstate.nn.GRUCell"
    ]
    assert claimed_missing("missing: `vmap2`, `checkify`") == ["vmap2"]
    assert claimed_missing("Not yet: pooling, `MaxPool2d`, `nn.Linear`. But `Dropout`.") == [
        "nn.Linear"
    ]
    # Not claims about the facade, or about names it does not provide.
    assert claimed_missing("so no `eqx.filter`/`eqx.partition` is needed") == []
    assert claimed_missing("the rest of `brainstate.util` is not provided") == []
    assert claimed_missing("No tracer ever lands in a `State`.") == []
    assert claimed_missing("no `AvgPool1d`, `MaxPool2d` or `HiData`") == []


@pytest.mark.parametrize("path", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_no_page_calls_a_provided_name_missing(path: pathlib.Path) -> None:
    names = claimed_missing(path.read_text())
    assert not names, (
        f"{path.relative_to(ROOT)} says {names} are missing, but the facade provides them"
    )
