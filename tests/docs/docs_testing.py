"""The output checker of the documentation tests (imported by basename, as tests/ has no packages).

A documented output is compared as doctest compares it (``ELLIPSIS``, ``NORMALIZE_WHITESPACE``),
except that a number may carry floating-point noise. The same program gives slightly different
floats on another CPU (another vector width, FMA or not, another XLA build): a loss printed at
four decimals that sits near a rounding boundary reads ``0.0005`` on one machine and ``0.0006`` on
the next. So when the exact comparison fails, the checker compares again with every number of
both texts taken out:

* the texts around the numbers must agree exactly as before (doctest's rules);
* there must be as many numbers on both sides (an ``...`` that swallows numbers therefore gets no
  tolerance: such an output must match exactly);
* an integer (``200``, a shape, an index) must be the same integer;
* a float may be off by one unit in the last digit the documentation prints (the value sat on a
  rounding boundary; pytest's ``NUMBER`` option allows the same) or by ``RTOL`` of its value (a
  print at full precision, such as numpy's eight digits). ``-0.`` equals ``0.``.

A value that is unstable beyond that (a loss at the end of a chaotic optimisation, for one) must
not be printed as a number: print a bound or a comparison instead.
"""

from __future__ import annotations

import doctest
import re

RTOL = 1e-4
# A number not glued to a word or another number: not the 32 of float32, not 0.5.4's 4.
NUMBER = re.compile(r"(?<![\w.])[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?(?!\w)")
PLACEHOLDER = "0"


def last_digit(text: str) -> float:
    """One unit in the last printed digit of a float literal (0 for ``2.``: nothing rounded)."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    if decimals == 0:
        return 0.0
    return 10.0 ** (int(exponent or 0) - decimals)


def numbers_close(want: str, got: str) -> bool:
    """Whether ``got`` is ``want`` up to floating-point noise (see the module's docstring)."""
    if not re.search(r"[.eE]", want):  # an integer is exact
        return want.lstrip("+") == got.lstrip("+")
    w, g = float(want), float(got)
    tolerance = max(last_digit(want), RTOL * max(abs(w), abs(g)))
    return abs(w - g) <= tolerance * (1 + 1e-9)  # 0.0006 - 0.0005 is 1.0000000000000005e-4


def skeleton(text: str) -> str:
    """``text`` with every number replaced, and numpy's padding inside brackets removed.

    numpy pads the elements of an array to one width, so a noisier element (``-0.`` for
    ``0.``, ``0.42000002`` for ``0.42``) changes the spaces around the others.
    """
    text = NUMBER.sub(PLACEHOLDER, text)
    return re.sub(r"([\[(])[ \t]+|[ \t]+([\])])", r"\1\2", text)


class NumericOutputChecker(doctest.OutputChecker):
    """doctest's checker, with numbers compared up to floating-point noise."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        if super().check_output(want, got, optionflags):
            return True
        wants, gots = NUMBER.findall(want), NUMBER.findall(got)
        if len(wants) != len(gots) or not all(map(numbers_close, wants, gots)):
            return False
        return super().check_output(skeleton(want), skeleton(got), optionflags)


FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
