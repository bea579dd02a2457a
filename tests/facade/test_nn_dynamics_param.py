"""nn.Dynamics, Prefetch, call_order, exp_euler_step and nn.Param: brainstate 0.5.4's documented
behaviour (values checked against brainstate 0.5.4)."""

from __future__ import annotations

import brainunit as u
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import nn


class Leaky(nn.Dynamics):
    def __init__(self, n: int | tuple) -> None:
        super().__init__(n)
        self.v = facade.HiddenState(jnp.zeros(self.varshape))

    def update(self, x: jnp.ndarray) -> jnp.ndarray:
        self.v.value = 0.5 * self.v.value + x
        return self.v.value


class TestDynamics:
    @pytest.mark.parametrize(("size", "shape"), [(3, (3,)), ((2, 4), (2, 4)), ([5], (5,))])
    def test_population_geometry(self, size: object, shape: tuple) -> None:
        cell = Leaky(size)
        assert cell.in_size == cell.out_size == cell.varshape == shape

    @pytest.mark.parametrize("size", [(), "3", 2.5, ("a",)])
    def test_bad_sizes_raise_value_error(self, size: object) -> None:
        with pytest.raises(ValueError, match="in_size"):
            nn.Dynamics(size)

    def test_before_and_after_updates_run_around_update(self) -> None:
        cell = Leaky(2)
        calls: list = []
        cell.add_before_update("pre", lambda: calls.append("pre"))
        cell.add_before_update("pre_in", nn.receive_update_input(lambda x: calls.append(("in", x))))
        cell.add_after_update("post", lambda out: calls.append(("out", out.tolist())))
        cell.add_after_update("bare", nn.not_receive_update_output(lambda: calls.append("bare")))
        out = cell(1.0)
        assert out.tolist() == [1.0, 1.0]
        assert calls == ["pre", ("in", 1.0), ("out", [1.0, 1.0]), "bare"]

    def test_update_registry(self) -> None:
        cell = Leaky(2)
        assert cell.before_updates is None and not cell.has_after_update("k")
        fun = lambda out: None  # noqa: E731
        cell.add_after_update("k", fun)
        assert cell.has_after_update("k") and cell.get_after_update("k") is fun
        with pytest.raises(KeyError, match="has been registered"):
            cell.add_after_update("k", fun)
        with pytest.raises(KeyError, match="not registered"):
            cell.get_before_update("k")

    def test_dynamics_runs_under_the_facades_loops(self) -> None:
        cell = Leaky(2)
        outs = facade.transform.for_loop(lambda x: cell(x), jnp.ones((3, 2)))
        assert outs[:, 0].tolist() == [1.0, 1.5, 1.75]
        assert cell.v.value.tolist() == [1.75, 1.75]


class TestPrefetch:
    def test_resolves_at_call_time(self) -> None:
        cell = Leaky(2)
        later = cell.prefetch("w")  # not defined yet
        cell.w = facade.ParamState(jnp.ones(2))
        assert later().tolist() == [1.0, 1.0] and later.get_item() is cell.w
        cell.k = 3.0
        assert cell.prefetch("k").get_item_value() == 3.0
        nn.init_maybe_prefetch(later)
        nn.init_maybe_prefetch(object())  # anything else is left alone

    def test_missing_attribute_raises(self) -> None:
        with pytest.raises(AttributeError, match="should have an `nope` attribute"):
            nn.init_maybe_prefetch(Leaky(2).prefetch("nope"))

    def test_delay_gives_a_prefetch_delay_of_the_same_item(self) -> None:
        cell = Leaky(2)
        pd = cell.prefetch("v").delay
        assert isinstance(pd, nn.PrefetchDelay) and pd.module is cell and pd.item == "v"


def test_call_order_marks_the_level_within_bounds() -> None:
    @nn.call_order(3)
    def f() -> None: ...

    assert f.call_order == 3
    assert nn.call_order(12, check_order_boundary=False)(lambda: None).call_order == 12
    for level in (-1, nn._dynamics.MAX_ORDER):
        with pytest.raises(ValueError, match="level"):
            nn.call_order(level)


