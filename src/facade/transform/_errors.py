"""The error a transform raises for a wrong argument or a wrong function.

``TransformArgumentError`` is both a ``TypeError`` and a ``ValueError``: brainstate raises one
of them where JAX (and the facade's own docs) raise the other (a loop body returning the wrong
structure, a bool ``base``, a ``cond`` predicate of None), so code written for either catches it.
``functional``'s argnums errors do the same.
"""

from __future__ import annotations


class TransformArgumentError(TypeError, ValueError):
    """A transform's argument (or the function given to it) is not what the transform needs."""


__all__ = ["TransformArgumentError"]
