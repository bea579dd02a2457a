"""``facade.nn``: brainstate's ``Module``, core layers, recurrent cells and initializers.

Models are :class:`Module` trees holding their states as attributes; calling a module calls
its ``update()``. The layers keep brainstate 0.5.4's names, signatures and state layout, so a
model's state paths (and so its gradients' paths) are those brainstate gives the same model.

Example:
    >>> import jax, jax.numpy as jnp, facade
    >>> net = facade.nn.Sequential(facade.nn.Linear(4, 3), facade.nn.ReLU(), facade.nn.Linear(3, 2))
    >>> net(jnp.ones((3, 4))).shape
    (3, 2)
    >>> list(net.states(facade.ParamState))
    [('layers', 0, 'weight'), ('layers', 2, 'weight')]
"""

from . import init
from ._activations import (
    CELU,
    ELU,
    GELU,
    GLU,
    SELU,
    ElementWiseBlock,
    Flatten,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Identity,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
    celu,
    elu,
    gelu,
    glu,
    hard_sigmoid,
    hard_silu,
    hard_swish,
    hard_tanh,
    leaky_relu,
    log_sigmoid,
    log_softmax,
    logsumexp,
    mish,
    one_hot,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    soft_sign,
    softmax,
    softplus,
    sparse_plus,
    squareplus,
    standardize,
    swish,
    tanh,
)
from ._collective import init_all_states, reset_all_states
from ._conv import Conv1d, Conv2d, Conv3d
from ._delay import Delay, DelayAccess, InterpolationRegistry, StateWithDelay
from ._dropout import Dropout
from ._dynamics import (
    Dynamics,
    OutputDelayAt,
    Prefetch,
    PrefetchDelay,
    PrefetchDelayAt,
    call_order,
    exp_euler_step,
    init_maybe_prefetch,
    not_receive_update_input,
    not_receive_update_output,
    receive_update_input,
    receive_update_output,
)
from ._embedding import Embedding
from ._group_norm import GroupNorm
from ._linear import Linear
from ._lora import LoRA
from ._map_module import Map
from ._module import Module
from ._normalization import BatchNorm0d, BatchNorm1d, BatchNorm2d, LayerNorm, RMSNorm
from ._param import Const, IdentityT, Param, Regularization, Transform
from ._rnn import GRUCell, LSTMCell, RNNCell, ValinaRNNCell
from ._sequential import Sequential
from ._vmap_init import vmap_init_all_states
from ._vmap_module import Vmap

__all__ = [
    "BatchNorm0d",
    "BatchNorm1d",
    "BatchNorm2d",
    "CELU",
    "Const",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "Delay",
    "DelayAccess",
    "Dropout",
    "Dynamics",
    "ELU",
    "ElementWiseBlock",
    "Embedding",
    "Flatten",
    "GELU",
    "GLU",
    "GRUCell",
    "GroupNorm",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "Identity",
    "IdentityT",
    "InterpolationRegistry",
    "LSTMCell",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LoRA",
    "LogSigmoid",
    "LogSoftmax",
    "Map",
    "Mish",
    "Module",
    "OutputDelayAt",
    "Param",
    "Prefetch",
    "PrefetchDelay",
    "PrefetchDelayAt",
    "RMSNorm",
    "RNNCell",
    "ReLU",
    "ReLU6",
    "Regularization",
    "SELU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Softsign",
    "StateWithDelay",
    "Tanh",
    "Transform",
    "ValinaRNNCell",
    "Vmap",
    "call_order",
    "celu",
    "elu",
    "exp_euler_step",
    "gelu",
    "glu",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "init",
    "init_all_states",
    "init_maybe_prefetch",
    "leaky_relu",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "mish",
    "not_receive_update_input",
    "not_receive_update_output",
    "one_hot",
    "receive_update_input",
    "receive_update_output",
    "relu",
    "relu6",
    "reset_all_states",
    "selu",
    "sigmoid",
    "silu",
    "soft_sign",
    "softmax",
    "softplus",
    "sparse_plus",
    "squareplus",
    "standardize",
    "swish",
    "tanh",
    "vmap_init_all_states",
]
