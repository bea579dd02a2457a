"""facade.random: key derivation, reproducibility, state threading, distributions, errors."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import environ, random
from facade._state import frame
from facade.random import RandomState

jr = jax.random


def test_key_is_a_raw_uint32_prngkey():
    rs = RandomState(7)
    key = rs.get_key()
    assert key.dtype == jnp.uint32 and key.shape == (2,)
    assert (key == jr.PRNGKey(7)).all()
    assert isinstance(rs, facade.State)


def test_seed_then_draw_matches_the_documented_derivation():
    rs = RandomState(0)
    rs.seed(123)
    x = rs.normal(size=(3,))
    nxt, used = jr.split(jr.PRNGKey(123))
    assert (x == jr.normal(used, (3,))).all()
    assert (rs.get_key() == nxt).all()
    # loc/scale are applied to the standard draw
    rs.seed(123)
    assert jnp.allclose(rs.normal(2.0, 3.0, size=(3,)), 2.0 + 3.0 * jr.normal(used, (3,)))
    rs.seed(123)
    assert (rs.uniform(size=3) == jr.uniform(used, (3,))).all()


def test_same_seed_same_numbers_successive_draws_differ():
    a, b = RandomState(5), RandomState(5)
    xa1, xa2 = a.normal(size=3), a.normal(size=3)
    xb1, xb2 = b.normal(size=3), b.normal(size=3)
    assert (xa1 == xb1).all() and (xa2 == xb2).all()
    assert not (xa1 == xa2).all()
    assert not (RandomState(6).normal(size=3) == xa1).all()


def test_key_override_does_not_advance_the_state():
    rs = RandomState(1)
    before = rs.get_key()
    k = jr.PRNGKey(99)
    x = rs.normal(size=3, key=k)
    assert (rs.get_key() == before).all()
    assert (x == jr.normal(k, (3,))).all()
    assert (rs.normal(size=3, key=99) == x).all()  # an int key is a seed
    assert (rs.normal(size=3, key=jr.key(99)) == x).all()  # typed keys are accepted
    assert (rs.get_key() == before).all()


def test_split_key_and_split_keys():
    rs = RandomState(3)
    k0 = rs.get_key()
    one = rs.split_key()
    assert one.shape == (2,) and (one == jr.split(k0)[1]).all()
    assert (rs.get_key() == jr.split(k0)[0]).all()
    k1 = rs.get_key()
    many = rs.split_keys(3)
    assert many.shape == (3, 2) and (many == jr.split(k1, 4)[1:]).all()
    assert (rs.split_key(2) != rs.split_key(2)).any()


def test_seed_set_key_and_entropy():
    rs = RandomState(0)
    rs.set_key(jr.PRNGKey(4))
    assert (rs.get_key() == jr.PRNGKey(4)).all()
    rs.set_key(jr.key(4))
    assert (rs.get_key() == jr.PRNGKey(4)).all()
    rs.seed(jr.PRNGKey(8))
    assert (rs.get_key() == jr.PRNGKey(8)).all()
    a, b = RandomState(), RandomState()
    assert not (np.asarray(a.get_key()) == np.asarray(b.get_key())).all()
    rs.seed()
    assert rs.get_key().shape == (2,)
    assert repr(RandomState(2, name="r")) == "RandomState(key=[0, 2], name='r')"
    c = rs.clone()
    assert type(c) is RandomState and not (c.get_key() == rs.get_key()).all()


def test_module_functions_use_the_default_state():
    random.seed(0)
    x = random.normal(size=(3,))
    assert (x == jr.normal(jr.split(jr.PRNGKey(0))[1], (3,))).all()
    assert (random.DEFAULT.get_key() == jr.split(jr.PRNGKey(0))[0]).all()
    random.seed(0)
    k = random.split_key()
    assert (k == jr.split(jr.PRNGKey(0))[1]).all()
    assert not (random.split_key() == k).all()
    random.seed(1)
    a = random.rand(2, 2)
    random.seed(1)
    assert (random.random((2, 2)) == a).all() and a.shape == (2, 2)
    assert random.randn(3).shape == (3,) and random.rand().shape == ()


def test_draws_go_through_value_and_are_threaded_by_frames():
    rs = RandomState(0)
    before = rs.get_key()
    with frame() as f:
        x1 = rs.normal(size=3)
        x2 = rs.normal(size=3)
    assert rs in f.reads and rs in f.writes
    assert not (x1 == x2).all()
    assert (rs.get_key() == before).all()  # the write landed in the frame, not the state

    def pure(key):  # what a facade transform does: swap the value in, collect the write
        with frame({rs: key}) as fr:
            out = rs.uniform(size=3)
        return out, fr.values[rs]

    out, new_key = jax.jit(pure)(before)
    assert (out == jr.uniform(jr.split(before)[1], (3,))).all()
    assert (new_key == jr.split(before)[0]).all()


def test_random_state_is_found_by_graph():
    class Model(facade.nn.Module if hasattr(facade, "nn") else object):
        pass

    from facade import graph

    m = Model()
    m.rng = RandomState(0)
    m.w = facade.ParamState(jnp.zeros(1))
    assert list(graph.states(m, RandomState)) == [("rng",)]
    assert list(graph.states(m, facade.ParamState)) == [("w",)]


# Distributions cheap to compile, drawn together under one jit: name -> (args, expected mean).
N = 20000
CHEAP = {
    "random": ((), 0.5),
    "uniform": ((2.0, 4.0), 3.0),
    "normal": ((1.0, 2.0), 1.0),
    "truncated_normal": ((0.0, 10.0, None, 1.0, 2.0), 2.018),
    "lognormal": ((0.0, 0.5), float(np.exp(0.125))),
    "randint": ((0, 10), 4.5),
    "bernoulli": ((0.3,), 0.3),
    "rademacher": ((), 0.0),
    "categorical": ((jnp.log(jnp.array([0.2, 0.8])),), 0.8),
    "choice": ((jnp.array([1.0, 3.0]),), 2.0),
    "exponential": ((2.0,), 2.0),
    "laplace": ((1.0, 2.0), 1.0),
    "logistic": ((1.0, 2.0), 1.0),
    "gumbel": ((1.0, 2.0), 1.0 + 2 * 0.5772),
    "pareto": ((3.0,), 1.5),
    "weibull_min": ((2.0, 3.0), 3 * 0.886227),
    "wald": ((2.0, 3.0), 2.0),
    "triangular": ((0.0, 0.25, 1.0), 1.25 / 3),
}


def test_distributions_shapes_and_means():
    rs = RandomState(0)

    @jax.jit
    def draw_all(key):
        draws = {
            name: getattr(rs, name)(*args, size=(N,), key=key)
            for name, (args, _) in CHEAP.items()
            if name != "truncated_normal"
        }
        draws["truncated_normal"] = rs.truncated_normal(0.0, 10.0, N, 1.0, 2.0, key=key)
        draws["permutation"] = rs.permutation(5, key=key)
        draws["choice_no_replace"] = rs.choice(4, size=4, replace=False, key=key)
        return draws

    before = rs.get_key()
    out = draw_all(jr.PRNGKey(0))
    assert (rs.get_key() == before).all()  # key= everywhere: the state never moved
    for name, (_, mean) in CHEAP.items():
        x = np.asarray(out[name], dtype=np.float64)
        assert x.shape == (N,), name
        if mean is not None:
            assert abs(x.mean() - mean) < 0.05 * max(1.0, abs(mean)), (name, x.mean(), mean)
    assert out["randint"].dtype == jnp.int32 and out["bernoulli"].dtype == jnp.bool_
    assert out["normal"].dtype == jnp.float32
    assert abs(float(out["normal"].std()) - 2.0) < 0.05  # loc 1, scale 2
    assert float(out["random"].min()) >= 0 and float(out["random"].max()) < 1
    assert set(np.unique(out["rademacher"])) == {-1, 1}
    assert float(out["truncated_normal"].min()) >= 0 and float(out["truncated_normal"].max()) <= 10
    assert int(out["randint"].min()) == 0 and int(out["randint"].max()) == 9
    assert sorted(out["permutation"].tolist()) == [0, 1, 2, 3, 4]
    assert sorted(out["choice_no_replace"].tolist()) == [0, 1, 2, 3]


class FakeJaxRandom:
    """Stands in for jax.random inside facade.random: records each draw's call (no compiling).

    The semantics of the expensive samplers (gamma family, multivariate) were checked once
    against their known moments; here we check each wrapper passes the right arguments.
    """

    REAL = ("split", "PRNGKey", "key_data")

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        if name in self.REAL:
            return getattr(jax.random, name)

        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return jnp.ones((), jnp.float32)

        return record


K = jr.PRNGKey(0)
F32, I32 = np.dtype("float32"), np.dtype("int32")
# (method, args, kwargs) -> (jax.random name, args after the key, kwargs, result for a draw of 1)
PLUMBING = [
    ("gamma", (2.0, 3.0), {"size": 4}, ("gamma", (2.0, (4,), F32), {}, 3.0)),
    ("standard_gamma", (2.0,), {}, ("gamma", (2.0, (), F32), {}, 1.0)),
    ("beta", (2.0, 6.0), {"size": (2, 3)}, ("beta", (2.0, 6.0, (2, 3), F32), {}, 1.0)),
    ("loggamma", (2.0,), {"size": 2}, ("loggamma", (2.0, (2,), F32), {}, 1.0)),
    ("chisquare", (3.0,), {}, ("chisquare", (3.0, (), F32), {}, 1.0)),
    ("t", (5.0,), {"size": 2}, ("t", (5.0, (2,), F32), {}, 1.0)),
    ("standard_t", (5.0,), {}, ("t", (5.0, (), F32), {}, 1.0)),
    ("f", (5.0, 10.0), {}, ("f", (5.0, 10.0, (), F32), {}, 1.0)),
    ("poisson", (3.0,), {"size": 2}, ("poisson", (3.0, (2,), I32), {}, 1.0)),
    ("geometric", (0.25,), {}, ("geometric", (0.25, (), I32), {}, 1.0)),
    ("binomial", (10, 0.2), {"size": 3}, ("binomial", (10, 0.2, (3,), F32), {}, 1)),
    ("wald", (2.0, 4.0), {}, ("wald", (0.5, (), F32), {}, 4.0)),
    ("weibull", (1.5,), {}, ("weibull_min", (1.0, 1.5, (), F32), {}, 1.0)),
    ("weibull_min", (1.5, 2.0), {}, ("weibull_min", (2.0, 1.5, (), F32), {}, 1.0)),
    ("rayleigh", (2.0,), {}, ("rayleigh", (2.0, (), F32), {}, 1.0)),
    ("maxwell", (), {"size": 2}, ("maxwell", ((2,), F32), {}, 1.0)),
    (
        "double_sided_maxwell",
        (1.0, 2.0),
        {},
        ("double_sided_maxwell", (1.0, 2.0, (), F32), {}, 1.0),
    ),
    ("generalized_normal", (2.0,), {}, ("generalized_normal", (2.0, (), F32), {}, 1.0)),
    ("exponential", (2.0,), {}, ("exponential", ((), F32), {}, 2.0)),
    ("standard_exponential", (), {}, ("exponential", ((), F32), {}, 1.0)),
    ("laplace", (1.0, 2.0), {}, ("laplace", ((), F32), {}, 3.0)),
    ("cauchy", (1.0, 2.0), {}, ("cauchy", ((), F32), {}, 3.0)),
    ("standard_cauchy", (), {}, ("cauchy", ((), F32), {}, 1.0)),
    ("lognormal", (0.0, 2.0), {}, ("normal", ((), F32), {}, float(np.exp(2.0)))),
    ("dirichlet", ([1.0, 2.0],), {"size": 4}, ("dirichlet", ([1.0, 2.0], (4,), F32), {}, 1.0)),
    ("dirichlet", ([1.0, 2.0],), {}, ("dirichlet", ([1.0, 2.0], None, F32), {}, 1.0)),
    (
        "multivariate_normal",
        ([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]),
        {"size": 5, "method": "svd"},
        ("multivariate_normal", ([0.0, 0.0], np.eye(2), (5,), F32, "svd"), {}, 1.0),
    ),
    ("orthogonal", (3,), {"size": 2}, ("orthogonal", (3, (2,), F32), {}, 1.0)),
    ("ball", (3,), {"size": 4}, ("ball", (3, 2, (4,), F32), {}, 1.0)),
    (
        "multinomial",
        (10, [0.2, 0.8]),
        {"size": 5},
        ("multinomial", (10, [0.2, 0.8]), {"shape": (5, 2), "dtype": F32}, 1),
    ),
    ("bits", (), {"size": 2}, ("bits", ((2,), None), {}, 1.0)),
    ("categorical", ([0.0, 1.0],), {"size": 3}, ("categorical", ([0.0, 1.0], -1, (3,)), {}, 1.0)),
    ("permutation", (5,), {"axis": 0}, ("permutation", (5, 0, False), {}, 1.0)),
    ("shuffle", ([1, 2],), {}, ("permutation", ([1, 2], 0, False), {}, 1.0)),
    ("choice", (4,), {"size": 2, "replace": False}, ("choice", (4, (2,), False, None), {}, 1.0)),
    ("triangular", (0.0, 0.5, 1.0), {}, ("triangular", (0.0, 0.5, 1.0, (), F32), {}, 1.0)),
    ("pareto", (3.0,), {}, ("pareto", (3.0, (), F32), {}, 1.0)),
]


def same(a, b):
    if isinstance(b, np.dtype) or b is None or isinstance(b, str):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.allclose(a, b)


@pytest.mark.parametrize("method, args, kwargs, expected", PLUMBING, ids=[p[0] for p in PLUMBING])
def test_wrappers_pass_the_right_arguments_to_jax(monkeypatch, method, args, kwargs, expected):
    fake = FakeJaxRandom()
    monkeypatch.setattr(random, "jr", fake)
    rs = RandomState(0)
    out = getattr(rs, method)(*args, key=K, **kwargs)
    name, jargs, jkwargs, result = expected
    assert len(fake.calls) == 1
    called, cargs, ckwargs = fake.calls[0]
    assert called == name
    assert cargs[0] is K
    assert len(cargs) - 1 == len(jargs), cargs
    assert all(same(a, b) for a, b in zip(cargs[1:], jargs, strict=True)), cargs
    assert ckwargs.keys() == jkwargs.keys() and all(same(ckwargs[k], jkwargs[k]) for k in jkwargs)
    assert np.allclose(np.asarray(out, np.float64), result)
    if isinstance(result, int):  # the wrapper casts JAX's float counts to ints
        assert np.asarray(out).dtype == I32


def test_dtype_follows_environ_precision():
    rs = RandomState(0)
    with environ.context(precision=16):
        assert rs.normal(size=3).dtype == jnp.float16
    with environ.context(precision=64):
        assert rs.uniform(size=3).dtype == jnp.float64
    assert rs.normal(size=3).dtype == jnp.float32
    assert rs.normal(size=3, dtype=jnp.float16).dtype == jnp.float16


@pytest.mark.parametrize(
    "call, exc, name",
    [
        (lambda rs: rs.normal(size="ab"), TypeError, "size"),
        (lambda rs: rs.normal(size=2.5), TypeError, "size"),
        (lambda rs: rs.normal(size=(2, -1)), ValueError, "size"),
        (lambda rs: rs.normal(size=2, dtype=jnp.int32), TypeError, "dtype"),
        (lambda rs: rs.randint(3, size=2, dtype=jnp.float32), TypeError, "dtype"),
        (lambda rs: rs.normal(size=2, dtype="nonsense"), TypeError, "dtype"),
        (lambda rs: rs.normal(size=2, key="k"), TypeError, "key"),
        (lambda rs: rs.normal(size=2, key=jnp.zeros(2)), TypeError, "key"),
        (lambda rs: rs.split_key(0), ValueError, "n"),
        (lambda rs: rs.split_key(1.5), TypeError, "n"),
        (lambda rs: rs.split_keys(-2), ValueError, "n"),
        (lambda rs: rs.seed("x"), TypeError, "seed_or_key"),
        (lambda rs: rs.set_key(None), TypeError, "key"),
        (lambda rs: rs.orthogonal(0), ValueError, "n"),
        (lambda rs: rs.rand(2, 1.5), TypeError, "size|dn"),
    ],
)
def test_bad_arguments(call, exc, name):
    rs = RandomState(0)
    with pytest.raises(exc, match=name):
        call(rs)


def test_docstring_examples():
    result = doctest.testmod(random)
    assert result.failed == 0 and result.attempted > 0
