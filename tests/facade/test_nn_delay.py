"""nn.Delay and the delayed prefetch references (brainstate 0.5.4's delay system).

Expected values are written out by hand from the ring-buffer rule (``update`` stores the newest
value; a read ``k`` steps back returns what ``update`` got ``k`` calls ago, the initial data
before that) or computed by raw ``jax.lax.scan`` over an explicit ring buffer.
"""

from __future__ import annotations

from collections.abc import Iterator

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import nn
from facade.nn._delay import DelayState

DT = 0.1


@pytest.fixture(autouse=True)
def _dt() -> Iterator[None]:
    with facade.environ.context(dt=DT):
        yield


def _fed(delay: nn.Delay, values: list) -> None:
    for v in values:
        delay.update(jnp.asarray(v, jnp.float32))


def _two(v: float) -> list[float]:
    return [v, 2 * v]


class TestRingBuffer:
    def test_reads_each_step_back_and_the_initial_data_before_it(self) -> None:
        delay = nn.Delay(jnp.zeros(2), time=0.3, init=-1.0)
        assert delay.max_length == 4 and delay.max_time == 0.3
        delay.init_state()
        assert isinstance(delay.history, DelayState)
        assert delay.history.value.shape == (4, 2) and delay.history.value.dtype == jnp.float32
        assert delay.write_ptr.value.tolist() == 0
        for n in range(6):
            delay.update(jnp.array(_two(n), jnp.float32))
            for k in range(4):
                want = _two(n - k) if n - k >= 0 else [-1.0, -1.0]
                assert delay.retrieve_at_step(k).tolist() == want, (n, k)
            assert delay.write_ptr.value.tolist() == (n + 1) % 4
        # The buffer itself: slot n % 4 holds step n (the last four steps are 2..5).
        assert delay.history.value[:, 0].tolist() == [4.0, 5.0, 2.0, 3.0]

    def test_rotation_and_concat_give_the_same_values(self) -> None:
        rot = nn.Delay(jnp.zeros(3), time=0.2, delay_method="rotation")
        with pytest.warns(DeprecationWarning, match="concat"):
            cat = nn.Delay(jnp.zeros(3), time=0.2, delay_method="concat")
        assert cat.delay_method == rot.delay_method == "rotation"
        values = [np.arange(3.0) * (i + 1) ** 2 for i in range(7)]
        for delay in (rot, cat):
            delay.init_state()
            _fed(delay, values)
        for k in range(3):
            np.testing.assert_array_equal(rot.retrieve_at_step(k), cat.retrieve_at_step(k))
            np.testing.assert_array_equal(rot.retrieve_at_step(k), values[6 - k])

    def test_an_unknown_delay_method_raises(self) -> None:
        with pytest.raises(ValueError, match="delay_method"):
            nn.Delay(jnp.zeros(3), time=0.2, delay_method="shift")

    def test_retrieve_at_time_interpolates_linearly_between_steps(self) -> None:
        delay = nn.Delay(jnp.zeros(2), time=0.4)
        delay.init_state()
        xs = [_two(float(n) ** 2) for n in range(6)]  # not linear in n: interpolation shows
        _fed(delay, xs)
        now = 5 * DT
        with facade.environ.context(t=now):
            # 0.13 back = 1.3 steps: 0.7 of step 4 and 0.3 of step 3.
            got = delay.retrieve_at_time(now - 0.13)
            want = 0.7 * np.array(xs[4]) + 0.3 * np.array(xs[3])
            np.testing.assert_allclose(got, want, rtol=1e-5)
            np.testing.assert_allclose(delay.retrieve_at_time(now), xs[5])
            np.testing.assert_allclose(delay.retrieve_at_time(now - 0.2), xs[3], rtol=1e-6)

    def test_round_reads_the_nearest_step(self) -> None:
        for kw in ({"interp_method": "round"}, {"interpolation": "nearest"}):
            delay = nn.Delay(jnp.zeros(()), time=0.4, **kw)
            assert delay.interp_method == "nearest"
            delay.init_state()
            _fed(delay, [10.0, 11.0, 12.0, 13.0, 14.0])
            with facade.environ.context(t=4 * DT):
                assert float(delay.retrieve_at_time(4 * DT - 0.13)) == 13.0  # 1.3 -> 1
                assert float(delay.retrieve_at_time(4 * DT - 0.17)) == 12.0  # 1.7 -> 2

    @pytest.mark.parametrize(
        ("method", "signal"),
        [
            ("linear", lambda n: 3.0 * n - 1.0),
            ("cubic", lambda n: 3.0 * n - 1.0),
            ("hermite", lambda n: 3.0 * n - 1.0),
            ("polynomial2", lambda n: n**2 - 2.0 * n),
            ("polynomial3", lambda n: 0.5 * n**3 - n**2 + 1.0),
        ],
    )
    def test_higher_order_methods_are_exact_on_their_polynomials(
        self, method: str, signal: object
    ) -> None:
        # Lagrange through 3 (4) points reproduces quadratics (cubics); Catmull-Rom and
        # Hermite with central-difference tangents reproduce straight lines.
        delay = nn.Delay(jnp.zeros((), jnp.float32), time=0.6, interpolation=method)
        delay.init_state()
        _fed(delay, [signal(float(n)) for n in range(8)])  # type: ignore[operator]
        with facade.environ.context(t=7 * DT):
            got = delay.retrieve_at_time(7 * DT - 0.25)  # 2.5 steps back: n = 4.5
        assert float(got) == pytest.approx(signal(4.5), rel=1e-5)  # type: ignore[operator]

    def test_custom_interpolation_and_the_registry(self) -> None:
        seen = {}

        def first_slot(history, indices, pos, max_length):  # type: ignore[no-untyped-def]
            seen["args"] = (pos, max_length)
            return history[(0, *indices)]

        delay = nn.Delay(jnp.zeros(()), time=0.2, interpolation=first_slot)
        delay.init_state()
        _fed(delay, [5.0, 6.0, 7.0, 8.0])  # slots: [8, 6, 7], newest at slot 0
        with facade.environ.context(t=3 * DT):
            assert float(delay.retrieve_at_time(3 * DT - 0.1)) == 8.0
        # pos is the fractional slot: newest slot 0 minus 1.0 step back.
        assert float(seen["args"][0]) == pytest.approx(-1.0) and seen["args"][1] == 3
        nn.InterpolationRegistry.register("first-slot-test", first_slot)
        assert nn.InterpolationRegistry.get("first-slot-test") is first_slot
        assert nn.Delay(jnp.zeros(()), interpolation="first-slot-test").interp_method == (
            "first-slot-test"
        )
        with pytest.raises(ValueError, match="Unknown interpolation method: spline"):
            nn.Delay(jnp.zeros(()), interpolation="spline")
        with pytest.raises(TypeError, match="interpolation"):
            nn.Delay(jnp.zeros(()), interpolation=3)  # type: ignore[arg-type]


