"""``jax.jit`` of our transforms lowers to the program of the raw JAX transform.

The lowered StableHLO text is normalised before comparison: location metadata (``loc(...)``
and ``#loc`` lines), the module's symbol name and the ``jax.result_info`` attributes (which
name results by their position in the Python output tree, which legitimately differs: we
return ``(grads, value, aux)`` where ``value_and_grad`` returns ``((value, aux), grads)``)
are removed. For the reordered outputs the ``return`` operands are compared as a set.
The op-name sequence is compared first, for a readable failure.
"""

import re

import jax
import jax.numpy as jnp
import pytest

import functional as F


def _body(text):
    """The normalised lines of the lowered module and the operands of its final return."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"\s*loc\([^()]*(\([^()]*\)[^()]*)*\)", "", line)  # loc(...) nested once
        line = re.sub(r"\{jax\.result_info = [^}]*\}", "", line)
        line = re.sub(r"^module @\S+", "module", line)
        line = line.rstrip()
        if not line or line.startswith("#loc"):
            continue
        lines.append(line)
    return lines


def _ops(lines):
    return [m.group(1) for line in lines for m in [re.search(r"= (\w+\.\w+)", line)] if m]


def _split_return(lines):
    """(lines without the main function's return, the returned (operand, type) pairs)."""
    rets = [i for i, line in enumerate(lines) if line.strip().startswith("return ")]
    i = rets[-1]
    operands, types = lines[i].strip()[len("return "):].split(" : ")
    pairs = sorted(zip(operands.split(", "), re.split(r", (?=tensor)", types), strict=True))
    rest = [line for j, line in enumerate(lines) if j != i and not line.lstrip().startswith(
        "func.func public @main")]
    return rest, pairs


def _assert_same_program(ours, theirs, *, reordered_outputs=False):
    a, b = _body(ours), _body(theirs)
    assert _ops(a), "no stablehlo ops found: the normalisation is broken"
    assert _ops(a) == _ops(b)
    if reordered_outputs:
        (a, a_ret), (b, b_ret) = _split_return(a), _split_return(b)
        assert a_ret == b_ret
    assert a == b


def _sin_sq(x):
    return jnp.sum(jnp.sin(x) ** 2)


def _mlp_loss(params, x, y):
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    pred = h @ params["w2"]
    return jnp.mean((pred - y) ** 2)


MLP_ARGS = (
    {"w1": jnp.ones((3, 4)), "b1": jnp.zeros(4), "w2": jnp.ones((4, 1))},
    jnp.ones((5, 3)),
    jnp.zeros((5, 1)),
)


@pytest.mark.parametrize(
    ("fun", "args", "argnums"),
    [
        pytest.param(_sin_sq, (jnp.arange(4.0),), 0, id="sin_sq"),
        pytest.param(_mlp_loss, MLP_ARGS, 0, id="mlp-params"),
        pytest.param(_mlp_loss, MLP_ARGS, (0, 1), id="mlp-params-and-x"),
    ],
)
def test_grad_lowers_like_jax_grad(fun, args, argnums):
    ours = jax.jit(F.grad(fun, argnums)).lower(*args).as_text()
    theirs = jax.jit(jax.grad(fun, argnums)).lower(*args).as_text()
    _assert_same_program(ours, theirs)


@pytest.mark.parametrize(
    ("ours", "raw", "fun"),
    [
        pytest.param(F.jacrev, jax.jacrev, jnp.tanh, id="jacrev"),
        pytest.param(F.jacfwd, jax.jacfwd, jnp.tanh, id="jacfwd"),
        pytest.param(F.hessian, jax.hessian, _sin_sq, id="hessian"),
    ],
)
def test_jacobians_lower_like_jax(ours, raw, fun):
    x = jnp.arange(3.0)
    _assert_same_program(
        jax.jit(ours(fun)).lower(x).as_text(), jax.jit(raw(fun)).lower(x).as_text()
    )


def test_grad_with_aux_and_value_lowers_like_value_and_grad():
    def loss(params, x, y):
        value = _mlp_loss(params, x, y)
        return value, {"mean_x": jnp.mean(x), "w_norm": jnp.sum(params["w1"] ** 2)}

    ours = jax.jit(F.grad(loss, has_aux=True, return_value=True)).lower(*MLP_ARGS).as_text()
    theirs = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(*MLP_ARGS).as_text()
    _assert_same_program(ours, theirs, reordered_outputs=True)


def test_debug_info_locations_are_normalised_away():
    args = (jnp.arange(4.0),)
    ours = jax.jit(F.grad(_sin_sq)).lower(*args).as_text(debug_info=True)
    theirs = jax.jit(jax.grad(_sin_sq)).lower(*args).as_text(debug_info=True)
    assert "loc(" in ours  # the metadata is really there, and differs ...
    _assert_same_program(ours, theirs)  # ... but not the program


def test_comparison_detects_a_different_program():
    """The normalisation must not hide real differences."""
    x = jnp.arange(4.0)
    ours = jax.jit(F.grad(_sin_sq)).lower(x).as_text()
    other = jax.jit(jax.grad(lambda x: jnp.sum(jnp.cos(x) ** 2))).lower(x).as_text()
    with pytest.raises(AssertionError):
        _assert_same_program(ours, other)
    scaled = jax.jit(jax.grad(lambda x: 2.0 * _sin_sq(x))).lower(x).as_text()
    with pytest.raises(AssertionError):
        _assert_same_program(ours, scaled)
