"""``catch_new_states``: collect (and tag) the States created inside a ``with`` block.

A catcher is told of every State created on its thread while its block is open: ``State.__init__``
calls ``append`` on each open catcher (the thread-local list ``_state._local.catchers``), once per
creation and never on a read or write. Frames (``Frame.created``) cannot serve here: they exist
only inside a trace, and pushing one for a plain block would divert every write in it.

A State created inside a transform run in the block (deeper in the trace frames than the
block) is held weakly: if the transform keeps it local, it dies with the trace and leaves the
catcher (the facade refuses a trace whose local State outlives it, and its value would only be a
shape); if the transform writes it out (``vmap_new_states``, ``eval_shape``), whoever keeps it
keeps it in the catcher too.

A tag goes into the State's ``metadata["tag"]`` (the facade's State has no ``tag`` attribute):
the tag itself when the State had none, else a set of its tags (brainstate keeps a set in
``State.tag`` always).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._filters import Nothing, to_predicate
from .._state import State, _local

__all__ = ["NewStateCatcher", "catch_new_states"]


def _tags(state: State) -> set[str]:
    """The tags in ``state.metadata["tag"]`` (a string, a collection of strings, or none)."""
    tag = state.metadata.get("tag")
    if tag is None:
        return set()
    return {tag} if isinstance(tag, str) else set(tag)


def _add_tag(state: State, tag: str) -> None:
    """Add ``tag`` to ``state``'s tags (also ``vmap_new_states``' ``state_tag``)."""
    tags = _tags(state)
    if tag in tags:
        return
    # A fresh set: a list or set the user passed as ``tag=`` is not mutated behind their back.
    state.metadata["tag"] = tag if not tags else {*tags, tag}


def _probe_depth() -> int:
    # How many ``vmap_new_states`` probes run now; States created in one are thrown away.
    # (Imported here: the transforms import this module's ``_add_tag``.)
    from ..transform import _mapping

    return getattr(_mapping._probe_depth, "n", 0)


def _resolve(entry: State | weakref.ref[State]) -> State | None:
    return entry() if isinstance(entry, weakref.ref) else entry


class NewStateCatcher:
    """The States created while a :func:`catch_new_states` block is open, in creation order.

    Args:
        state_tag: added to the tags of every State caught (``metadata["tag"]``); None adds none.
        state_to_exclude: a filter (a State class, a ``facade.util.filter`` filter, a callable
            ``(path, state) -> bool``, ...) of the States not to catch; they keep no tag from it.

    Example:
        >>> import facade
        >>> with facade.catch_new_states("built") as catcher:
        ...     s = facade.State(1.0)
        >>> len(catcher), catcher[0] is s, s.metadata["tag"]
        (1, True, 'built')
    """

    def __init__(self, state_tag: str | None = None, state_to_exclude: Any = None):
        if state_tag is not None and not isinstance(state_tag, str):
            raise TypeError(f"catch_new_states: state_tag must be a str or None, got {state_tag!r}")
        self.state_tag = state_tag
        self.state_to_exclude = Nothing() if state_to_exclude is None else state_to_exclude
        # brainstate calls the filter as given (a State class there creates a State and recurses
        # without end); a filter of any form the facade accepts works here.
        self._exclude = to_predicate(self.state_to_exclude)
        # Creation order; a State held directly, or a weak reference to one created in a deeper
        # trace. ``_by_id`` finds an entry for the check "caught already" (the entry is compared
        # by identity: a dead State's id may be reused by a new one).
        self._entries: list[State | weakref.ref[State]] = []
        self._by_id: dict[int, State | weakref.ref[State]] = {}
        self._depth = len(_local.frames)
        self._probe_depth = _probe_depth()

    def append(self, state: State) -> None:
        """Catch ``state`` (once) and tag it, unless the filter excludes it."""
        entry = self._by_id.get(id(state))
        if entry is not None and _resolve(entry) is state:
            return
        if self._exclude((), state):
            return
        if _probe_depth() > self._probe_depth:
            # Created in the probe of a ``vmap_new_states`` opened inside this block: that pass
            # is repeated for real, and only the States of the real pass are kept.
            return
        entry = weakref.ref(state) if len(_local.frames) > self._depth else state
        self._by_id[id(state)] = entry
        self._entries.append(entry)
        if self.state_tag is not None:
            _add_tag(state, self.state_tag)

    @property
    def states(self) -> list[State]:
        """The States caught that are alive, in creation order."""
        live = [_resolve(e) for e in self._entries]
        return [s for s in live if s is not None]

    @property
    def state_ids(self) -> set[int]:
        """``id`` of each State in :attr:`states`."""
        return {id(s) for s in self.states}

    def get_states(self) -> list[State]:
        """The States caught, in creation order."""
        return self.states

    def get_state_values(self) -> list[Any]:
        """Their values (each a recorded read, as ``State.value``)."""
        return [s.value for s in self.states]

    @property
    def values(self) -> list[Any]:
        """Same as :meth:`get_state_values`."""
        return self.get_state_values()

    def get_by_tag(self, tag: str) -> list[State]:
        """The States caught whose tags include ``tag`` (whoever set them)."""
        return [s for s in self.states if tag in _tags(s)]

    def remove(self, state: State) -> None:
        """Forget ``state`` (its tag stays); a State not caught is ignored."""
        entry = self._by_id.get(id(state))
        if entry is not None and _resolve(entry) is state:
            del self._by_id[id(state)]
            self._entries.remove(entry)

    def clear(self) -> None:
        """Forget every State caught."""
        self._entries.clear()
        self._by_id.clear()

    def __contains__(self, state: object) -> bool:
        entry = self._by_id.get(id(state))
        return entry is not None and _resolve(entry) is state

    def __iter__(self) -> Iterator[State]:
        return iter(self.states)

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, index: int) -> State:
        return self.states[index]

    def __repr__(self) -> str:
        return f"NewStateCatcher(state_tag={self.state_tag!r}, states={self.states!r})"


@contextmanager
def catch_new_states(
    state_tag: str | None = None, state_to_exclude: Any = None
) -> Iterator[NewStateCatcher]:
    """Catch the States created inside the block; tag each with ``state_tag``.

    Catchers nest: a State created in an inner block is caught by every open one and gets each
    one's tag. A State created inside a transform called in the block is caught too; the
    transform keeps its value local (afterwards it holds only its shape, unless the transform
    writes it out, as ``vmap_new_states`` does).

    Args:
        state_tag: the tag added to every State caught (``metadata["tag"]``); None adds none.
        state_to_exclude: a filter of the States not to catch (default: none excluded).

    Yields:
        The :class:`NewStateCatcher`, which fills as States are created.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> with facade.catch_new_states("outer") as outer:
        ...     a = facade.ShortTermState(jnp.zeros(2))
        ...     with facade.catch_new_states("inner") as inner:
        ...         b = facade.ParamState(jnp.ones(2))
        >>> len(outer), len(inner), a in inner
        (2, 1, False)
        >>> sorted(b.metadata["tag"]), outer.get_by_tag("inner") == [b]
        (['inner', 'outer'], True)
    """
    catcher = NewStateCatcher(state_tag, state_to_exclude)
    catchers = _local.catchers
    catchers.append(catcher)
    try:
        yield catcher
    finally:
        catchers.remove(catcher)
