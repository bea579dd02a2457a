"""Checks shared by the facade tests (imported by basename, as tests/ has no packages)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from facade._state import active_frames


def assert_same(a, b, rtol=1e-6):
    """Same tree structure, dtypes and (to ``rtol``) values."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert jnp.result_type(x) == jnp.result_type(y)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-6)


def assert_no_tracer(*states):
    """No State holds a tracer and no facade frame is left on this thread."""
    for s in states:
        assert not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(s._value))
    assert not active_frames()
