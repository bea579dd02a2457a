"""brainstate's ``util`` namespace, as far as the facade provides it: ``util.filter``.

``brainstate.util.filter.OfType(brainstate.ParamState)`` runs as written after
``import facade as brainstate``; the filters are those of ``facade.filter``.
"""

from . import filter

__all__ = ["filter"]
