"""stategrad: state-aware automatic differentiation for JAX.

The distribution ``stategrad`` ships two packages, imported on their own:

* ``functional`` (``import functional as F``): pure transforms over explicit pytrees;
* ``facade`` (``import facade as brainstate``): the stateful, brainstate-compatible layer.

This package only reports the installed version.

Example:
    >>> import stategrad
    >>> isinstance(stategrad.__version__, str)
    True
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("stategrad")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