class TestExpEuler:
    def test_linear_ode_is_integrated_exactly(self) -> None:
        with facade.environ.context(dt=0.1):
            x1 = nn.exp_euler_step(lambda x: -x, jnp.array(1.0))
            x2 = nn.exp_euler_step(lambda x, i: -x + i, jnp.ones(3), 2.0)
        assert np.isclose(float(x1), np.exp(-0.1), rtol=1e-6)
        assert np.allclose(x2, 2.0 - np.exp(-0.1), rtol=1e-6)  # brainstate: 1.0951625

    def test_units_are_kept(self) -> None:
        with facade.environ.context(dt=0.1 * u.ms):
            v = nn.exp_euler_step(lambda v: -v / (10 * u.ms), jnp.ones(2) * u.mV)
        assert u.get_unit(v) == u.mV
        assert np.allclose(v.to_decimal(u.mV), np.exp(-0.01), rtol=1e-6)  # 0.99004984

    def test_sde_adds_noise_and_checks_its_unit(self) -> None:
        facade.random.seed(0)
        with facade.environ.context(dt=0.1):
            a = nn.exp_euler_step(lambda x: -x, lambda x: 0.5, jnp.zeros(1000))
        assert 0.1 < float(jnp.std(a)) < 0.2  # 0.5 * sqrt(0.1) = 0.158
        with facade.environ.context(dt=0.1 * u.ms):
            with pytest.raises(ValueError, match="Unit mismatch"):
                nn.exp_euler_step(
                    lambda v: -v / (10 * u.ms), lambda v: 1.0 * u.mV, jnp.ones(2) * u.mV
                )

    def test_integer_state_is_refused(self) -> None:
        with facade.environ.context(dt=0.1), pytest.raises(ValueError, match="dtype"):
            nn.exp_euler_step(lambda x: -x, jnp.ones(2, dtype=jnp.int32))


class TestParam:
    def test_fit_param_lives_in_a_param_state(self) -> None:
        p = nn.Param(jnp.array([1.0, 2.0]))
        assert isinstance(p.val, facade.ParamState) and p.fit
        assert p.value().tolist() == [1.0, 2.0] and p.reg_loss() == 0.0
        assert list(p.states(facade.ParamState)) == [("val",)]
        p.set_value(jnp.array([3.0, 4.0]))
        assert p.val.value.tolist() == [3.0, 4.0]

    def test_const_is_not_trainable(self) -> None:
        c = nn.Const(2.0)
        assert not c.fit and not isinstance(c.val, facade.State)
        assert float(c.value()) == 2.0 and c.reg_loss() == 0.0

    def test_transform_stores_the_unconstrained_value(self) -> None:
        class Exp(nn.Transform):
            def forward(self, x: jnp.ndarray) -> jnp.ndarray:
                return jnp.exp(x)

            def inverse(self, y: jnp.ndarray) -> jnp.ndarray:
                return jnp.log(y)

        p = nn.Param(jnp.array([1.0, 4.0]), t=Exp(), precompute=lambda y: 2 * y)
        assert np.allclose(p.val.value, np.log([1.0, 4.0]))
        assert np.allclose(p.value(), [2.0, 8.0])
        p.clip(max_val=4.0)  # clips the constrained (precomputed) value, stores its inverse
        assert np.allclose(p.val.value, np.log([2.0, 4.0]))

    def test_cache_follows_the_stored_value(self) -> None:
        p = nn.Param(jnp.array([1.0]))
        assert p.cache().tolist() == [1.0] and p.cache_stats["valid"]
        p.val.value = jnp.array([5.0])  # a direct State write: the cache no longer applies
        assert not p.cache_stats["valid"] and p.value().tolist() == [5.0]
        p.cache()
        p.clear_cache()
        assert p.cache_stats == {"valid": False, "has_cached_value": False}

    def test_regularization_loss_and_prior(self) -> None:
        class L2(nn.Regularization):
            def loss(self, value: jnp.ndarray) -> jnp.ndarray:
                return 0.5 * jnp.sum(value**2)

            def reset_value(self) -> jnp.ndarray:
                return jnp.zeros(2)

        p = nn.Param(jnp.array([1.0, 2.0]), reg=L2())
        assert float(p.reg_loss()) == 2.5
        p.reset_to_prior()
        assert p.value().tolist() == [0.0, 0.0]
        assert nn.Param(jnp.ones(2), reg=L2(), fit=False).reg_loss() == 0.0

    def test_bad_arguments(self) -> None:
        with pytest.raises(TypeError, match="Transform"):
            nn.Param(1.0, t=lambda x: x)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="Regularization"):
            nn.Param(1.0, reg="l2")  # type: ignore[arg-type]

    def test_init_builds_or_passes_through(self) -> None:
        p = nn.Param(jnp.ones(3))
        assert nn.Param.init(p, 3) is p
        assert nn.Param.init(None) is None
        c = nn.Param.init(lambda shape: jnp.zeros(shape), (2, 3))
        assert isinstance(c, nn.Const) and c.value().shape == (2, 3)
        assert float(nn.Param.init(1.5, 4).value()) == 1.5
        with pytest.raises(ValueError):
            nn.Param.init(None, allow_none=False)
        with pytest.raises(ValueError):
            nn.Param.init(jnp.ones(3), 4)
        with pytest.raises(TypeError):
            nn.Param.init("abc")
