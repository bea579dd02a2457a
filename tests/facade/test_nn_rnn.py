"""Recurrent cells against explicit jax.numpy formulas over several steps, float32/64, and their
hidden states (init_state / reset_state / init_all_states)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from nn_testing import check_layers, data
from nn_testing import precision as precision  # the fixture

import facade
from facade import nn
from facade.nn import init

ZERO = init.ZeroInit()
STEPS, BATCH, N_IN, N_OUT = 2, 2, 3, 4  # two steps: the second reads the first's state


class Unroll(nn.Module):
    """Run ``cell`` over the leading (time) axis of ``xs``; stack the hidden states."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def update(self, xs):
        return jnp.stack([self.cell(x) for x in xs])


def linear(v, name, z):
    """``z @ W + b`` of the cell's Linear ``name`` (paths as seen from the Unroll module)."""
    params = v[("cell", name, "weight")]
    return z @ params["weight"] + params["bias"]


def sigmoid(z):
    return 1 / (1 + jnp.exp(-z))


def vanilla_formula(h0):
    def run(v, xs):
        h, hs = h0, []
        for x in xs:  # h = relu(W [x, h] + b)
            h = jnp.maximum(linear(v, "W", jnp.concatenate([x, h], -1)), 0)
            hs.append(h)
        return jnp.stack(hs)

    return run


def gru_formula(h0):
    def run(v, xs):
        h, hs = h0, []
        for x in xs:
            gates = sigmoid(linear(v, "Wrz", jnp.concatenate([x, h], -1)))
            r, z = gates[..., :N_OUT], gates[..., N_OUT:]
            candidate = jnp.tanh(linear(v, "Wh", jnp.concatenate([x, r * h], -1)))
            h = (1 - z) * h + z * candidate
            hs.append(h)
        return jnp.stack(hs)

    return run


def lstm_formula(h0, c0):
    def run(v, xs):
        h, c, hs = h0, c0, []
        for x in xs:
            z = linear(v, "W", jnp.concatenate([x, h], -1))
            i, g, f, o = (z[..., k * N_OUT : (k + 1) * N_OUT] for k in range(4))
            c = sigmoid(f + 1.0) * c + sigmoid(i) * jnp.tanh(g)  # +1: remember at first
            h = sigmoid(o) * jnp.tanh(c)
            hs.append(h)
        return jnp.stack(hs)

    return run


def weights(n_out_total, seed):
    """Explicit (w_init, b_init) arrays for a Linear over [x, h]."""
    return dict(
        w_init=data((N_IN + N_OUT, n_out_total), seed), b_init=data((n_out_total,), seed + 1)
    )


def test_cells_against_formulas(precision):
    h0 = data((N_OUT,), 1)  # a non-zero initial state, so that its path into h matters
    vanilla = nn.ValinaRNNCell(N_IN, N_OUT, state_init=h0, **weights(N_OUT, 2))
    # GRUCell takes one w_init and one b_init for both of its Linear layers: give them distinct
    # values through their states, so that mixing Wrz and Wh up would show.
    gru = nn.GRUCell(N_IN, N_OUT, state_init=h0, w_init=ZERO)
    gru.Wrz.weight.value = {"weight": data((N_IN + N_OUT, 2 * N_OUT), 4), "bias": data((8,), 5)}
    gru.Wh.weight.value = {"weight": data((N_IN + N_OUT, N_OUT), 6), "bias": data((N_OUT,), 7)}
    lstm = nn.LSTMCell(N_IN, N_OUT, state_init=h0, **weights(4 * N_OUT, 8))
    cells = [vanilla, gru, lstm]
    nn.init_all_states(cells, batch_size=BATCH)
    h0b = jnp.broadcast_to(h0, (BATCH, N_OUT))
    cases = [
        (Unroll(vanilla), data((STEPS, BATCH, N_IN), 10), vanilla_formula(h0b)),
        (Unroll(gru), data((STEPS, BATCH, N_IN), 11), gru_formula(h0b)),
        (Unroll(lstm), data((STEPS, BATCH, N_IN), 12), lstm_formula(h0b, h0b)),
    ]
    check_layers(cases, precision)
    # The hidden states were written back by the gradient transform: the last step's.
    assert vanilla.h.value.shape == (BATCH, N_OUT)
    assert not np.allclose(np.asarray(vanilla.h.value), np.asarray(h0b))


def test_hidden_state_init_and_reset():
    cell = nn.LSTMCell(N_IN, N_OUT, w_init=ZERO, state_init=init.Constant(0.5))
    with pytest.raises(AttributeError, match="init_all_states"):
        cell(jnp.ones((BATCH, N_IN)))
    cell.init_state(batch_size=BATCH)
    assert isinstance(cell.h, facade.HiddenState) and isinstance(cell.c, facade.HiddenState)
    assert cell.h.value.shape == cell.c.value.shape == (BATCH, N_OUT)
    assert (np.asarray(cell.c.value) == 0.5).all()
    h, c = cell.h, cell.c
    cell(jnp.ones((BATCH, N_IN)))
    assert not (np.asarray(cell.c.value) == 0.5).all()
    cell.reset_state(batch_size=5)
    assert cell.h is h and cell.c is c  # the same States: compiled functions stay valid
    assert cell.c.value.shape == (5, N_OUT) and (np.asarray(cell.c.value) == 0.5).all()
    cell.init_state()
    assert cell.h.value.shape == (N_OUT,) and cell(jnp.ones(N_IN)).shape == (N_OUT,)


def test_activation_by_name_or_callable():
    x = jnp.ones((1, N_IN))
    a = nn.init_all_states(nn.ValinaRNNCell(N_IN, N_OUT, w_init=-jnp.ones((7, 4))), batch_size=1)
    assert (np.asarray(a(x)) == 0).all()  # relu of negative pre-activations
    b = nn.ValinaRNNCell(N_IN, N_OUT, w_init=-jnp.ones((7, 4)), activation="tanh")
    nn.init_all_states(b, batch_size=1)
    np.testing.assert_allclose(b(x), np.tanh(-3.0) * np.ones((1, N_OUT)), rtol=1e-6)
    c = nn.init_all_states(
        nn.GRUCell(N_IN, N_OUT, activation=jax.nn.relu, w_init=ZERO), batch_size=1
    )
    assert c.activation is jax.nn.relu
    with pytest.raises(ValueError, match="activation"):
        nn.GRUCell(N_IN, N_OUT, activation="not_an_activation")
    with pytest.raises(ValueError, match="activation"):
        nn.LSTMCell(N_IN, N_OUT, activation="Linear")  # a class, not a function
    with pytest.raises(ValueError, match="num_out"):
        nn.GRUCell(N_IN, 0)


def test_cell_in_for_loop_matches_a_python_loop():
    cell = nn.GRUCell(N_IN, N_OUT, w_init=ZERO)
    cell.Wrz.weight.value = {"weight": data((N_IN + N_OUT, 2 * N_OUT), 1), "bias": data((8,), 2)}
    cell.Wh.weight.value = {"weight": data((N_IN + N_OUT, N_OUT), 3), "bias": data((N_OUT,), 4)}
    xs = data((STEPS, BATCH, N_IN), 4)
    nn.init_all_states(cell, batch_size=BATCH)
    looped = np.stack([np.asarray(cell(x)) for x in xs])
    nn.reset_all_states(cell, batch_size=BATCH)
    scanned = facade.transform.for_loop(cell, xs)
    np.testing.assert_allclose(scanned, looped, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cell.h.value, looped[-1], rtol=1e-5, atol=1e-6)
