"""facade: the stateful, brainstate-compatible layer of stategrad.

``import facade as brainstate`` runs brainstate code: states live on modules, transforms find
them, and each call lowers to one compiled JAX program through the ``functional`` engine.
"""

from stategrad import __version__

from . import _filters as filter
from . import (
    compile,  # noqa: A004  (brainstate's deprecated alias of transform)
    environ,
    graph,
    mixin,
    nn,
    optim,
    random,
    transform,
    typing,
    util,
)
from ._state import DelayState, HiddenState, LongTermState, ParamState, ShortTermState, State
from .compat._state import (
    BatchState,
    HiddenGroupState,
    HiddenTreeState,
    catch_new_states,
    maybe_state,
)
from .transform import BatchAxisError

#: The brainstate release whose API the facade follows (``__version__`` is the facade's own).
__brainstate_version__ = "0.5.4"

__all__ = [
    "BatchAxisError",
    "BatchState",
    "DelayState",
    "HiddenGroupState",
    "HiddenState",
    "HiddenTreeState",
    "LongTermState",
    "ParamState",
    "ShortTermState",
    "State",
    "catch_new_states",
    "compile",
    "environ",
    "maybe_state",
    "filter",
    "__brainstate_version__",
    "__version__",
    "graph",
    "mixin",
    "nn",
    "optim",
    "random",
    "transform",
    "typing",
    "util",
]
