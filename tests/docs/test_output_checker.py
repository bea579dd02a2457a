"""The documented outputs' checker: floating-point noise passes, a wrong output does not."""

from __future__ import annotations

import doctest

import pytest
from docs_testing import FLAGS, NumericOutputChecker, numbers_close, skeleton


def check(want: str, got: str) -> bool:
    return NumericOutputChecker().check_output(want + "\n", got + "\n", FLAGS)


@pytest.mark.parametrize(
    ("want", "got"),
    [
        # The report of issue 19: the same page on another machine of the same kind.
        ("functional + adam: loss 0.0005", "functional + adam: loss 0.0006"),
        ("functional + adam: loss 0.0006", "functional + adam: loss 0.0005"),
        ("weight 2.89, bias 0.93", "weight 2.90, bias 0.92"),
        ("w=3.000 b=1.000", "w=2.999 b=1.000"),
        # numpy at full precision: a few float32 ulps off, and a zero that came out negative
        # (which changes numpy's padding of the whole array).
        (
            "[[2.        1.       ]\n [0.5403023 0.       ]]",
            "[[2.        1.       ]\n [0.5403024 -0.       ]]",
        ),
        ("[0.7864 0.42  ]", "[0.7864 0.4201]"),
        ("1.2e-05", "1.3e-05"),
        # Text around the numbers still follows doctest's rules (an ellipsis that swallowed a
        # number would leave the numbers unpaired: such an output must match exactly).
        ("State 's' ... loss 0.0121", "State 's' (created in a loop) loss 0.0122"),
    ],
)
def test_noise_is_accepted(want: str, got: str) -> None:
    assert not doctest.OutputChecker().check_output(want + "\n", got + "\n", FLAGS)  # plain doctest
    assert check(want, got)


@pytest.mark.parametrize(
    ("want", "got"),
    [
        ("functional + adam: loss 0.0005", "functional + adam: loss 0.0008"),  # three digits off
        ("functional + adam: loss 0.0005", "functional + adam: loss 0.0121"),
        ("functional + adam: loss 0.0005", "facade + adam: loss 0.0005x"),  # text differs
        ("functional + adam: loss 0.0005", "functional + adam: loss 0.0005 0.0005"),  # extra number
        ("True 200", "True 201"),  # integers are exact
        ("(3, 2)", "(3, 3)"),
        ("[2. 2. 2.]", "[3. 2. 2.]"),  # numpy's "2." rounded nothing
        ("5.5", "5.7"),
        ("0.5403023", "0.5404"),
        ("float32[1, 16]", "float64[1, 16]"),  # digits inside a word are text
        ("loss 0.0005", "loss -0.0005x"),
    ],
)
def test_a_wrong_output_is_rejected(want: str, got: str) -> None:
    assert not check(want, got)


def test_numbers_close() -> None:
    assert numbers_close("0.0005", "0.0006") and not numbers_close("0.0005", "0.00061")
    assert numbers_close("-0.", "0.") and numbers_close("100.0", "100.00999")
    assert not numbers_close("3", "3.0001") and not numbers_close("10", "11")
    assert skeleton("[ 0.5 -0.  ]") == skeleton("[0.5 0.]") == "[0 0]"
