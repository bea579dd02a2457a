"""facade.typing and facade.mixin: brainstate 0.5.4's aliases, modes, describers and type joins
(behaviour from brainstate's documentation, checked against brainstate 0.5.4)."""

from __future__ import annotations

import pickle
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import mixin
from facade import typing as bt


class TestTyping:
    def test_size_and_arraylike_admit_what_brainstate_documents(self) -> None:
        assert set(typing.get_args(bt.Size)) >= {int, np.integer}
        assert set(typing.get_args(bt.ArrayLike)) >= {
            jax.Array,
            np.ndarray,
            np.bool_,
            np.number,
            bool,
            int,
            float,
            complex,
        }
        assert set(typing.get_args(bt.SeedOrKey)) == {int, jax.Array, np.ndarray}
        assert bt.DType is np.dtype

    def test_arraylike_admits_brainunit_quantities(self) -> None:
        u = pytest.importorskip("brainunit")
        assert u.Quantity in typing.get_args(bt.ArrayLike)

    def test_filter_covers_the_filter_forms(self) -> None:
        literal = typing.get_args(bt.FilterLiteral)
        assert {type, str, bool, type(None)} <= set(literal)
        assert typing.get_origin(bt.PathParts) is tuple

    def test_pytree_subscripts_to_cached_markers_and_never_instantiates(self) -> None:
        tree = bt.PyTree[jax.Array]
        assert tree is bt.PyTree[jax.Array]
        assert issubclass(tree, bt.PyTree) and tree.leaftype is jax.Array
        assert tree.structure is None
        named = bt.PyTree[float, " T  ... "]
        assert named.leaftype is float and named.structure == "T ..."
        with pytest.raises(RuntimeError, match="cannot be instantiated"):
            bt.PyTree()

    @pytest.mark.parametrize(
        "item",
        [(int, 1), (int, ""), (int, "..."), (int, "a ... b"), (int, "1x"), (int, "T", "U")],
    )
    def test_pytree_refuses_malformed_structures(self, item: tuple) -> None:
        with pytest.raises(ValueError):
            bt.PyTree[item]

    def test_pytree_refuses_an_unhashable_leaf(self) -> None:
        with pytest.raises(TypeError, match="hashable"):
            bt.PyTree[[int]]

    def test_array_annotation_and_missing(self) -> None:
        assert "'n', float" in repr(bt.Array["n", float])
        assert isinstance(bt.Missing(), bt.Missing)

    def test_key_protocol_is_runtime_checkable(self) -> None:
        assert isinstance("name", bt.Key) and isinstance(0, bt.Key)
        assert not isinstance([], bt.Key)


class TestModes:
    def test_modes_compare_and_hash_by_class(self) -> None:
        assert mixin.Training() == mixin.Training()
        assert mixin.Batching(2) == mixin.Batching(4)  # brainstate: equality is by type
        assert mixin.Training() != mixin.Batching()
        assert len({mixin.Training(), mixin.Training()}) == 1
        assert repr(mixin.Batching(8, 1)) == "Batching(in_size=8, axis=1)"
        assert repr(mixin.Training()) == "Training"

    def test_is_a_is_exact_and_has_includes_subclasses(self) -> None:
        class Fancy(mixin.Training):
            pass

        mode = Fancy()
        assert mode.has(mixin.Training) and mode.has(mixin.Mode)
        assert mode.is_a(Fancy) and not mode.is_a(mixin.Training)

    def test_joint_mode_combines_modes(self) -> None:
        mode = mixin.JointMode(mixin.Training(), mixin.Batching(batch_size=16, batch_axis=1))
        assert mode.has(mixin.Training) and mode.has(mixin.Batching)
        assert mode.batch_size == 16 and mode.batch_axis == 1  # looked up in the parts
        assert mode.is_a(mixin.JointTypes[mixin.Batching, mixin.Training])
        assert not mode.is_a(mixin.Training)
        assert repr(mode) == "JointMode(Training, Batching(in_size=16, axis=1))"
        with pytest.raises(AttributeError):
            _ = mode.nothing_here

    def test_joint_mode_refuses_non_modes(self) -> None:
        with pytest.raises(TypeError):
            mixin.JointMode(mixin.Training(), "batching")  # type: ignore[arg-type]


