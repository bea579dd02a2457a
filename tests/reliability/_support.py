"""Shared checks for the reliability suite: States keep their entry values and hold no tracer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import numpy as np

import facade
from facade._state import active_frames


def is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


class Snapshot:
    """The concrete value of each State at one moment: tree structure, leaves (copied), dtypes."""

    def __init__(self, states: Iterable[facade.State]):
        self.states = list(states)
        self.saved = []
        for s in self.states:
            assert_no_tracer(s)
            leaves, treedef = jax.tree.flatten(s._value)
            self.saved.append((treedef, [np.array(x, copy=True) for x in leaves]))

    def assert_unchanged(self) -> None:
        """Every State holds exactly (structure, dtype, bits) what it held at the snapshot."""
        assert active_frames() == [], "a facade frame was left on this thread's stack"
        for s, (treedef, leaves) in zip(self.states, self.saved, strict=True):
            assert_no_tracer(s)
            now, now_def = jax.tree.flatten(s.value)
            assert now_def == treedef, f"{s!r}: tree structure changed"
            for a, b in zip(now, leaves, strict=True):
                a = np.asarray(a)
                assert a.dtype == b.dtype, f"{s!r}: dtype changed {b.dtype} -> {a.dtype}"
                np.testing.assert_array_equal(a, b, err_msg=f"{s!r} changed")

    def restore(self) -> None:
        for s, (treedef, leaves) in zip(self.states, self.saved, strict=True):
            s._value = jax.tree.unflatten(treedef, [jax.numpy.asarray(x) for x in leaves])


def assert_no_tracer(state: facade.State) -> None:
    leaves = jax.tree.leaves(state._value)
    assert not any(is_tracer(x) for x in leaves), f"{state!r} holds a tracer"


def live_states() -> list[facade.State]:
    """Every State object alive in the process (the garbage collector tracks them all)."""
    import gc

    return [o for o in gc.get_objects() if isinstance(o, facade.State)]
