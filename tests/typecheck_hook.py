"""The type checker that pytest's jaxtyping import hook applies to both packages.

``pyproject.toml`` names it (``--jaxtyping-packages=functional,facade,typecheck_hook.check``):
every module-level function, method and class of ``functional`` and ``facade`` is checked by
beartype on every call. Functions defined inside other functions (closures the library builds
per call or per trace) are left as they are: decorating one costs ~2.5 ms each time its ``def``
runs, which was an eighth of the suite's time, and their arguments come from the checked
functions around them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import beartype


def check(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    if "<locals>" in getattr(fn, "__qualname__", ""):
        return fn
    return beartype.beartype(fn, *args, **kwargs)  # type: ignore[no-any-return]
