"""``DotDict``: a dict whose keys are also attributes, nested dicts included."""

from __future__ import annotations

import copy as _copy
from typing import Any

import jax

__all__ = ["DotDict"]


def _wrap(value: Any) -> Any:
    """Plain dicts (also inside lists and tuples) become DotDicts, as brainstate converts them."""
    if isinstance(value, dict) and not isinstance(value, DotDict):
        return DotDict(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(_wrap(v) for v in value)
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, DotDict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(_unwrap(v) for v in value)
    return value


@jax.tree_util.register_pytree_with_keys_class
class DotDict(dict):
    """A dict with attribute access to its keys: ``cfg.model.layers`` is ``cfg['model']['layers']``.

    Nested dicts (also inside lists) are converted to DotDicts when stored. ``update`` merges
    nested dicts recursively. A missing attribute raises ``AttributeError``; setting an attribute
    that names a dict method (``keys``, ``items``, ...) raises ``AttributeError`` too. A JAX pytree
    (its values are the children, keys in insertion order).

    Example:
        >>> from facade.util import DotDict
        >>> cfg = DotDict({"model": {"layers": 3}})
        >>> cfg.model.units = 128
        >>> cfg.model.layers, cfg["model"]["units"]
        (3, 128)
        >>> cfg.update({"model": {"layers": 4}}); cfg.to_dict()
        {'model': {'layers': 4, 'units': 128}}
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, _wrap(value))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"'DotDict' object has no attribute '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(dict, name):
            raise AttributeError(
                f"Cannot set attribute '{name}': it's a built-in method of DotDict"
            )
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"'DotDict' object has no attribute '{name}'") from None

    def __dir__(self) -> list[str]:
        return sorted({*dir(type(self)), *(k for k in self if isinstance(k, str))})

    def __repr__(self) -> str:
        return f"DotDict({dict.__repr__(self)})"

    # Pickling goes through the dict items; the default would call __getattr__ for __getstate__.
    def __getstate__(self) -> dict:
        return dict(self)

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            self[k] = v

    def __reduce__(self) -> tuple:
        return (type(self), (dict(self),))

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(key, default)

    def copy(self) -> DotDict:
        """A shallow copy (nested DotDicts shared)."""
        new = DotDict()
        dict.update(new, self)
        return new

    def deepcopy(self) -> DotDict:
        """A deep copy."""
        return _copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts all the way down (also inside lists and tuples)."""
        return _unwrap(self)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Update from a mapping or keywords, merging nested dicts key by key."""
        for k, v in dict(*args, **kwargs).items():
            current = self.get(k)
            if isinstance(current, DotDict) and isinstance(v, dict):
                current.update(v)
            else:
                self[k] = v

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def tree_flatten(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """Children are the values, aux data the keys (insertion order)."""
        return tuple(self.values()), tuple(self.keys())

    def tree_flatten_with_keys(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return tuple((jax.tree_util.DictKey(k), v) for k, v in self.items()), tuple(self.keys())

    @classmethod
    def tree_unflatten(cls, keys: tuple[Any, ...], values: tuple[Any, ...]) -> DotDict:
        new = cls.__new__(cls)
        # Straight into the dict: children may be tracers or None placeholders, not to be wrapped.
        dict.update(new, zip(keys, values, strict=True))
        return new