class TestErrors:
    def test_a_delay_outside_the_buffer_raises_naming_the_bound(self) -> None:
        delay = nn.Delay(jnp.zeros(2), time=0.3)
        delay.init_state()
        for bad in (4, -1, jnp.array([0, 5])):
            with pytest.raises(ValueError, match=r"within \[0, 3\] steps"):
                delay.retrieve_at_step(bad)
        with pytest.raises(ValueError, match="must be integer"):
            delay.retrieve_at_step(1.5)
        with facade.environ.context(t=1.0):
            with pytest.raises(ValueError, match="not after it"):
                delay.retrieve_at_time(1.05)  # the future
            # 3.5 steps back: linear reads steps 3 and 4, and 4 is not kept.
            with pytest.raises(ValueError, match=r"within \[0, 3\] steps; got 4"):
                delay.retrieve_at_time(1.0 - 0.35)
            # The nearest step to 3.4 back is 3: fine for 'nearest'.
            near = nn.Delay(jnp.zeros(2), time=0.3, interpolation="nearest")
            near.init_state()
            assert near.retrieve_at_time(1.0 - 0.34).tolist() == [0.0, 0.0]
            with pytest.raises(ValueError, match=r"within \[0, 3\] steps; got 4"):
                near.retrieve_at_time(1.0 - 0.36)
            # Methods reading around the time need the time itself in the buffer.
            cubic = nn.Delay(jnp.zeros(2), time=0.3, interpolation="cubic")
            cubic.init_state()
            with pytest.raises(ValueError, match="within 3 steps before"):
                cubic.retrieve_at_time(1.0 - 0.31)
        with pytest.raises(KeyError, match="'t'"):
            delay.retrieve_at_time(0.0)

    def test_under_jit_a_traced_delay_is_checked_with_jit_error_check(self) -> None:
        delay = nn.Delay(jnp.zeros(2), time=0.3)
        delay.init_state()
        with facade.environ.context(jit_error_check=True):
            read = facade.transform.jit(lambda k: delay.retrieve_at_step(k))
            assert read(jnp.int32(2)).tolist() == [0.0, 0.0]
            with pytest.raises(Exception, match=r"within \[0, 3\] steps; got 5"):
                jax.block_until_ready(read(jnp.int32(5)))
        # A concrete delay is checked while tracing, flag or not.
        with pytest.raises(ValueError, match=r"within \[0, 3\] steps"):
            facade.transform.jit(lambda: delay.retrieve_at_step(9))()

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="must not be negative"):
            nn.Delay(jnp.zeros(2), time=-0.1)
        with pytest.raises(ValueError, match="unit of time of dt"):
            nn.Delay(jnp.zeros(2), time=0.3 * u.ms)
        with pytest.raises(ValueError, match="update_every must be >= dt"):
            nn.Delay(jnp.zeros(2), time=0.3, update_every=0.05)
        with pytest.raises(TypeError, match="init should be"):
            nn.Delay(jnp.zeros(2), time=0.3, init="zeros")  # type: ignore[arg-type]
        delay = nn.Delay(jnp.zeros(2), time=0.3)
        with pytest.raises(ValueError, match="call init_state"):
            delay.retrieve_at_step(0)
        with pytest.raises(TypeError, match="index must be integer"):
            delay.register_delay(0.1, jnp.array([0.5]))
        with pytest.raises(TypeError, match="needs a Delay"):
            nn.DelayAccess(object(), 0.1, entry="x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="entry"):
            delay.at(3)  # type: ignore[arg-type]
        # Past the suite's run-time type checks (off outside the tests) the error is also an
        # AssertionError, which brainstate raises and its users' tests expect.
        at = getattr(nn.Delay.at, "__wrapped__", nn.Delay.at)
        with pytest.raises(AssertionError, match="entry should be a string"):
            at(delay, 3)
        with pytest.raises(KeyError, match="x"):
            delay.at("x")

    def test_registering_a_longer_delay_after_init_state_is_caught_on_read(self) -> None:
        delay = nn.Delay(jnp.zeros(2), time=0.1)
        delay.init_state()
        delay.register_entry("long", 0.5)
        with pytest.raises(ValueError, match="call init_state"):
            delay.at("long")
        delay.init_state()
        assert delay.history.value.shape == (6, 2) and delay.at("long").shape == (2,)


class TestInitAndEntries:
    def test_batch_and_pytree_shapes_and_dtypes(self) -> None:
        target = {"a": jnp.zeros(3), "b": jnp.zeros((), jnp.int32)}
        delay = nn.Delay(target, time=0.2, init=7)
        delay.init_state(batch_size=4)
        h = delay.history.value
        assert h["a"].shape == (3, 4, 3) and h["a"].dtype == jnp.float32
        assert h["b"].shape == (3, 4) and h["b"].dtype == jnp.int32
        assert float(h["a"].min()) == float(h["a"].max()) == 7.0
        delay.update({"a": jnp.ones((4, 3)), "b": jnp.full(4, 5, jnp.int32)})
        got = delay.retrieve_at_step(0)
        assert got["a"].tolist() == [[1.0] * 3] * 4 and got["b"].tolist() == [5] * 4
        assert delay.retrieve_at_step(1)["b"].tolist() == [7] * 4
        delay.reset_state(batch_size=2)
        assert delay.history.value["a"].shape == (3, 2, 3)
        assert delay.write_ptr.value.tolist() == 0
        assert delay.retrieve_at_step(0)["b"].tolist() == [7, 7]

    def test_a_callable_init_gets_the_full_shape_and_dtype(self) -> None:
        calls = []

        def ramp(shape, dtype):  # type: ignore[no-untyped-def]
            calls.append((tuple(shape), dtype))
            return jnp.arange(np.prod(shape), dtype=dtype).reshape(shape)

        delay = nn.Delay(jax.ShapeDtypeStruct((2,), jnp.float32), time=0.1, init=ramp)
        delay.init_state(batch_size=3)
        assert calls == [((2, 3, 2), jnp.float32)]
        # Before any update, step 0 is the last slot, step 1 the first.
        assert delay.retrieve_at_step(0).tolist() == [[6.0, 7.0], [8.0, 9.0], [10.0, 11.0]]
        assert delay.retrieve_at_step(1).tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]

    def test_entries_grow_the_buffer_and_read_their_delay(self) -> None:
        delay = nn.Delay(jnp.zeros(3), entries={"one": 0.1, "three": (0.3,)})
        assert delay.max_length == 4
        info = delay.register_entry("two", 0.2)
        assert [int(s) for s in info] == [2]  # type: ignore[union-attr]
        assert delay.register_entry("now", None) is None
        with pytest.raises(KeyError, match="has been registered"):
            delay.register_entry("two", 0.1)
        acc = delay.access("also-one", 0.1)
        assert isinstance(acc, nn.DelayAccess) and int(acc.delay_info[0]) == 1
        delay.init_state()
        _fed(delay, [[i, i, i] for i in (1.0, 2.0, 3.0, 4.0, 5.0)])
        assert delay.at("now").tolist() == [5.0] * 3
        assert delay.at("one").tolist() == acc().tolist() == [4.0] * 3
        assert delay.at("two").tolist() == [3.0] * 3
        assert delay.at("three").tolist() == [2.0] * 3

    def test_a_vector_of_delays_with_indices_reads_one_delay_per_element(self) -> None:
        delay = nn.Delay(jnp.zeros(3), time=0.1)
        delay.register_entry("per-unit", jnp.array([0.0, 0.1, 0.2]), jnp.arange(3))
        assert delay.max_length == 3
        delay.init_state()
        _fed(delay, [np.arange(3.0) + 10 * i for i in range(4)])
        # unit j is read j steps back: 30 + 0, 20 + 1, 10 + 2.
        assert delay.at("per-unit").tolist() == [30.0, 21.0, 12.0]

    def test_steps_are_whole_multiples_of_dt_without_floating_point_noise(self) -> None:
        with facade.environ.context(precision=64):
            # 1.1 / 0.1 == 11.000000000000002 in float64; it is 11 steps.
            assert nn.Delay(jnp.zeros(1), time=1.1).max_length == 12
            assert nn.Delay(jnp.zeros(1), time=1.15).max_length == 13  # rounds up
            assert nn.Delay(jnp.zeros(1), time=0.3, update_every=0.3).update_every_step == 3

    def test_update_every_writes_once_per_period(self) -> None:
        delay = nn.Delay(jnp.zeros(()), time=0.4, update_every=0.2)
        assert delay.update_every_step == 2 and delay.max_length == 3
        delay.init_state()
        seen = []
        for i in range(7):
            delay.update(jnp.float32(i))
            seen.append([float(delay.retrieve_at_step(k)) for k in range(3)])
        # The first call of each pair is stored (0, 2, 4, 6); slots are 0.2 apart.
        assert seen == [
            [0, 0, 0],
            [0, 0, 0],
            [2, 0, 0],
            [2, 0, 0],
            [4, 2, 0],
            [4, 2, 0],
            [6, 4, 2],
        ]
        with facade.environ.context(t=6 * DT):
            assert float(delay.retrieve_at_time(6 * DT - 0.3)) == pytest.approx(3.0)

    def test_units_are_kept(self) -> None:
        delay = nn.Delay(jnp.zeros(2) * u.mV, time=0.1)
        delay.init_state()
        assert not isinstance(delay.history.value, u.Quantity)  # numbers, in mV
        delay.update(jnp.ones(2) * u.volt)
        assert u.math.allclose(delay.retrieve_at_step(0), jnp.full(2, 1000.0) * u.mV)
        aware = nn.Delay(jnp.zeros(2), time=0.1, take_aware_unit=True)
        aware.init_state()
        aware.update(jnp.ones(2) * u.mA)
        assert u.get_unit(aware.retrieve_at_step(1)) == u.mA
        with facade.environ.context(dt=0.1 * u.ms):
            timed = nn.Delay(jnp.zeros(1), time=0.3 * u.ms)
            assert timed.max_length == 4 and timed.max_time == 0.3 * u.ms
            timed.init_state()
            _fed(timed, [[1.0], [2.0], [3.0]])
            with facade.environ.context(t=2.0 * u.ms):
                got = timed.retrieve_at_time(1.85 * u.ms)  # 1.5 steps back
            assert got.tolist() == pytest.approx([1.5])


