"""``brainstate._state`` under the alias: the State names clients import by module path.

Besides the facade's State classes it defines the two small names that need nothing of the
facade's core: :func:`maybe_state` and :class:`BatchState` (re-exported as ``facade.maybe_state``
and ``facade.BatchState``), and re-exports ``HiddenGroupState`` / ``HiddenTreeState``
(``_hidden_group``) and ``catch_new_states`` / ``NewStateCatcher`` (``_catch``).

``record_state_value_read`` / ``record_state_value_write`` (which brainpy's ``Variable`` calls
in its own ``value`` property before ``_read_value()`` / ``_write_value(v)``) record the access in
the facade's trace frames, as ``State.value`` does.
"""

from __future__ import annotations

from typing import Any

from .._state import (
    DelayState,
    HiddenState,
    LongTermState,
    ParamState,
    ShortTermState,
    State,
    record_state_value_read,
    record_state_value_write,
)
from ._catch import NewStateCatcher, catch_new_states
from ._hidden_group import HiddenGroupState, HiddenTreeState

__all__ = [
    "BatchState",
    "DelayState",
    "HiddenGroupState",
    "HiddenState",
    "HiddenTreeState",
    "LongTermState",
    "NewStateCatcher",
    "ParamState",
    "ShortTermState",
    "State",
    "catch_new_states",
    "maybe_state",
    "record_state_value_read",
    "record_state_value_write",
]


def maybe_state(val: Any) -> Any:
    """``val.value`` if ``val`` is a State (a recorded read), else ``val`` itself.

    Example:
        >>> import facade
        >>> facade.maybe_state(facade.State(2.0)), facade.maybe_state(3.0)
        (2.0, 3.0)
    """
    return val.value if isinstance(val, State) else val


class BatchState(LongTermState):
    """A LongTermState holding the current batch of data; a tag class with nothing added.

    Example:
        >>> import numpy as np, facade
        >>> batch = facade.BatchState(np.array([1, 2, 3]), name="current_batch")
        >>> isinstance(batch, facade.LongTermState)
        True
    """
