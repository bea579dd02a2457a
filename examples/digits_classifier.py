"""Train a small convolutional classifier on scikit-learn's handwritten digits, facade-style.

    python examples/digits_classifier.py [--quick] [--epochs N] [--out PATH]

The model is built from ``facade.nn`` layers (``Conv2d``, ``ReLU``, ``Flatten``, ``Dropout``,
``Linear`` in a ``Sequential``), as a brainstate user would write it, and trained with
``facade.optim.Adam`` (optax underneath): each training step (gradients through
``facade.transform.grad``, the Adam update, dropout's random key) is one program compiled by
``facade.transform.jit``, which writes the parameters and the optimizer state back. The data set
ships with scikit-learn (1,797 8x8 images, no download); a quarter is held out for testing.

Prints the held-out accuracy and saves the learning curves as a PNG. Needs the ``examples``
extra (optax, scikit-learn, matplotlib, tqdm).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import facade as brainstate

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

BATCH = 64


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images as (n, 8, 8, 1) floats in [0, 1], labels 0-9; a stratified 75/25 split."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(
        images, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )


def make_model() -> brainstate.nn.Module:
    nn = brainstate.nn
    return nn.Sequential(
        nn.Conv2d((8, 8, 1), 16, 3, b_init=nn.init.ZeroInit()),
        nn.ReLU(),
        nn.Conv2d((8, 8, 16), 32, 3, stride=2, b_init=nn.init.ZeroInit()),  # -> (4, 4, 32)
        nn.ReLU(),
        nn.Flatten(in_size=(4, 4, 32)),
        nn.Dropout(prob=0.8),  # keep 80% of the features while training
        nn.Linear(4 * 4 * 32, 10),
    )


def train(
    model, x_train, y_train, x_test, y_test, epochs: int, max_steps: int | None, lr: float = 3e-3
):
    params = model.states(brainstate.ParamState)
    optimizer = brainstate.optim.Adam(lr=lr)
    optimizer.register_trainable_weights(params)

    def loss_fn(x, y):
        logits = model(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @brainstate.transform.jit
    def train_step(x, y):
        with brainstate.environ.context(fit=True):  # dropout on
            grads, loss = brainstate.transform.grad(loss_fn, params, return_value=True)(x, y)
        optimizer.update(grads)
        return loss

    @brainstate.transform.jit
    def evaluate(x, y):
        with brainstate.environ.context(fit=False):  # dropout off
            logits = model(x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, (logits.argmax(-1) == y).mean()

    return fit(train_step, evaluate, x_train, y_train, x_test, y_test, epochs, max_steps)


def fit(train_step, evaluate, x_train, y_train, x_test, y_test, epochs: int, max_steps):
    """Shuffled mini-batches through ``train_step``, ``evaluate`` on the held-out set per epoch."""
    rng = np.random.default_rng(0)
    steps_per_epoch = len(x_train) // BATCH
    total = epochs * steps_per_epoch if max_steps is None else max_steps
    history = {"step": [], "train_loss": [], "epoch_step": [], "test_loss": [], "test_acc": []}
    step = 0
    with tqdm(total=total, desc="training", unit="step") as bar:
        while step < total:
            order = rng.permutation(len(x_train))
            for start in range(0, steps_per_epoch * BATCH, BATCH):
                batch = order[start : start + BATCH]
                loss = float(train_step(x_train[batch], y_train[batch]))
                history["step"].append(step)
                history["train_loss"].append(loss)
                step += 1
                bar.update()
                bar.set_postfix(loss=f"{loss:.3f}")
                if step == total:
                    break
            test_loss, test_acc = evaluate(x_test, y_test)
            history["epoch_step"].append(step)
            history["test_loss"].append(float(test_loss))
            history["test_acc"].append(float(test_acc))
    return history


def plot(history: dict, path: Path, title: str) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(history["step"], history["train_loss"], alpha=0.4, label="training batches")
    left.plot(history["epoch_step"], history["test_loss"], "o-", label="held-out set")
    left.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="Loss")
    left.legend()
    right.plot(history["epoch_step"], history["test_acc"], "o-", color="C1")
    right.set(xlabel="step", ylabel="accuracy", ylim=(0, 1), title="Held-out accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("digits_learning_curves.png"))
    args = parser.parse_args()

    brainstate.random.seed(0)  # the initial weights and the dropout masks
    x_train, x_test, y_train, y_test = (jnp.asarray(a) for a in load_data())
    x_train, y_train = np.asarray(x_train), np.asarray(y_train)  # batches are sliced on the host
    model = make_model()
    print(f"{len(x_train)} training and {len(x_test)} held-out images; model:\n{model}")
    history = train(
        model, x_train, y_train, x_test, y_test, args.epochs, max_steps=20 if args.quick else None
    )
    accuracy = history["test_acc"][-1]
    print(
        f"held-out accuracy: {accuracy:.4f} ({len(x_test)} images, {history['step'][-1] + 1} steps)"
    )
    title = "facade.nn conv net on scikit-learn's digits, Adam under facade.transform.jit"
    plot(history, args.out, title)
    print(f"Learning curves saved to {args.out.resolve()}")
    if not args.quick:
        assert accuracy > 0.9, "the classifier should reach more than 90% on held-out digits"


if __name__ == "__main__":
    main()
