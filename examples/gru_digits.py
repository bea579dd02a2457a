"""A GRU reads each digit image row by row, through ``for_loop``, and is trained by BPTT.

    python examples/gru_digits.py [--quick] [--epochs N] [--out PATH]

Each 8x8 image of scikit-learn's bundled handwritten digits (no download) is a sequence of 8
rows of 8 pixels. A ``facade.nn.GRUCell`` steps through the rows; its hidden state is a
``HiddenState`` sized by ``nn.init_all_states(model, batch_size=...)``, written at every step
inside ``facade.transform.for_loop`` and carried from row to row. A ``Linear`` readout of the
last hidden state gives the class. ``facade.transform.grad`` differentiates through the loop
(backpropagation through time) and ``facade.transform.jit`` compiles the whole training step,
gradients and Adam update included, into one program.

Before training, the gradient through ``for_loop`` is checked against the same model stepped
by a Python loop (no loop transform, every row unrolled). Prints the held-out accuracy and saves
the learning curves as a PNG. Needs the ``examples`` extra (scikit-learn, matplotlib, tqdm).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

# The data, training loop and figure of the conv-net example (its fit=True only turns dropout on).
from digits_classifier import BATCH, load_data, plot, train

import facade as brainstate

nn = brainstate.nn
HIDDEN = 64


class RowReader(nn.Module):
    """GRU over the image's rows, then a linear readout of the last hidden state."""

    def __init__(self, n_hidden: int = HIDDEN):
        super().__init__()
        self.cell = nn.GRUCell(num_in=8, num_out=n_hidden)
        self.readout = nn.Linear(n_hidden, 10)

    def update(self, images, unrolled: bool = False):
        rows = jnp.swapaxes(images, 0, 1)  # (8 rows, batch, 8 pixels): time first
        # h = 0 for this batch: the same HiddenState, so this works inside jit and grad too
        # (init_all_states would create a new State there, local to the trace).
        nn.reset_all_states(self, batch_size=images.shape[0])
        if unrolled:  # the reference: a Python loop, one cell call per row
            for row in rows:
                self.cell(row)
        else:
            brainstate.transform.for_loop(self.cell, rows)
        return self.readout(self.cell.h.value)


def check_bptt(model, params, x, y) -> None:
    """The gradient through for_loop equals the one through the unrolled Python loop."""

    def loss(unrolled):
        logits = model(x, unrolled=unrolled)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    looped = brainstate.transform.grad(lambda: loss(False), params)()
    unrolled = brainstate.transform.grad(lambda: loss(True), params)()
    check = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # noqa: E731
    jax.tree.map(check, looped, unrolled)
    assert model.cell.h.value.shape == (x.shape[0], HIDDEN)
    print("BPTT gradient through for_loop matches the unrolled loop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("gru_digits_learning_curves.png"))
    args = parser.parse_args()

    brainstate.random.seed(0)  # the initial weights
    x_train, x_test, y_train, y_test = load_data()
    x_train, x_test = x_train[..., 0], x_test[..., 0]  # rows of pixels: no channel axis
    model = RowReader()
    nn.init_all_states(model, batch_size=BATCH)  # creates the cell's HiddenState h
    params = model.states(brainstate.ParamState)
    print(f"{len(x_train)} training and {len(x_test)} held-out images; model:\n{model}")
    check_bptt(model, params, jnp.asarray(x_train[:16]), jnp.asarray(y_train[:16]))

    history = train(
        model, x_train, y_train, jnp.asarray(x_test), jnp.asarray(y_test), args.epochs,
        max_steps=20 if args.quick else None, lr=1e-2,
    )  # fmt: skip
    accuracy = history["test_acc"][-1]
    print(
        f"held-out accuracy: {accuracy:.4f} ({len(x_test)} images, {history['step'][-1] + 1} steps)"
    )
    print(f"hidden state after the last batch: {tuple(model.cell.h.value.shape)}")
    if not args.quick:
        assert accuracy > 0.9, "the GRU should reach more than 90% on held-out digits"
    title = "GRUCell over image rows with for_loop, Adam under facade.transform.jit"
    plot(history, args.out, title)
    print(f"Learning curves saved to {args.out}")


if __name__ == "__main__":
    jax.config.update("jax_default_matmul_precision", "highest")  # the BPTT check compares
    main()