class TestTypeJoins:
    def test_joint_types_is_an_intersection(self) -> None:
        class A:
            pass

        class B:
            pass

        class AB(A, B):
            pass

        joint = mixin.JointTypes[A, B]
        assert isinstance(AB(), joint) and not isinstance(A(), joint)
        assert issubclass(AB, joint) and not issubclass(B, joint)
        assert joint == mixin.JointTypes(B, A) and hash(joint) == hash(mixin.JointTypes[B, A])
        assert mixin.JointTypes[A] is A and mixin.JointTypes[A, A] is A
        with pytest.raises(TypeError, match="Cannot instantiate"):
            joint()
        with pytest.raises(TypeError):
            mixin.JointTypes()

    def test_one_of_types_is_a_union(self) -> None:
        either = mixin.OneOfTypes[int, str]
        assert isinstance(1, either) and isinstance("a", either) and not isinstance(1.0, either)
        assert either == mixin.OneOfTypes[str, int]
        assert mixin.OneOfTypes[int] is int

    def test_joint_alias_pickles(self) -> None:
        joint = mixin.JointTypes[mixin.Training, mixin.Batching]
        assert pickle.loads(pickle.dumps(joint)) == joint

    def test_clients_subclass_the_generic_alias(self) -> None:
        # brainpy imports _JointGenericAlias to recognise JointTypes[...] annotations.
        assert isinstance(mixin.JointTypes[int, str], mixin._JointGenericAlias)


class TestParamDescriber:
    def test_desc_defers_construction_and_merges_arguments(self) -> None:
        class Layer(mixin.ParamDesc):
            def __init__(self, n: int, scale: float = 1.0, name: str = ""):
                self.n, self.scale, self.name = n, scale, name

        d = Layer.desc(3, scale=2.0)
        assert isinstance(d, mixin.ParamDescriber)
        built = d(name="x")
        assert (built.n, built.scale, built.name) == (3, 2.0, "x")
        assert d.init(scale=5.0).scale == 5.0  # later keywords win
        assert d.identifier == (Layer, (3,), {"scale": 2.0})
        assert repr(d) == "ParamDescriber(Layer(3, scale=2.0))"
        with pytest.raises(AttributeError):
            d.identifier = None

    def test_isinstance_against_a_subscripted_describer(self) -> None:
        class Base(mixin.ParamDesc):
            pass

        class Sub(Base):
            pass

        assert isinstance(Sub.desc(), mixin.ParamDescriber[Base])
        assert not isinstance(Base.desc(), mixin.ParamDescriber[Sub])
        assert not isinstance(Sub(), mixin.ParamDescriber[Base])

    def test_describer_cannot_be_subclassed(self) -> None:
        with pytest.raises(TypeError, match="not an acceptable base type"):
            type("Sub", (mixin.ParamDescriber,), {})

    def test_facade_modules_have_desc(self) -> None:
        layer = facade.nn.Linear.desc(2, 3)()
        assert isinstance(layer, facade.nn.Linear) and layer(jnp.ones(2)).shape == (3,)


class TestSmallHelpers:
    def test_hashable_dict_hashes_by_items(self) -> None:
        h = mixin.HashableDict({"a": [1, 2], 0: "x"})  # mixed key types, an unhashable value
        assert h["a"] == "[1, 2]"
        assert hash(h) == hash(mixin.HashableDict({0: "x", "a": "[1, 2]"}))

    def test_not_implemented_marks_and_raises(self) -> None:
        @mixin.not_implemented
        def update(x: int) -> int:
            return x

        assert mixin.is_not_implemented(update) and not mixin.is_not_implemented(len)
        with pytest.raises(NotImplementedError, match="update is not implemented"):
            update(1)

    def test_hashable(self) -> None:
        assert mixin.hashable(1) and not mixin.hashable({})


def test_names_moved_to_brainpy_are_forwarded_with_a_warning(monkeypatch) -> None:
    import sys
    import types

    fake = types.ModuleType("brainpy")
    fake.mixin = types.SimpleNamespace(AlignPost="the brainpy class")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "brainpy", fake)
    with pytest.warns(DeprecationWarning, match="brainpy.mixin.AlignPost"):
        assert mixin.AlignPost == "the brainpy class"
    with pytest.raises(AttributeError):
        _ = mixin.NotAName
