"""facade.nn layers against explicit jax.numpy formulas (forward and gradients), float32/64.

The layouts (state paths, value keys, default shapes and initial values) are checked against
brainstate 0.5.4's, written out here. The numerics: each formula is written from the layer's
definition, and ``check_layers`` compares the layer's outputs and gradients (through
``facade.transform.grad``, w.r.t. the ParamStates and the input) with ``jax.grad`` of it.
Parameters are explicit arrays (an initializer's randomness is tested apart), and related
layers share one compiled program, which keeps this file fast.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np
import pytest
from nn_testing import FLOAT, TOLERANCE, check_layer, check_layers, data, values_of
from nn_testing import precision as precision  # the fixture

import facade
from facade import nn
from facade.nn import init

ZERO = init.ZeroInit()  # a cheap initializer for layers whose values do not matter
# One shape for the random draws: each new shape compiles the draw anew.
SAMPLE_SHAPE = (200, 150)


def param(values, *path):
    """The value at ``path`` of ``{state_path: value}`` (the last entries index into dicts)."""
    for n in range(len(path), 0, -1):
        if path[:n] in values:
            v = values[path[:n]]
            for key in path[n:]:
                v = v[key]
            return v
    raise KeyError(path)


def assert_numpy_close(got, want, precision):
    """``got`` (a JAX array of the precision's dtype) against a numpy float64 expectation."""
    assert got.dtype == FLOAT[precision]
    np.testing.assert_allclose(np.asarray(got), want, **TOLERANCE[precision])


# --- layouts: brainstate's paths, keys, shapes and initial values ----------------------------


def test_linear_layout_and_defaults():
    layer = nn.Linear(*SAMPLE_SHAPE)
    assert list(layer.states()) == [("weight",)]
    value = layer.weight.value
    assert set(value) == {"weight", "bias"}
    assert value["weight"].shape == SAMPLE_SHAPE and value["weight"].dtype == jnp.float32
    assert value["bias"].shape == (150,) and not np.asarray(value["bias"]).any()  # ZeroInit
    # KaimingNormal: variance 2 / fan_in.
    np.testing.assert_allclose(np.asarray(value["weight"]).var(), 2.0 / 200, rtol=0.03)
    assert layer.in_size == (200,) and layer.out_size == (150,)
    assert set(nn.Linear(10, 5, w_init=ZERO, b_init=None).weight.value) == {"weight"}


def test_normalisation_layouts_and_defaults():
    norm = nn.LayerNorm((6,)).weight.value
    assert sorted(norm) == ["bias", "scale"] and norm["scale"].shape == (6,)
    assert (np.asarray(norm["scale"]) == 1).all() and (np.asarray(norm["bias"]) == 0).all()
    assert nn.LayerNorm((3, 6)).weight.value["scale"].shape == (1, 6)  # feature axis only
    assert set(nn.LayerNorm((6,), use_bias=False).weight.value) == {"scale"}
    assert nn.LayerNorm((6,), use_bias=False, use_scale=False).weight is None
    rms = nn.RMSNorm((6,))
    assert list(rms.states()) == [("scale",)] and set(rms.scale.value) == {"scale"}
    assert list(nn.RMSNorm((6,), use_scale=False).states()) == []
    bn = nn.BatchNorm1d((100, 64))
    assert list(bn.states()) == [("running_mean",), ("running_var",), ("weight",)]
    assert isinstance(bn.running_mean, facade.LongTermState)
    assert isinstance(bn.weight, facade.ParamState)
    assert bn.running_mean.value.shape == bn.weight.value["scale"].shape == (1, 64)
    assert (np.asarray(bn.running_var.value) == 1).all()
    assert nn.BatchNorm2d((4, 4, 3)).running_var.value.shape == (1, 1, 3)
    assert nn.BatchNorm0d((3,)).weight.value["bias"].shape == (3,)
    assert list(nn.BatchNorm1d((5, 3), track_running_stats=False).states()) == [("weight",)]


def test_conv_layouts_and_defaults():
    conv = nn.Conv1d((28, 3), 16, 5, w_init=ZERO)
    assert list(conv.states()) == [("weight",)]
    assert set(conv.weight.value) == {"weight"}  # no bias by default
    assert conv.weight.value["weight"].shape == (5, 3, 16) and conv.out_size == (28, 16)
    with_bias = nn.Conv1d((28, 3), 16, 5, w_init=ZERO, b_init=ZERO)
    assert with_bias.weight.value["bias"].shape == (1, 16)
    conv2 = nn.Conv2d((32, 32, 3), 8, 3, w_init=ZERO, b_init=ZERO)
    assert conv2.weight.value["weight"].shape == (3, 3, 3, 8)
    assert conv2.weight.value["bias"].shape == (1, 1, 8)
    assert nn.Conv2d((32, 32, 3), 8, 5, stride=2, padding="VALID", w_init=ZERO).out_size == (
        14,
        14,
        8,
    )
    grouped = nn.Conv2d((6, 7, 4), 6, 3, groups=2, w_init=ZERO)
    assert grouped.weight.value["weight"].shape == (3, 3, 2, 6)
    first = nn.Conv2d((3, 8, 8), 4, 3, channel_first=True, w_init=ZERO, b_init=ZERO)
    assert first.weight.value["bias"].shape == (1, 4, 1, 1) and first.out_size == (4, 8, 8)


def test_embedding_layout_and_default_init_is_lecun_uniform():
    facade.random.seed(3)
    layer = nn.Embedding(*SAMPLE_SHAPE)
    assert list(layer.states()) == [("weight",)]
    table = np.asarray(layer.weight.value)
    assert table.shape == SAMPLE_SHAPE
    # LeCun uniform over a (200, 150) table: fan_in = 200, so U(-sqrt(3 / 200), sqrt(3 / 200)).
    bound = math.sqrt(3.0 / SAMPLE_SHAPE[0])
    assert bound * 0.99 < np.abs(table).max() <= bound


# --- numerics: Linear and normalisation -----------------------------------------------------------


def layer_norm_formula(v, x, axes=(-1,), eps=1e-6):
    mu = x.mean(axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axes, keepdims=True)
    y = (x - mu) / jnp.sqrt(var + eps) * param(v, "weight", "scale")
    return y + param(v, "weight", "bias") if "bias" in v[("weight",)] else y


def test_linear_and_normalisation_layers(precision):
    mask = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    cases = [
        (
            nn.Linear(3, 2, w_init=data((3, 2), 1), b_init=data((2,), 2), w_mask=jnp.asarray(mask)),
            data((5, 3), 3),
            lambda v, x: x @ (param(v, "weight", "weight") * mask) + param(v, "weight", "bias"),
        ),
        # Non-trivial scales and biases, so that a mix-up of the two shows.
        (
            nn.LayerNorm((6,), scale_init=data((6,), 4), bias_init=data((6,), 5)),
            data((4, 6), 6),
            layer_norm_formula,
        ),
        (
            nn.LayerNorm(
                (3, 4),
                reduction_axes=(-2, -1),
                feature_axes=(-2, -1),
                epsilon=1e-3,
                use_bias=False,
                use_fast_variance=False,
                scale_init=data((3, 4), 7),
            ),
            data((2, 3, 4), 8),
            lambda v, x: layer_norm_formula(v, x, axes=(-2, -1), eps=1e-3),
        ),
        (
            nn.RMSNorm((6,), scale_init=data((6,), 9)),
            data((4, 6), 10),
            lambda v, x: (
                x / jnp.sqrt((x**2).mean(-1, keepdims=True) + 1e-6) * param(v, "scale", "scale")
            ),
        ),
    ]
    check_layers(cases, precision)


def batch_norm_formula(v, x, eps=1e-5):
    """Normalise over every axis but the last (the batch and the spatial ones)."""
    axes = tuple(range(x.ndim - 1))
    mu = x.mean(axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axes, keepdims=True)
    y = (x - mu) / jnp.sqrt(var + eps)
    return y * param(v, "weight", "scale") + param(v, "weight", "bias")


def test_batch_norms_in_fit_mode(precision):
    cases = [
        (nn.BatchNorm1d((5, 3), scale_initializer=data((1, 3), 4),
                        bias_initializer=data((1, 3), 5)), data((4, 5, 3), 6), batch_norm_formula),
        (nn.BatchNorm2d((3, 4, 2), scale_initializer=data((1, 1, 2), 7),
                        bias_initializer=data((1, 1, 2), 8)), data((2, 3, 4, 2), 9),
         batch_norm_formula),
    ]  # fmt: skip
    check_layers(cases, precision, fit=True)


def test_batch_norm_running_statistics_update_in_fit_mode_only(precision):
    layer = nn.BatchNorm1d((5, 3), momentum=0.9)
    rng = np.random.default_rng(0)
    mean, var = np.zeros((1, 3)), np.ones((1, 3))
    for shift in (1.0, -3.0):
        x = rng.standard_normal((4, 5, 3)) * 2 + shift
        with facade.environ.context(fit=True):
            layer(jnp.asarray(x, FLOAT[precision]))
        mean = 0.9 * mean + 0.1 * x.mean((0, 1))[None]
        var = 0.9 * var + 0.1 * x.var((0, 1))[None]
        assert_numpy_close(layer.running_mean.value, mean, precision)
        assert_numpy_close(layer.running_var.value, var, precision)
    # Evaluation uses the running statistics and leaves them alone.
    x = rng.standard_normal((2, 5, 3))
    with facade.environ.context(fit=False):
        y = layer(jnp.asarray(x, FLOAT[precision]))
    assert_numpy_close(layer.running_mean.value, mean, precision)
    assert_numpy_close(y, (x - mean) / np.sqrt(var + 1e-5), precision)  # default affine: 1, 0
    with pytest.raises(KeyError, match="fit"):
        layer(x)


def test_batch_norm_in_jit_writes_running_statistics_back():
    layer = nn.BatchNorm0d((3,))
    x = np.random.default_rng(0).standard_normal((8, 3)) + 2.0

    @facade.transform.jit
    def step(x):
        with facade.environ.context(fit=True):
            return layer(x)

    step(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(layer.running_mean.value, 0.01 * x.mean(0), rtol=1e-5)
    step(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(layer.running_mean.value, 0.0199 * x.mean(0), rtol=1e-5)


def test_batch_norm_without_running_statistics_and_errors():
    layer = nn.BatchNorm1d((5, 3), track_running_stats=False)
    x = data((4, 5, 3))
    y = layer(x)  # batch statistics always, and no 'fit' setting needed
    np.testing.assert_allclose(
        y, batch_norm_formula(values_of(layer.states()), x), rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ValueError, match="in_size"):
        nn.BatchNorm1d((64,))
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d((5, 3), momentum=1.5)
    with pytest.raises(ValueError, match="shape"):
        with facade.environ.context(fit=True):
            nn.BatchNorm1d((5, 3))(jnp.ones((4, 5, 2)))


def test_linear_rejects_bad_arguments():
    with pytest.raises(ValueError, match="in_size"):
        nn.Linear((2, 3), (4, 5))
    with pytest.raises(ValueError, match="negative"):
        nn.Linear(-1, 2)
    with pytest.raises(TypeError, match="in_size"):
        nn.Linear("3", 2)
    with pytest.raises(TypeError, match="param_type"):
        nn.Linear(3, 2, param_type=int)
    with pytest.raises(ValueError, match="epsilon"):
        nn.LayerNorm((3,), epsilon=-1.0)
    with pytest.raises(ValueError, match="feature_axes"):
        nn.LayerNorm((3,), feature_axes=1)


# --- Embedding ---------------------------------------------------------------------------------


def test_embedding(precision):
    layer = nn.Embedding(7, 3, embedding_init=data((7, 3), 1))
    idx = jnp.array([[1, 2, 1], [6, 0, 1]])
    check_layer(layer, idx, lambda v, i: v[("weight",)][i], precision, wrt_input=False)


def test_embedding_padding_frozen_and_frequency_scaled_gradients():
    idx = jnp.array([0, 2, 2, 5, 0])
    cot = np.arange(15.0).reshape(5, 3)
    layers = {
        "plain": nn.Embedding(6, 3, embedding_init=data((6, 3))),
        "padded": nn.Embedding(6, 3, embedding_init=data((6, 3)), padding_idx=0),
        "scaled": nn.Embedding(6, 3, embedding_init=ZERO, scale_grad_by_freq=True),
        "frozen": nn.Embedding(6, 3, embedding_init=ZERO, freeze=True),
    }
    assert not np.asarray(layers["padded"].weight.value)[0].any()
    tables = {name: layer.weight for name, layer in layers.items()}

    def loss():
        return sum(jnp.sum(layer(idx) * cot) for layer in layers.values())

    grads = facade.transform.grad(loss, tables)()
    want = np.zeros((6, 3))
    np.add.at(want, np.asarray(idx), cot)
    np.testing.assert_allclose(grads["plain"], want)
    np.testing.assert_allclose(grads["padded"], np.concatenate([0 * want[:1], want[1:]]))
    counts = np.bincount(np.asarray(idx), minlength=6)
    np.testing.assert_allclose(grads["scaled"], want / np.maximum(counts, 1)[:, None])
    np.testing.assert_allclose(grads["frozen"], 0.0)


def test_embedding_max_norm_renormalises_the_rows_it_reads():
    table = jnp.array([[3.0, 4.0], [0.3, 0.4], [6.0, 8.0]])
    layer = nn.Embedding.from_pretrained(table, freeze=False, max_norm=1.0)
    out = layer(jnp.array([0, 1]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.3, 0.4]], rtol=1e-5)
    # The rows read are renormed in the table; row 2 was not read and keeps its norm.
    np.testing.assert_allclose(layer.weight.value, [[0.6, 0.8], [0.3, 0.4], [6.0, 8.0]], rtol=1e-5)


def test_embedding_errors():
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(4, 2, padding_idx=4)
    with pytest.raises(ValueError, match="max_norm"):
        nn.Embedding(4, 2, max_norm=0.0)
    with pytest.raises(TypeError, match="integers"):
        nn.Embedding(4, 2, embedding_init=ZERO)(jnp.array([0.5]))


# --- convolutions ------------------------------------------------------------------------------


def conv_formula(x, w, *, stride, padding, dilation=None, groups=1):
    """``y[b, o.., g, p] = sum_{k.., i} xp[b, o*s + k*d .., g, i] * w[k.., i, g, p]`` (1-d, 2-d).

    ``xp`` is ``x`` zero-padded ('SAME': as evenly as possible, the extra one after); the
    channels are split into ``groups`` of ``i`` inputs and ``p`` outputs each.
    """
    n = len(stride)
    dilation = dilation or (1,) * n
    kernel = w.shape[:n]
    pads = [(0, 0)] * n
    if padding == "SAME":
        pads = []
        for size, k, s, d in zip(x.shape[1:-1], kernel, stride, dilation, strict=True):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
    xp = jnp.pad(x, [(0, 0), *pads, (0, 0)])
    # For each axis, the input position read by output position o through kernel tap k.
    where = [
        np.arange((xp.shape[1 + a] - (kernel[a] - 1) * dilation[a] - 1) // stride[a] + 1)[:, None]
        * stride[a]
        + np.arange(kernel[a])[None, :] * dilation[a]
        for a in range(n)
    ]
    cin, cout = w.shape[-2], w.shape[-1]
    xg = xp.reshape(*xp.shape[:-1], groups, cin)
    wg = w.reshape(*kernel, cin, groups, cout // groups)
    if n == 1:
        patches = xg[:, where[0]]  # (b, o, k, g, i)
        y = jnp.einsum("bokgi,kigp->bogp", patches, wg)
    else:
        patches = xg[:, where[0][:, :, None, None], where[1][None, None, :, :]]  # (b,o,k,q,l,g,i)
        y = jnp.einsum("bokqlgi,kligp->boqgp", patches, wg)
    return y.reshape(*y.shape[:-2], cout)


def test_convolutions(precision):
    def weight(v):
        return param(v, "weight", "weight")

    strided = nn.Conv2d(
        (7, 6, 2), 3, (3, 2), stride=2, w_init=data((3, 2, 2, 3), 3), b_init=data((1, 1, 3), 4)
    )
    assert strided.out_size == (4, 3, 3)  # 'SAME': ceil(7 / 2), ceil(6 / 2)
    grouped = nn.Conv2d(
        (6, 7, 4),
        6,
        3,
        padding="VALID",
        groups=2,
        rhs_dilation=(1, 2),
        w_init=data((3, 3, 2, 6), 5),
    )
    assert grouped.out_size == (4, 3, 6)
    cases = [
        (
            nn.Conv1d((9, 2), 4, 3, w_init=data((3, 2, 4), 1), b_init=data((1, 4), 2)),
            data((2, 9, 2), 6),
            lambda v, x: (
                conv_formula(x, weight(v), stride=(1,), padding="SAME") + param(v, "weight", "bias")
            ),
        ),
        (
            strided,
            data((2, 7, 6, 2), 7),
            lambda v, x: (
                conv_formula(x, weight(v), stride=(2, 2), padding="SAME")
                + param(v, "weight", "bias")
            ),
        ),
        (
            grouped,
            data((2, 6, 7, 4), 8),
            lambda v, x: conv_formula(
                x, weight(v), stride=(1, 1), padding="VALID", dilation=(1, 2), groups=2
            ),
        ),
    ]
    check_layers(cases, precision)


def test_conv_without_batch_axis_and_channel_first():
    kernel, bias = data((3, 3, 2, 3), 1), data((3,), 2)
    last = nn.Conv2d((5, 5, 2), 3, 3, w_init=kernel, b_init=bias.reshape(1, 1, 3))
    first = nn.Conv2d(
        (2, 5, 5), 3, 3, w_init=kernel, b_init=bias.reshape(1, 3, 1, 1), channel_first=True
    )
    x = data((2, 5, 5, 2))
    y = np.asarray(last(x))
    np.testing.assert_allclose(np.moveaxis(first(jnp.moveaxis(x, -1, 1)), 1, -1), y, atol=1e-5)
    np.testing.assert_allclose(last(x[0]), y[0], atol=1e-6)


def test_conv_errors():
    with pytest.raises(ValueError, match="in_size"):
        nn.Conv2d((5, 5), 3, 3)
    with pytest.raises(ValueError, match="divisible"):
        nn.Conv2d((5, 5, 3), 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding"):
        nn.Conv1d((5, 3), 4, 3, padding="FULL")
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d((5, 5, 3), 4, (3, 3, 3))
    with pytest.raises(ValueError, match="shape"):
        nn.Conv1d((5, 3), 4, 3, w_init=ZERO)(jnp.ones((2, 6, 3)))


# --- Dropout -----------------------------------------------------------------------------------


def test_dropout_train_and_eval(precision):
    layer = nn.Dropout(prob=0.75)
    x = data(SAMPLE_SHAPE) + 3.0
    with facade.environ.context(fit=False):
        assert layer(x) is x or (np.asarray(layer(x)) == np.asarray(x)).all()
    with facade.environ.context(fit=True):
        y = layer(x)
        y_next = layer(x)
    assert y.dtype == FLOAT[precision]
    y, y_next, x = np.asarray(y), np.asarray(y_next), np.asarray(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.01  # 30,000 draws: the standard deviation is 0.0025
    assert (y_next != y).any()  # a new mask each call


def test_dropout_mask_comes_from_facade_random_and_broadcasts():
    layer, x = nn.Dropout(0.5), jnp.ones(SAMPLE_SHAPE)
    with facade.environ.context(fit=True):
        facade.random.seed(7)
        a = layer(x)
        facade.random.seed(7)
        b = layer(x)
        shared = np.asarray(nn.Dropout(0.5, broadcast_dims=(0,))(x))
    assert (np.asarray(a) == np.asarray(b)).all()
    assert (shared == shared[:1]).all() and (shared[0] == 0).any() and (shared[0] != 0).any()


def test_dropout_under_jit_and_grad():
    layer = nn.Dropout(0.5)
    x = jnp.ones((4, 10))

    @facade.transform.jit
    def train(x):
        with facade.environ.context(fit=True):
            return facade.transform.grad(lambda x: jnp.sum(layer(x)), argnums=0)(x)

    g1, g2 = np.asarray(train(x)), np.asarray(train(x))
    assert set(np.unique(g1)) <= {0.0, 2.0}
    assert (g1 != g2).any()  # the key State advanced inside the compiled step


def test_dropout_without_fit_setting_says_how_to_set_it():
    with pytest.raises(KeyError, match=r"environ\.context\(fit=True\)"):
        nn.Dropout(0.5)(jnp.ones(3))
    with pytest.raises(ValueError, match="prob"):
        nn.Dropout(0.0)
    with pytest.raises(TypeError, match="prob"):
        nn.Dropout("0.5")


# --- activations -----------------------------------------------------------------------------


def sigmoid(x):
    return 1 / (1 + jnp.exp(-x))


def softplus(x):
    return jnp.log1p(jnp.exp(x))


def elu(x, alpha):
    return jnp.where(x > 0, x, alpha * (jnp.exp(x) - 1))


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805

ACTIVATIONS = {
    "ReLU": (nn.ReLU, lambda x: jnp.maximum(x, 0)),
    "ReLU6": (nn.ReLU6, lambda x: jnp.clip(x, 0, 6)),
    "Sigmoid": (nn.Sigmoid, sigmoid),
    "Tanh": (nn.Tanh, lambda x: (jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) + jnp.exp(-x))),
    "SiLU": (nn.SiLU, lambda x: x * sigmoid(x)),
    "SELU": (nn.SELU, lambda x: SELU_SCALE * elu(x, SELU_ALPHA)),
    "Softplus": (nn.Softplus, softplus),
    "Softsign": (nn.Softsign, lambda x: x / (1 + jnp.abs(x))),
    "LogSigmoid": (nn.LogSigmoid, lambda x: -softplus(-x)),
    "Hardsigmoid": (nn.Hardsigmoid, lambda x: jnp.clip(x + 3, 0, 6) / 6),
    "Hardswish": (nn.Hardswish, lambda x: x * jnp.clip(x + 3, 0, 6) / 6),
    "Mish": (nn.Mish, lambda x: x * jnp.tanh(softplus(x))),
    "Identity": (nn.Identity, lambda x: x),
    "GELU": (nn.GELU, lambda x: 0.5 * x * (1 + jax.scipy.special.erf(x / jnp.sqrt(2.0)))),
    "GELU-tanh": (
        lambda: nn.GELU(approximate=True),
        lambda x: 0.5 * x * (1 + jnp.tanh(jnp.sqrt(2 / jnp.pi) * (x + 0.044715 * x**3))),
    ),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), lambda x: jnp.where(x > 0, x, 0.2 * x)),
    "ELU": (lambda: nn.ELU(0.5), lambda x: elu(x, 0.5)),
    "CELU": (
        lambda: nn.CELU(0.5),
        lambda x: jnp.maximum(x, 0) + jnp.minimum(0, 0.5 * (jnp.exp(x / 0.5) - 1)),
    ),
    "Hardtanh": (lambda: nn.Hardtanh(-0.5, 0.7), lambda x: jnp.clip(x, -0.5, 0.7)),
    "Softmax": (nn.Softmax, lambda x: jnp.exp(x) / jnp.exp(x).sum(-1, keepdims=True)),
    "LogSoftmax-dim0": (
        lambda: nn.LogSoftmax(dim=0),
        lambda x: x - jnp.log(jnp.exp(x).sum(0, keepdims=True)),
    ),
    "GLU": (nn.GLU, lambda x: x[..., :4] * sigmoid(x[..., 4:])),
}


def test_activation_modules(precision):
    # Away from the kinks (0, +-3, 6 ...), where a formula's one-sided derivative is a choice.
    x = jnp.asarray(np.linspace(-4.7, 7.3, 24).reshape(3, 8) + 0.01, FLOAT[precision])
    layers = [make() for make, _ in ACTIVATIONS.values()]
    assert all(list(layer.states()) == [] for layer in layers)
    cases = [
        (layer, x, lambda v, x, f=formula: f(x))
        for layer, (_, formula) in zip(layers, ACTIVATIONS.values(), strict=True)
    ]
    check_layers(cases, precision)


def test_activation_functions_are_jax_nn():
    assert nn.relu is jax.nn.relu and nn.softmax is jax.nn.softmax and nn.tanh is jax.nn.tanh


def test_elementwise_layers_keep_the_size_in_a_sequential():
    net = nn.Sequential(nn.Linear(4, 3, w_init=ZERO), nn.ReLU(), nn.Dropout(0.5), jnp.tanh)
    assert net.out_size == (3,)
    net = nn.Sequential(nn.Linear(4, 6, w_init=ZERO), nn.GLU())
    assert net.out_size is None  # GLU halves an axis: the size is no longer known


def test_flatten():
    x = np.arange(120.0).reshape(2, 3, 4, 5)
    assert nn.Flatten(1, -1)(x).shape == (2, 60)
    flat = nn.Flatten(0, 1, in_size=(3, 4, 5))
    assert flat.out_size == (12, 5)
    np.testing.assert_array_equal(flat(x), x.reshape(2, 12, 5))
    np.testing.assert_array_equal(flat(x[0]), x[0].reshape(12, 5))
    with pytest.raises(ValueError, match="ending in shape"):
        flat(np.ones((2, 3, 4, 6)))
    with pytest.raises(ValueError, match="start_axis"):
        nn.Flatten(2, 1, in_size=(3, 4))


# --- initializers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, variance",
    [
        (init.KaimingNormal, lambda fi, fo: 2.0 / fi),
        (init.KaimingUniform, lambda fi, fo: 2.0 / fi),
        (init.XavierNormal, lambda fi, fo: 2.0 / (fi + fo)),
        (init.XavierUniform, lambda fi, fo: 2.0 / (fi + fo)),
        (init.LecunNormal, lambda fi, fo: 1.0 / fi),
        (init.LecunUniform, lambda fi, fo: 1.0 / fi),
    ],
)
def test_variance_scaling_presets(make, variance):
    fan_in, fan_out = SAMPLE_SHAPE
    w = make(seed=0)(SAMPLE_SHAPE)
    assert w.shape == SAMPLE_SHAPE and w.dtype == jnp.float32
    w, target = np.asarray(w, np.float64), variance(fan_in, fan_out)
    # 30,000 samples: the sample variance is within 3% of the target with high probability.
    np.testing.assert_allclose(w.var(), target, rtol=0.03)
    assert abs(w.mean()) < 0.02 * math.sqrt(target)
    if "Uniform" in make.__name__:
        assert np.abs(w).max() <= math.sqrt(3 * target) * 1.0001
    else:  # truncated at two standard deviations of the underlying normal
        assert np.abs(w).max() <= 2 * math.sqrt(target) / 0.8796 * 1.001


def test_simple_initializers():
    assert (np.asarray(init.ZeroInit()((2, 3))) == 0).all()
    assert (np.asarray(init.Constant(2.5)((4,))) == 2.5).all()
    x = np.asarray(init.Normal(3.0, 0.5, seed=0)(SAMPLE_SHAPE))
    assert abs(x.mean() - 3.0) < 0.02 and abs(x.std() - 0.5) < 0.01
    u = np.asarray(init.Uniform(-1.0, 2.0, seed=0)(SAMPLE_SHAPE))
    assert u.min() >= -1.0 and u.max() < 2.0 and abs(u.mean() - 0.5) < 0.03
    t = np.asarray(init.TruncatedNormal(1.0, 2.0, lower=0.0, upper=2.0, seed=0)(SAMPLE_SHAPE))
    assert t.min() >= 0.0 and t.max() <= 2.0
    assert abs(t.mean() - 1.0) < 0.02  # Normal(1, 2) cut to [0, 2] is symmetric about 1


@pytest.mark.parametrize("shape, axis", [((2, 4, 3), 0)])
def test_orthogonal(shape, axis):
    q = np.asarray(init.Orthogonal(scale=2.0, axis=axis, seed=0)(shape), np.float64)
    cols = np.moveaxis(q, axis, -1).reshape(-1, shape[axis])  # the columns are along ``axis``
    gram = cols.T @ cols if cols.shape[0] >= cols.shape[1] else cols @ cols.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(min(cols.shape)), atol=1e-4)


def brainstate_orthogonal(key, shape, axis, scale):
    """brainstate 0.5.4's ``nn.init.Orthogonal.__call__``, step by step, from ``key``'s draw.

    Run against brainstate 0.5.4 itself (its ``Orthogonal(scale=2.0, axis=axis)(shape, rng=rs)``
    draws with ``rs.split_key()``), this gives its output for every shape tested below.
    """
    n_rows = shape[axis]
    n_cols = math.prod(shape) // n_rows
    matrix_shape = (n_rows, n_cols) if n_rows > n_cols else (n_cols, n_rows)
    q, r = jnp.linalg.qr(jax.random.normal(key, matrix_shape))
    q = q * jnp.sign(jnp.diag(r))
    if n_rows < n_cols:
        q = q.T
    q = jnp.reshape(q, (n_rows,) + tuple(np.delete(shape, axis)))
    return scale * jnp.moveaxis(q, 0, axis)


@pytest.mark.parametrize(
    "shape, axis",
    # Square matrices (brainstate's is the transpose of jax.nn.initializers.orthogonal's, so
    # a GRUCell(4, 4)'s (8, 8) gate weight started elsewhere), and non-square ones.
    [((3, 3), -1), ((4, 4), 0), ((2, 2, 4), -1), ((4, 3), -1), ((3, 4), -1), ((2, 4, 3), 0)],
)
def test_orthogonal_draws_brainstates_matrix(shape, axis):
    key = jax.random.PRNGKey(7)
    q = init.Orthogonal(scale=2.0, axis=axis)(shape, key=key)
    np.testing.assert_allclose(q, brainstate_orthogonal(key, shape, axis, 2.0), atol=1e-6)


def test_orthogonal_square_values_are_brainstates():
    # brainstate 0.5.4: nn.init.Orthogonal()((3, 3), rng=brainstate.random.RandomState(42)),
    # whose draw uses the key RandomState(42).split_key() (key data below), printed there.
    key = np.array([64467757, 2916123636], np.uint32)
    expected = [
        [0.6072, -0.6367, -0.4753],
        [-0.6651, -0.0800, -0.7425],
        [-0.4347, -0.7669, 0.4721],
    ]
    np.testing.assert_allclose(init.Orthogonal()((3, 3), key=key), expected, atol=2e-4)


def test_initializer_keys_dtype_and_seeding():
    def same(a, b):
        return bool((np.asarray(a) == np.asarray(b)).all())

    assert same(init.Normal(seed=5)(SAMPLE_SHAPE), init.Normal(seed=5)(SAMPLE_SHAPE))
    seeded = init.Normal(seed=5)
    assert not same(seeded(SAMPLE_SHAPE), seeded(SAMPLE_SHAPE))  # each call draws anew
    assert same(init.Normal()(SAMPLE_SHAPE, key=1), init.Normal()(SAMPLE_SHAPE, key=1))
    facade.random.seed(11)
    first = nn.Linear(*SAMPLE_SHAPE).weight.value["weight"]
    facade.random.seed(11)
    assert same(nn.Linear(*SAMPLE_SHAPE).weight.value["weight"], first)  # from facade.random
    with facade.environ.context(precision=64):
        assert init.Normal()(SAMPLE_SHAPE).dtype == jnp.float64
    # No State hides in an initializer kept by a module.
    layer = nn.Linear(*SAMPLE_SHAPE, w_init=init.Normal(seed=1), b_init=init.Normal(seed=2))
    assert list(layer.states()) == [("weight",)]


def test_param_helper():
    assert init.param(None, (3,)) is None
    assert init.param(0.5, (3,)) == 0.5
    assert init.param(init.ZeroInit(), 3, batch_size=2).shape == (2, 3)
    assert init.param(np.ones(3), (3,), batch_size=4).shape == (4, 3)
    assert init.param(np.ones((4, 3)), (3,), batch_size=4).shape == (4, 3)
    with pytest.raises(ValueError, match="None"):
        init.param(None, (3,), allow_none=False)
    with pytest.raises(ValueError, match="broadcast"):
        init.param(np.ones(4), (3,))
    with pytest.raises(ValueError, match="batch size"):
        init.param(np.ones((5, 3)), (3,), batch_size=4)


def test_initializer_argument_errors():
    with pytest.raises(ValueError, match="mode"):
        init.VarianceScaling(1.0, "fan_sum", "normal")
    with pytest.raises(ValueError, match="distribution"):
        init.KaimingNormal(distribution="cauchy")
    with pytest.raises(ValueError, match="scale"):
        init.Normal(scale=-1.0)
    with pytest.raises(ValueError, match="max_val"):
        init.Uniform(1.0, 0.0)
    with pytest.raises(ValueError, match="2 dimensions"):
        init.Orthogonal()((4,))
    with pytest.raises(TypeError, match="seed"):
        init.Normal(seed=1.5)
    assert repr(init.KaimingNormal()) == (
        "KaimingNormal(scale=2.0, mode='fan_in', distribution='truncated_normal', in_axis=-2, "
        "out_axis=-1)"
    )
