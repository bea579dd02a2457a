"""Filters: every form, the combinators and their reprs, and the errors for bad filters."""

import jax.numpy as jnp
import pytest

import facade
from facade._filters import All, Any, Not, to_predicate

P = facade.ParamState(jnp.zeros(2))
H = facade.HiddenState(jnp.zeros(2))
S = facade.ShortTermState(jnp.zeros(2))
PLAIN = facade.State(jnp.zeros(2))
ALL = [P, H, S, PLAIN]


def matches(filter, path=("x",)):
    pred = to_predicate(filter)
    return [pred(path, s) for s in ALL]


def test_state_subclass_is_isinstance():
    assert matches(facade.ParamState) == [True, False, False, False]
    assert matches(facade.ShortTermState) == [False, True, True, False]  # HiddenState subclass
    assert matches(facade.State) == [True, True, True, True]


def test_tuple_is_any_of():
    assert matches((facade.ParamState, facade.HiddenState)) == [True, True, False, False]
    assert matches(()) == [False] * 4
    assert matches(((facade.ParamState,), None)) == [True, False, False, False]


def test_everything_and_nothing():
    assert matches(...) == [True] * 4
    assert matches(True) == [True] * 4
    assert matches(None) == [False] * 4
    assert matches(False) == [False] * 4


def test_callable_receives_path_and_state():
    seen = []

    def pred(path, state):
        seen.append(path)
        return path[-1] == "w"

    assert matches(pred, ("layers", 0, "w")) == [True] * 4
    assert matches(pred, ("b",)) == [False] * 4
    assert seen[0] == ("layers", 0, "w")
    assert matches(lambda path, state: state is H) == [False, True, False, False]


def test_callable_result_made_bool():
    assert to_predicate(lambda p, s: 1)(("x",), P) is True
    assert to_predicate(lambda p, s: [])(("x",), P) is False


def test_combinators():
    assert matches(Not(facade.ParamState)) == [False, True, True, True]
    assert matches(All(facade.ShortTermState, Not(facade.HiddenState))) == [
        False,
        False,
        True,
        False,
    ]
    assert matches(Any(facade.ParamState, facade.HiddenState)) == [True, True, False, False]
    assert matches(All()) == [True] * 4
    assert matches(Any()) == [False] * 4
    assert matches(Not(...)) == [False] * 4
    assert matches(Not((facade.ParamState, facade.HiddenState))) == [False, False, True, True]
    assert to_predicate(Not(P.__class__)) == Not(facade.ParamState)


def test_combinator_reprs():
    assert repr(Not(facade.ParamState)) == "Not(ParamState)"
    assert repr(All(facade.ShortTermState, Not(facade.HiddenState))) == (
        "All(ShortTermState, Not(HiddenState))"
    )
    assert repr(Any(facade.ParamState, ...)) == "Any(ParamState, ...)"
    assert repr(Any((facade.ParamState,), None)) == "Any((ParamState,), None)"

    def is_w(path, state):
        return True

    assert repr(Not(is_w)) == "Not(test_combinator_reprs.<locals>.is_w)"


@pytest.mark.parametrize(
    "bad", [3, 1.5, "ParamState", b"x", [facade.ParamState], {}, int, object()]
)
def test_bad_filters_raise_type_error_naming_them(bad):
    with pytest.raises(TypeError, match="filter"):
        to_predicate(bad)


def test_error_messages_name_the_filter():
    with pytest.raises(TypeError, match="'ParamState'"):
        to_predicate("ParamState")
    with pytest.raises(TypeError, match="int is a class but not a State subclass"):
        to_predicate(int)
    with pytest.raises(TypeError, match="use a tuple"):
        to_predicate([facade.ParamState])
    with pytest.raises(TypeError, match=r"\(path, state\)"):
        to_predicate(lambda state: True)
    with pytest.raises(TypeError, match="3"):
        Not(3)
    with pytest.raises(TypeError, match="'x'"):
        Any(facade.ParamState, "x")
    with pytest.raises(TypeError):
        to_predicate((facade.ParamState, 7))


def test_brainstate_named_filters():
    from facade.util.filter import Everything, Nothing, OfType, PathContains, WithTag

    assert matches(OfType(facade.HiddenState)) == matches(facade.HiddenState)
    assert matches(OfType(facade.ParamState)) == [True, False, False, False]
    assert matches(Everything()) == [True] * 4
    assert matches(Nothing()) == [False] * 4
    assert matches(PathContains("w"), path=("layer", "w")) == [True] * 4
    assert matches(PathContains("w"), path=("layer", "b")) == [False] * 4

    class Tagged(facade.State):
        tag = "fast"  # facade's State has no tag slot: a subclass carries one

    tagged = Tagged(jnp.zeros(1))
    assert to_predicate(WithTag("fast"))((), tagged) is True
    assert to_predicate(WithTag("fast"))((), PLAIN) is False
    # They compose with the other forms, compare by argument and read back as written.
    assert matches(All(OfType(facade.HiddenState), Not(facade.ShortTermState))) == [False] * 4
    assert OfType(facade.ParamState) == OfType(facade.ParamState)
    assert len({OfType(facade.ParamState), OfType(facade.ParamState)}) == 1
    assert repr(Not(OfType(facade.ParamState))) == "Not(OfType(ParamState))"
    assert repr(Everything()) == "Everything()"
    with pytest.raises(TypeError, match="ParamState"):  # the hook checks the annotation first
        OfType("ParamState")


def test_brainstate_util_filter_selects_module_states():
    class Net(facade.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = facade.ParamState(jnp.ones(2))
            self.h = facade.HiddenState(jnp.zeros(2))

    net = Net()
    picked = net.states(facade.util.filter.OfType(facade.HiddenState))
    assert list(picked.values()) == [net.h]
    by_path = net.states(facade.util.filter.PathContains("w"))
    assert list(by_path.values()) == [net.w]
