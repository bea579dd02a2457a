"""Run every Python code block of the documentation, so the docs cannot rot.

The pages are ``docs/**/*.md`` and ``README.md``. The convention, kept deliberately small:

* Every fenced block whose language is ``python`` is executed. Blocks in any other language
  (``bash``, ``text``, ``console``, ...) are shown, never run. Fences may be indented (inside
  admonitions or content tabs); the indentation is removed.
* The blocks of one page run in order, in one namespace (a fresh module per page), so a page
  can build on its earlier blocks, like a notebook.
* A ``text`` block whose first line is ``# output``, and which is the next fenced block after a
  ``python`` block, is that block's expected standard output (the lines after ``# output``).
  It is compared as doctest compares output, with ``ELLIPSIS`` (``...`` matches anything) and
  ``NORMALIZE_WHITESPACE``, numbers up to floating-point noise (``docs_testing``: off by one in
  the last printed digit, or by a relative 1e-4). A ``python`` block without such a block may
  print anything. A value that another CPU may print differently beyond that is printed as a
  bound or a comparison, not as a number.
* A block that raises fails the page's test, with the page and line in the traceback.

Run one page with e.g. ``pytest tests/docs/test_docs.py -k getting-started``.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from docs_testing import FLAGS, NumericOutputChecker

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
OUTPUT_MARK = "# output"


@dataclass
class Block:
    language: str
    line: int  # 1-based line of the first line of code
    code: str


def parse_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, in order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        words = m["info"].strip().lstrip("{.").split()
        language = words[0].rstrip("}") if words else ""
        body: list[str] = []
        i += 1
        start = i + 1  # 1-based line of the first line of code
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        blocks.append(Block(language, start, "\n".join(body) + "\n"))
        i += 1
    return blocks


def runnable(blocks: list[Block]) -> list[tuple[Block, str | None]]:
    """``(python block, expected output or None)`` pairs, by the convention above."""
    pairs: list[tuple[Block, str | None]] = []
    for n, block in enumerate(blocks):
        if block.language != "python":
            continue
        expected = None
        if n + 1 < len(blocks):
            nxt = blocks[n + 1]
            first, _, rest = nxt.code.partition("\n")
            if nxt.language == "text" and first.strip() == OUTPUT_MARK:
                expected = rest
        pairs.append((block, expected))
    return pairs


def run_page(path: Path) -> None:
    """Run the page's python blocks in one fresh module; raise on an error or an output mismatch."""
    name = "docs_" + re.sub(r"\W", "_", str(path.relative_to(ROOT).with_suffix("")))
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # so that classes defined in the page (dataclasses...) resolve
    checker = NumericOutputChecker()
    try:
        for block, expected in runnable(parse_blocks(path.read_text())):
            # Pad with blank lines so tracebacks point at the page's own line numbers.
            code = compile("\n" * (block.line - 1) + block.code, str(path), "exec")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(code, module.__dict__)
            if expected is not None and not checker.check_output(expected, out.getvalue(), FLAGS):
                raise AssertionError(
                    f"{path.relative_to(ROOT)}:{block.line}: the output differs from the "
                    f"'# output' block.\n--- expected\n{expected}--- got\n{out.getvalue()}"
                )
    finally:
        sys.modules.pop(name, None)


def test_parser_follows_the_convention() -> None:
    page = "\n".join(
        [
            "Text.",
            "```python",
            "print(1 + 1)",
            "```",
            '=== "tab"',
            "",
            "    ```python",
            "    x = 3",
            "    ```",
            "```text",
            "# output",
            "3",
            "```",
            "```bash",
            "echo not run",
            "```",
        ]
    )
    blocks = parse_blocks(page)
    assert [b.language for b in blocks] == ["python", "python", "text", "bash"]
    assert blocks[0].line == 3 and blocks[1].code == "x = 3\n" and blocks[1].line == 8
    pairs = runnable(blocks)
    assert [(b.code, e) for b, e in pairs] == [("print(1 + 1)\n", None), ("x = 3\n", "3\n")]


@pytest.mark.parametrize("path", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page(path: Path) -> None:
    run_page(path)