class Cell(nn.Dynamics):
    """A leaky unit fed back its own potential three steps late, with two delayed readouts."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.gain = facade.ParamState(jnp.array(1.0))
        self.v_back = self.prefetch_delay("V", 2 * DT)
        self.out_back = self.output_delay(DT)
        self.v_far = self.prefetch("V").delay.at(3 * DT)

    def init_state(self, batch_size: int | None = None) -> None:
        shape = self.varshape if batch_size is None else (batch_size, *self.varshape)
        self.V = facade.HiddenState(jnp.zeros(shape))

    def update(self, x: jax.Array) -> jax.Array:
        # v_back() here is V from three updates ago: its history has not got this step's V yet.
        self.V.value = 0.5 * self.V.value + self.gain.value * x + 0.25 * self.v_back()
        return 2.0 * self.V.value


def _raw_cell(gain: jax.Array, xs: jax.Array, n: int) -> tuple:
    """The same model over explicit ring buffers: V's (4 slots, the longest read is 3 steps)
    and the output's (2 slots)."""

    def body(carry: tuple, x: jax.Array) -> tuple:
        v, bv, pv, bo, po = carry
        v = 0.5 * v + gain * x + 0.25 * bv[(pv - 1 - 2) % 4]
        out = 2.0 * v
        bv, pv = bv.at[pv].set(v), (pv + 1) % 4
        bo, po = bo.at[po].set(out), (po + 1) % 2
        reads = (out, bo[(po - 1 - 1) % 2], bv[(pv - 1 - 2) % 4], bv[(pv - 1 - 3) % 4])
        return (v, bv, pv, bo, po), reads

    zeros = jnp.zeros(n)
    init = (zeros, jnp.zeros((4, n)), 0, jnp.zeros((2, n)), 0)
    return jax.lax.scan(body, init, xs)


