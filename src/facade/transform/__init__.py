"""State-aware transforms (``brainstate.transform``): autodiff, jit, loops, branches, and more."""

from ._autodiff import (
    GradientTransform,
    fwd_grad,
    grad,
    hessian,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    vector_grad,
    vjp,
)
from ._branches import cond, ifelse, switch
from ._eval_shape import eval_shape
from ._finder import StateFinder
from ._jaxpr_code import jaxpr_to_python_code
from ._jit import JittedFunction, jit
from ._jit_error_if import jit_error_if
from ._loops import (
    bounded_while_loop,
    checkpointed_for_loop,
    checkpointed_scan,
    for_loop,
    scan,
    while_loop,
)
from ._mapping import BatchAxisError, in_new_state_probe
from ._progress import ProgressBar
from ._remat import checkpoint, remat
from ._shard_map import shard_map
from ._stateful_function import StatefulFunction
from ._stateful_mapping import StatefulMapping, pmap2, pmap2_new_states, vmap2, vmap2_new_states
from ._vmap import map, unvmap, vmap, vmap_new_states

__all__ = [
    "BatchAxisError",
    "GradientTransform",
    "JittedFunction",
    "ProgressBar",
    "StateFinder",
    "StatefulFunction",
    "StatefulMapping",
    "bounded_while_loop",
    "checkpoint",
    "checkpointed_for_loop",
    "checkpointed_scan",
    "cond",
    "eval_shape",
    "for_loop",
    "fwd_grad",
    "grad",
    "hessian",
    "ifelse",
    "in_new_state_probe",
    "jacfwd",
    "jacobian",
    "jacrev",
    "jaxpr_to_python_code",
    "jit",
    "jit_error_if",
    "jvp",
    "map",
    "pmap2",
    "pmap2_new_states",
    "remat",
    "scan",
    "shard_map",
    "switch",
    "unvmap",
    "vector_grad",
    "vjp",
    "vmap",
    "vmap2",
    "vmap2_new_states",
    "vmap_new_states",
    "while_loop",
]
