"""facade.environ: settings, the thread-local context stack, and precision."""

import doctest
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from facade import environ


@pytest.fixture(autouse=True)
def restore_settings():
    saved = environ.all()
    x64 = jax.config.jax_enable_x64
    yield
    environ._global.clear()
    environ._global.update(saved)
    jax.config.update("jax_enable_x64", x64)


def test_default_precision_is_32():
    assert environ.get("precision") == 32
    assert environ.dftype() == jnp.float32
    assert environ.ditype() == jnp.int32 and environ.dctype() == jnp.complex64


def test_precision_64_context_gives_float64_then_float32():
    with environ.context(precision=64) as settings:
        assert settings["precision"] == 64
        assert jnp.ones(2).dtype == jnp.float64
        assert jnp.asarray(1.5).dtype == jnp.float64
        assert environ.dftype() == jnp.float64 and environ.ditype() == jnp.int64
        assert jnp.zeros(2, environ.dftype()).dtype == jnp.float64
    assert jnp.ones(2).dtype == jnp.float32
    assert environ.get("precision") == 32 and environ.dftype() == jnp.float32


def test_precision_restored_on_error():
    with pytest.raises(RuntimeError), environ.context(precision=64, flag=1):
        raise RuntimeError("boom")
    assert jnp.ones(1).dtype == jnp.float32
    assert environ.get("flag", None) is None


@pytest.mark.parametrize(
    "precision, dtype", [(16, jnp.float16), ("bf16", jnp.bfloat16), (32, jnp.float32)]
)
def test_low_precisions_set_dftype(precision, dtype):
    with environ.context(precision=precision):
        assert environ.dftype() == dtype
        assert jnp.ones(1).dtype == jnp.float32  # JAX's own default stays 32-bit


def test_nested_contexts_and_other_settings():
    with environ.context(dt=0.1, mode="train"):
        assert environ.get("dt") == 0.1
        with environ.context(dt=0.2, precision=64):
            assert environ.get("dt") == 0.2 and environ.get("mode") == "train"
            assert jnp.ones(1).dtype == jnp.float64
            with environ.context(precision=32):
                assert jnp.ones(1).dtype == jnp.float32
            assert jnp.ones(1).dtype == jnp.float64
        assert environ.get("dt") == 0.1 and environ.get("precision") == 32
        assert environ.all()["mode"] == "train"
    assert environ.get("dt", "none") == "none"
    with pytest.raises(KeyError, match="dt"):
        environ.get("dt")


def test_set_is_process_wide_and_context_overrides_it():
    value = {"a": [1, 2]}
    environ.set(custom=value)
    assert environ.get("custom") is value  # stored and returned as given
    with environ.context(custom=3):
        assert environ.get("custom") == 3
    assert environ.get("custom") is value
    environ.set(precision=64)
    assert jnp.ones(1).dtype == jnp.float64 and environ.dftype() == jnp.float64
    environ.set(precision=32)
    assert jnp.ones(1).dtype == jnp.float32


def test_context_is_thread_local_and_set_is_not():
    seen = {}

    def worker():
        seen["dt"] = environ.get("dt", None)
        seen["global"] = environ.get("g", None)
        seen["dtype"] = jnp.ones(1).dtype

    environ.set(g=1)
    with environ.context(dt=0.5, precision=64):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen == {"dt": None, "global": 1, "dtype": jnp.float32}


@pytest.mark.parametrize("bad", [8, 128, "fp32", 64.5, True, None, [64]])
def test_invalid_precision_raises_value_error(bad):
    with pytest.raises(ValueError, match="precision"):
        environ.set(precision=bad)
    with pytest.raises(ValueError, match="precision"), environ.context(precision=bad):
        pass
    assert environ.get("precision") == 32


def test_docstring_examples():
    result = doctest.testmod(environ)
    assert result.failed == 0 and result.attempted > 0


# --- brainstate's getters and EnvironmentState (issue 18) -------------------------------------


def test_get_dt_and_precision_follow_the_settings():
    with environ.context(dt=0.01):
        assert environ.get_dt() == 0.01
        with environ.context(dt=0.001):
            assert environ.get_dt() == 0.001
    with environ.context(precision=64):
        assert environ.get_precision() == 64
    with environ.context(precision="bf16"):
        assert environ.get_precision() == 16  # brainstate reports bfloat16 as 16 bits
    assert environ.get_precision() == 32
    with pytest.raises(KeyError, match="unset_dt_probe"):
        environ.get("unset_dt_probe")


def test_set_precision_sets_jax_x64_and_back():
    environ.set_precision(64)
    try:
        assert environ.get_precision() == 64 and jnp.ones(1).dtype == jnp.float64
    finally:
        environ.set_precision(32)
    assert jnp.ones(1).dtype == jnp.float32
    with pytest.raises(ValueError, match="precision"):
        environ.set_precision(12)


def test_pop_removes_a_process_wide_setting():
    environ.set(temp_param="temporary")
    assert environ.pop("temp_param") == "temporary"
    assert environ.get("temp_param", None) is None
    assert environ.pop("temp_param", 5) == 5
    with pytest.raises(KeyError):
        environ.pop("temp_param")
    environ.set(kept=1)
    with environ.context(kept=2), pytest.raises(ValueError, match="context"):
        environ.pop("kept")
    assert environ.pop("kept") == 1


def test_dtypes_are_numpy_scalar_types_as_in_brainstate():
    assert environ.dftype() is np.float32 and environ.ditype() is np.int32
    assert environ.dctype() is np.complex64
    with environ.context(precision=64):
        assert environ.dftype() is np.float64 and environ.ditype() is np.int64
    assert jnp.zeros(2, environ.dftype()).dtype == jnp.float32


def test_an_environment_state_is_separate_from_the_global_settings():
    mine = environ.EnvironmentState()
    environ.set(dt=0.001, env=mine)
    assert environ.get_dt(env=mine) == 0.001
    assert environ.get("dt", None, env=mine) == 0.001
    with environ.context(dt=0.5, env=mine) as now:
        assert now["dt"] == 0.5 and environ.get_dt(env=mine) == 0.5
    assert environ.get_dt(env=mine) == 0.001
    environ.set_precision(64, env=mine)  # no JAX configuration touched
    assert environ.get_precision(env=mine) == 64 and jnp.ones(1).dtype == jnp.float32
    assert environ.pop("dt", env=mine) == 0.001 and "dt" not in mine.settings


def test_a_held_jit_reading_get_dt_traces_again_when_dt_changes():
    from facade import transform

    @transform.jit
    def decay(v):
        return v * (1.0 - environ.get_dt())

    with environ.context(dt=0.1):
        np.testing.assert_allclose(decay(1.0), 0.9)
    with environ.context(dt=0.5):
        np.testing.assert_allclose(decay(1.0), 0.5)
