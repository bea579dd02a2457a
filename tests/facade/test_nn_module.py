"""facade.nn.Module semantics: update(), hooks, init_all_states/reset_all_states, the node tree,
``>>``, the repr, Sequential, and a model's state paths against brainstate's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import nn
from facade.nn import init

ZERO = init.ZeroInit()


class Scale(nn.Module):
    def __init__(self, factor, name=None):
        super().__init__(name=name)
        self.factor = facade.ParamState(jnp.asarray(factor))

    def update(self, x):
        return x * self.factor.value


class Recorder(nn.Module):
    """Records its init_state/reset_state calls in a shared log."""

    def __init__(self, label, log, children=()):
        super().__init__()
        self.label, self.log, self.kids = label, log, list(children)

    def init_state(self, *args, **kwargs):
        self.log.append(("init", self.label, args, kwargs))

    def reset_state(self, *args, **kwargs):
        self.log.append(("reset", self.label, args, kwargs))


def test_call_forwards_to_update_and_rrshift():
    layer = Scale(2.0)
    assert float(layer(3.0)) == 6.0
    assert float(jnp.array(3.0) >> layer) == 6.0
    assert float(3.0 >> layer) == 6.0
    with pytest.raises(NotImplementedError, match="update"):
        nn.Module()(1.0)


def test_a_subclass_defining_call_still_works():
    class Old(nn.Module):
        def __call__(self, x):
            return x + 1

    assert Old()(1) == 2


def test_init_all_states_calls_every_module_children_first():
    log = []
    a1 = Recorder("a1", log)
    root = Recorder("root", log, [Recorder("a", log, [a1]), Recorder("b", log), a1])
    assert nn.init_all_states(root, 3, batch_size=2) is root
    assert log == [  # brainstate's order: a module after its sub-modules, siblings by path
        ("init", "a1", (3,), {"batch_size": 2}),
        ("init", "a", (3,), {"batch_size": 2}),
        ("init", "b", (3,), {"batch_size": 2}),
        ("init", "root", (3,), {"batch_size": 2}),
    ]  # a1 is shared: called once
    log.clear()
    nn.reset_all_states(root, batch_size=4)
    assert [(e[0], e[1], e[3]) for e in log] == [
        ("reset", n, {"batch_size": 4}) for n in ("a1", "a", "b", "root")
    ]


def test_node_to_exclude_skips_the_matching_modules_only():
    log = []
    root = Recorder("root", log, [Recorder("a", log, [Recorder("a1", log)]), Recorder("b", log)])
    nn.init_all_states(root, node_to_exclude=lambda path, m: m.label == "a")
    assert [e[1] for e in log] == ["a1", "b", "root"]
    log.clear()
    nn.reset_all_states(root, node_to_exclude=Recorder)
    assert log == []
    with pytest.raises(TypeError, match="node filter"):
        nn.init_all_states(root, node_to_exclude=3)


def test_init_all_states_sizes_hidden_states_by_batch_size():
    net = nn.Sequential(nn.Linear(3, 4, w_init=ZERO), nn.GRUCell(4, 5, w_init=ZERO))
    nn.init_all_states(net, batch_size=7)
    assert net.layers[1].h.value.shape == (7, 5)
    assert isinstance(net.layers[1].h, facade.HiddenState)
    nn.init_all_states(net)
    assert net.layers[1].h.value.shape == (5,)


class Net(nn.Module):
    def __init__(self):
        super().__init__(name="net")
        self.encoder = nn.Sequential(nn.Linear(4, 3, w_init=ZERO), jax.nn.relu, Scale(1.0))
        self.heads = {"mean": Scale(2.0), "var": Scale(3.0)}
        self.cell = nn.ValinaRNNCell(3, 2, w_init=ZERO)
        self.tied = self.heads["mean"]  # shared: one node, at its first path in sorted order


def test_nodes_children_and_hierarchy():
    net = Net()
    assert list(net.nodes()) == [
        (),
        ("cell",),
        ("cell", "W"),
        ("encoder",),
        ("encoder", "layers", 0),
        ("encoder", "layers", 2),
        ("heads", "mean"),
        ("heads", "var"),
    ]
    assert net.nodes()[()] is net and net.nodes()[("heads", "mean")] is net.tied
    assert list(net.nodes(Scale)) == [("encoder", "layers", 2), ("heads", "mean"), ("heads", "var")]
    scales, others = net.nodes(Scale, ...)
    assert len(scales) == 3 and len(others) == 5
    assert list(net.nodes(allowed_hierarchy=(1, 1))) == [
        ("cell",),
        ("encoder",),
        ("heads", "mean"),
        ("heads", "var"),
    ]
    assert list(net.nodes(allowed_hierarchy=(2, 2))) == [
        ("cell", "W"),
        ("encoder", "layers", 0),
        ("encoder", "layers", 2),
    ]
    names = [name for name, _ in net.named_children()]
    assert names == ["cell", "encoder", "heads.mean", "heads.var"]
    assert [type(m).__name__ for m in net.children()] == [
        "ValinaRNNCell",
        "Sequential",
        "Scale",
        "Scale",
    ]
    assert list(net.nodes(lambda path, m: path[:1] == ("heads",))) == [
        ("heads", "mean"),
        ("heads", "var"),
    ]
    with pytest.raises(ValueError, match="allowed_hierarchy"):
        net.nodes(allowed_hierarchy=(2, 1))
    with pytest.raises(TypeError, match="node filter"):
        net.nodes("Scale")


def test_states_are_found_through_the_tree():
    net = Net()
    nn.init_all_states(net, batch_size=1)
    assert list(net.states()) == [
        ("cell", "W", "weight"),
        ("cell", "h"),
        ("encoder", "layers", 0, "weight"),
        ("encoder", "layers", 2, "factor"),
        ("heads", "mean", "factor"),
        ("heads", "var", "factor"),
    ]
    assert list(net.states(facade.HiddenState)) == [("cell", "h")]


def test_repr_shows_the_tree():
    text = repr(nn.Sequential(nn.Linear(4, 3, w_init=ZERO), jax.nn.relu, nn.Dropout(0.5)))
    assert text == (
        "Sequential(\n"
        "  in_size=(4,),\n"
        "  out_size=(3,),\n"
        "  layers=[\n"
        "    Linear(\n"
        "      in_size=(4,),\n"
        "      out_size=(3,),\n"
        "      weight=ParamState({'bias': float32[3], 'weight': float32[4, 3]}),\n"
        "    ),\n"
        "    relu,\n"
        "    Dropout(\n"
        "      prob=0.5,\n"
        "      broadcast_dims=(),\n"
        "    ),\n"
        "  ],\n"
        ")"
    )
    cell = nn.init_all_states(nn.GRUCell(2, 3, w_init=ZERO), batch_size=4)
    text = repr(cell)
    assert text.startswith("GRUCell(\n  in_size=(2,),\n  out_size=(3,),\n  activation=tanh,\n")
    assert "  h=HiddenState(float32[4, 3]),\n" in text
    assert repr(Scale(1.0, name="s")).startswith("Scale['s'](")


def test_sequential_sizes_indexing_and_append():
    net = nn.Sequential(nn.Linear(4, 3, w_init=ZERO), nn.ReLU())
    assert (net.in_size, net.out_size, len(net)) == ((4,), (3,), 2)
    assert isinstance(net[0], nn.Linear)
    tail = nn.Sequential(nn.Linear(2, 2, w_init=ZERO), nn.Linear(2, 5, w_init=ZERO))[1:]
    assert isinstance(tail, nn.Sequential) and tail.out_size == (5,)
    net.append(nn.Linear(3, 6, w_init=ZERO))
    assert net.out_size == (6,) and net(jnp.ones((2, 4))).shape == (2, 6)
    with pytest.raises(TypeError, match="first"):
        nn.Sequential(jax.nn.relu)
    with pytest.raises(TypeError, match="layer"):
        net.append(3)
    with pytest.raises(ValueError, match="slice"):
        nn.Sequential(nn.Linear(2, 2, w_init=ZERO), jax.nn.relu)[1:]


def test_module_gradients_and_jit_write_back():
    net = nn.Sequential(Scale(2.0), Scale(3.0))
    x = jnp.array([1.0, 2.0])
    params = net.states(facade.ParamState)
    grads = facade.transform.grad(lambda x: jnp.sum(net(x)), params)(x)
    assert {k: float(v) for k, v in grads.items()} == {
        ("layers", 0, "factor"): 3.0 * 3.0,  # d/da sum(a b x) = b sum(x)
        ("layers", 1, "factor"): 2.0 * 3.0,
    }

    @facade.transform.jit
    def step(x):
        for state in params.values():
            state.value = state.value + 1.0
        return net(x)

    np.testing.assert_allclose(step(x), 12.0 * x)
    assert float(net.layers[0].factor.value) == 3.0 and float(net.layers[1].factor.value) == 4.0


def test_name_is_read_only_and_checked():
    assert Scale(1.0, name="s").name == "s"
    with pytest.raises(AttributeError):
        Scale(1.0).name = "t"
    with pytest.raises(TypeError, match="name"):
        nn.Linear(2, 2, name=3)


def test_model_state_paths_equal_brainstates():
    """A model of every layer kind; the expected paths and shapes are brainstate 0.5.4's.

    brainstate gives (this model, ``init_all_states(net, batch_size=3)``) exactly these paths
    and value shapes; its classes differ by name only (BatchState and NormalizationParamState
    are its LongTermState and ParamState subclasses).
    """

    class Everything(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4, embedding_init=ZERO)
            self.conv = nn.Conv1d((6, 4), 8, 3, w_init=ZERO, b_init=ZERO)
            self.bn = nn.BatchNorm1d((6, 8))
            self.norm = nn.LayerNorm((6, 8))
            self.rms = nn.RMSNorm((8,))
            self.image = nn.Conv2d((5, 5, 2), 3, 3, w_init=ZERO)
            self.cells = [
                nn.ValinaRNNCell(8, 5, w_init=ZERO),
                nn.GRUCell(5, 5, w_init=ZERO),
                nn.LSTMCell(5, 5, w_init=ZERO),
            ]
            self.head = nn.Sequential(
                nn.Linear(5, 5, w_init=ZERO),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Linear(5, 2, w_init=ZERO, b_init=None),
            )

    net = nn.init_all_states(Everything(), batch_size=3)
    shapes = {
        path: jax.tree.map(lambda v: tuple(np.shape(v)), state.value)
        for path, state in net.states().items()
    }
    assert shapes == {
        ("bn", "running_mean"): (1, 8),
        ("bn", "running_var"): (1, 8),
        ("bn", "weight"): {"bias": (1, 8), "scale": (1, 8)},
        ("cells", 0, "W", "weight"): {"bias": (5,), "weight": (13, 5)},
        ("cells", 0, "h"): (3, 5),
        ("cells", 1, "Wh", "weight"): {"bias": (5,), "weight": (10, 5)},
        ("cells", 1, "Wrz", "weight"): {"bias": (10,), "weight": (10, 10)},
        ("cells", 1, "h"): (3, 5),
        ("cells", 2, "W", "weight"): {"bias": (20,), "weight": (10, 20)},
        ("cells", 2, "c"): (3, 5),
        ("cells", 2, "h"): (3, 5),
        ("conv", "weight"): {"bias": (1, 8), "weight": (3, 4, 8)},
        ("embed", "weight"): (10, 4),
        ("head", "layers", 0, "weight"): {"bias": (5,), "weight": (5, 5)},
        ("head", "layers", 3, "weight"): {"weight": (5, 2)},
        ("image", "weight"): {"weight": (3, 3, 2, 3)},
        ("norm", "weight"): {"bias": (1, 8), "scale": (1, 8)},
        ("rms", "scale"): {"scale": (8,)},
    }
    assert list(shapes) == sorted(shapes, key=lambda p: [(isinstance(k, str), k) for k in p])
    kinds = {p: type(s).__name__ for p, s in net.states().items()}
    assert {p for p, k in kinds.items() if k == "HiddenState"} == {
        ("cells", 0, "h"),
        ("cells", 1, "h"),
        ("cells", 2, "c"),
        ("cells", 2, "h"),
    }
    assert {p for p, k in kinds.items() if k == "LongTermState"} == {
        ("bn", "running_mean"),
        ("bn", "running_var"),
    }
    assert len(net.states(facade.ParamState)) == len(shapes) - 6