XS = jnp.stack([jnp.array([1.0, -1.0]) * (i % 3 + 1) for i in range(9)])


def _loop(cell: Cell, xs: jax.Array) -> tuple:
    def step(i: jax.Array, x: jax.Array) -> tuple:
        with facade.environ.context(i=i, t=i * DT):
            out = cell(x)
            return out, cell.out_back(), cell.v_back(), cell.v_far()

    return facade.transform.for_loop(step, jnp.arange(xs.shape[0]), xs)


class TestDynamicsDelays:
    def test_the_references_and_where_their_histories_live(self) -> None:
        cell = Cell(2)
        assert isinstance(cell.v_back, nn.PrefetchDelayAt)
        assert isinstance(cell.out_back, nn.OutputDelayAt)
        assert list(cell.after_updates) == ["V-prefetch-delay-None", "output-delay-None"]
        # Both V references share one history, sized for the longer (3 steps + 1).
        sd = cell.get_after_update("V-prefetch-delay-None")
        assert isinstance(sd, nn.StateWithDelay) and cell.v_far.state_delay is sd
        assert sd.max_length == 4 and [int(s) for s in cell.v_far.delay_info] == [3]
        nn.init_all_states(cell)
        assert set(cell.states()) == {
            ("V",),
            ("gain",),
            ("_after_updates", "V-prefetch-delay-None", "history"),
            ("_after_updates", "V-prefetch-delay-None", "write_ptr"),
            ("_after_updates", "output-delay-None", "history"),
            ("_after_updates", "output-delay-None", "write_ptr"),
        }
        assert sd.history.value.shape == (4, 2) and sd.state is cell.V
        nn.init_maybe_prefetch(cell.prefetch("V").delay)
        nn.init_maybe_prefetch(cell.v_back)
        with pytest.raises(KeyError, match="gain-prefetch-delay-None"):
            nn.init_maybe_prefetch(cell.prefetch("gain").delay)

    def test_no_time_reads_the_current_value(self) -> None:
        cell = Cell(2)
        nn.init_all_states(cell)
        now = cell.prefetch("V").delay.at()
        cell(jnp.ones(2))
        assert now().tolist() == cell.V.value.tolist() == [1.0, 1.0]
        assert list(cell.after_updates) == ["V-prefetch-delay-None", "output-delay-None"]

    def test_errors_name_the_culprit(self) -> None:
        with pytest.raises(TypeError, match="module"):
            nn.PrefetchDelayAt(nn.Linear(2, 2), "weight", 0.1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="module"):
            nn.OutputDelayAt(nn.Linear(2, 2), 0.1)  # type: ignore[arg-type]
        cell = Cell(2)
        bad = nn.StateWithDelay(cell, "varshape", time=0.1)
        with pytest.raises(TypeError, match='(?s)"varshape" .* is not a State'):
            bad.init_state()

    def test_eager_steps_match_a_raw_scan_over_ring_buffers(self) -> None:
        cell = Cell(2)
        nn.init_all_states(cell)
        got = [
            (cell(x), cell.out_back(), cell.v_back(), cell.v_far()) for x in XS
        ]  # plain Python loop, each call its own program
        _, want = _raw_cell(jnp.array(1.0), XS, 2)
        for j in range(4):
            np.testing.assert_allclose(np.stack([g[j] for g in got]), want[j], rtol=1e-6)

    def test_a_for_loop_matches_the_raw_scan_and_leaves_the_states_as_it_does(self) -> None:
        cell = Cell(2)
        nn.init_all_states(cell)
        got = _loop(cell, XS)
        (v, bv, pv, bo, po), want = _raw_cell(jnp.array(1.0), XS, 2)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape == (9, 2) and g.dtype == jnp.float32
            np.testing.assert_allclose(g, w, rtol=1e-6)
        np.testing.assert_allclose(cell.V.value, v, rtol=1e-6)
        sd = cell.get_after_update("V-prefetch-delay-None")
        np.testing.assert_allclose(sd.history.value, bv, rtol=1e-6)
        assert int(sd.write_ptr.value) == int(pv) == 9 % 4
        od = cell.get_after_update("output-delay-None")
        np.testing.assert_allclose(od.history.value, bo, rtol=1e-6)
        assert int(od.write_ptr.value) == int(po) == 9 % 2
        # The values really are delayed: out_back at step n is out at step n - 1.
        np.testing.assert_allclose(got[1][1:], got[0][:-1], rtol=1e-6)

    def test_batched_states_follow_the_batch(self) -> None:
        cell = Cell(2)
        nn.init_all_states(cell, batch_size=3)
        sd = cell.get_after_update("V-prefetch-delay-None")
        od = cell.get_after_update("output-delay-None")
        assert cell.V.value.shape == (3, 2) and sd.history.value.shape == (4, 3, 2)
        assert od.history.value.shape == (2, 3, 2) and od.write_ptr.value.shape == ()
        # reset_state(batch_size) keeps the State's own batch axis, once.
        cell.V.value = jnp.zeros((3, 2))
        sd.reset_state(batch_size=3)
        assert sd.history.value.shape == (4, 3, 2) and int(sd.write_ptr.value) == 0
        got = _loop(cell, jnp.broadcast_to(XS[:, None], (9, 3, 2)))
        _, want = _raw_cell(jnp.array(1.0), XS, 2)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, jnp.broadcast_to(w[:, None], (9, 3, 2)), rtol=1e-6)

    def test_a_held_jit_step_matches_the_eager_steps(self) -> None:
        eager, jitted = Cell(2), Cell(2)
        nn.init_all_states(eager)
        nn.init_all_states(jitted)

        @facade.transform.jit
        def step(x: jax.Array) -> tuple:
            return jitted(x), jitted.out_back(), jitted.v_far()

        for x in XS:
            a = (eager(x), eager.out_back(), eager.v_far())
            b = step(x)
            for p, q in zip(a, b, strict=True):
                np.testing.assert_allclose(p, q, rtol=1e-6)
        np.testing.assert_allclose(eager.V.value, jitted.V.value, rtol=1e-6)

    def test_grad_through_the_delays_equals_jax_grad_of_the_raw_scan(self) -> None:
        cell = Cell(2)
        nn.init_all_states(cell)
        cell.gain.value = jnp.array(0.7)

        def loss() -> jax.Array:
            outs = _loop(cell, XS)
            return jnp.sum(outs[1] ** 2) + jnp.sum(outs[3])

        def raw_loss(gain: jax.Array) -> jax.Array:
            _, outs = _raw_cell(gain, XS, 2)
            return jnp.sum(outs[1] ** 2) + jnp.sum(outs[3])

        grads, value = facade.transform.grad(loss, grad_states=[cell.gain], return_value=True)()
        want_value, want_grad = jax.value_and_grad(raw_loss)(jnp.array(0.7))
        assert float(value) == pytest.approx(float(want_value), rel=1e-5)
        assert float(grads[0]) == pytest.approx(float(want_grad), rel=1e-5)
        assert float(want_grad) != 0.0
        # The loop ran inside grad: the states hold the values the raw scan ends with.
        (v, *_), _ = _raw_cell(jnp.array(0.7), XS, 2)
        np.testing.assert_allclose(cell.V.value, v, rtol=1e-6)

    def test_output_delay_with_units_reads_them_back(self) -> None:
        class Volts(nn.Dynamics):
            def update(self, x: jax.Array) -> u.Quantity:
                return x * u.mV

        cell = Volts(2)
        back = cell.output_delay(DT)
        nn.init_all_states(cell)
        cell(jnp.array([1.0, 2.0]))
        cell(jnp.array([3.0, 4.0]))
        assert u.math.allclose(back(), jnp.array([1.0, 2.0]) * u.mV)

    def test_update_every_gets_its_own_history(self) -> None:
        cell = Cell(2)
        slow = cell.prefetch_delay("V", 4 * DT, update_every=2 * DT)
        assert "V-prefetch-delay-0.2" in cell.after_updates
        assert slow.state_delay.update_every_step == 2 and slow.state_delay.max_length == 3
        nn.init_all_states(cell)
        seen = []
        for x in XS[:5]:
            cell(x)
            seen.append(np.asarray(cell.V.value))
        # Stored V after calls 0, 2, 4; after the fifth call 4 * dt back is call 0.
        np.testing.assert_allclose(slow(), seen[0], rtol=1e-6)


def test_the_delay_works_without_brainunit():
    """brainunit is an optional extra: ``import facade`` and a plain-number Delay must work
    where it is not installed (a subprocess where importing it fails)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import builtins
        real = builtins.__import__
        def blocked(name, *args, **kwargs):
            if name.partition(".")[0] == "brainunit":
                raise ImportError("brainunit is not installed")
            return real(name, *args, **kwargs)
        builtins.__import__ = blocked
        import jax.numpy as jnp
        import facade as bs
        with bs.environ.context(dt=0.1):
            d = bs.nn.Delay(jnp.zeros(2), time=0.3)
            d.init_state()
            for i in range(5):
                d.update(jnp.full(2, float(i)))
            print(float(d.retrieve_at_step(2)[0]))
            with bs.environ.context(t=0.4):
                print(float(d.retrieve_at_time(0.25)[0]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    # Written 0..4, newest 4 at t=0.4: two steps back is 2; t=0.25 is halfway between the
    # entries written at t=0.2 (value 2) and t=0.3 (value 3).
    assert float(out[0]) == 2.0
    np.testing.assert_allclose(float(out[1]), 2.5, rtol=1e-5)
