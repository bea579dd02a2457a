"""``brainstate.compile``: the deprecated old name of the jit, loop and branch transforms.

brainstate 0.5.4 still answers ``brainstate.compile.jit`` (with a ``DeprecationWarning``) for the
names listed in ``_FORWARDED``; so does the facade, forwarding each to ``facade.transform``. New
code uses ``brainstate.transform`` directly.

Example:
    >>> import warnings, facade
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     jit = facade.compile.jit
    >>> jit is facade.transform.jit, caught[0].category.__name__
    (True, 'DeprecationWarning')
"""

from __future__ import annotations

import warnings
from typing import Any

from . import transform as _transform

# The names brainstate's ``compile`` proxy serves (those the facade has; the others raise
# AttributeError naming the replacement).
_FORWARDED = (
    "ProgressBar",
    "StatefulFunction",
    "bounded_while_loop",
    "checkpoint",
    "checkpointed_for_loop",
    "checkpointed_scan",
    "cond",
    "for_loop",
    "ifelse",
    "jit",
    "jit_error_if",
    "make_jaxpr",
    "remat",
    "scan",
    "switch",
    "while_loop",
)

__all__ = [n for n in _FORWARDED if hasattr(_transform, n)]


def __getattr__(name: str) -> Any:
    if name in _FORWARDED:
        warnings.warn(
            f"brainstate.compile.{name} is deprecated; use brainstate.transform.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        try:
            return getattr(_transform, name)
        except AttributeError:
            pass
    raise AttributeError(
        f"module 'brainstate.compile' (deprecated) has no attribute {name!r}; "
        "use brainstate.transform"
    )


def __dir__() -> list[str]:
    return list(__all__)
