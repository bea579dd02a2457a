"""``get_unique_name``: per-type counters for default object names (``Linear0``, ``Linear1``)."""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict

__all__ = ["get_unique_name"]

_lock = threading.Lock()
_counters: defaultdict[str, itertools.count] = defaultdict(itertools.count)


def get_unique_name(type_: str, prefix: str = "") -> str:
    """``prefix + type_ + n`` with ``n`` counting the calls for ``type_`` (from 0, per process).

    Example:
        >>> from facade.util import get_unique_name
        >>> a, b = get_unique_name("DocExample"), get_unique_name("DocExample", "x")
        >>> a, b
        ('DocExample0', 'xDocExample1')
    """
    with _lock:
        n = next(_counters[type_])
    return f"{prefix}{type_}{n}"
