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
from ._conv import Conv1d, Conv2d
from ._dropout import Dropout
from ._embedding import Embedding
from ._linear import Linear
from ._module import Module
from ._normalization import BatchNorm0d, BatchNorm1d, BatchNorm2d, LayerNorm, RMSNorm
from ._param import Const, IdentityT, Param, Regularization, Transform
from ._rnn import GRUCell, LSTMCell, RNNCell, ValinaRNNCell
from ._sequential import Sequential
from ._vmap_init import vmap_init_all_states

__all__ = [
    "CELU",
    "Const",
    "IdentityT",
    "Param",
    "Regularization",
    "Transform",
    "ELU",
    "GELU",
    "GLU",
    "SELU",
    "BatchNorm0d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "Dropout",
    "ElementWiseBlock",
    "Embedding",
    "Flatten",
    "GRUCell",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "Identity",
    "LSTMCell",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSigmoid",
    "LogSoftmax",
    "Mish",
    "Module",
    "RMSNorm",
    "RNNCell",
    "ReLU",
    "ReLU6",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Softsign",
    "Tanh",
    "ValinaRNNCell",
    "celu",
    "elu",
    "gelu",
    "glu",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "init",
    "init_all_states",
    "leaky_relu",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "mish",
    "one_hot",
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
