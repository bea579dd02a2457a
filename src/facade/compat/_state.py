"""``brainstate._state`` under the alias: the State classes clients import by module path.

``record_state_value_read`` / ``record_state_value_write`` (which brainpy's ``Variable`` calls)
are not here: recording a read or write of a value kept outside the State's own slot needs the
facade's trace frames to accept it, a change to ``facade/_state.py`` (listed on
docs/brainstate-compatibility.md).
"""

from __future__ import annotations

from .._state import HiddenState, LongTermState, ParamState, ShortTermState, State

__all__ = ["HiddenState", "LongTermState", "ParamState", "ShortTermState", "State"]
