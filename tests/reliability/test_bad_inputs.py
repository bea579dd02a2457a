"""A catalogue of bad inputs to both packages: loud, precise errors and no damage.

Every row is one bad input. It must raise the expected exception type (type problems TypeError,
value problems ValueError), with a message naming the offending parameter, or, for a State, its
name and the ``file:line`` where it was created. Afterwards every State holds exactly its entry
value, no State holds a tracer and no facade frame is left on the thread's stack.

Under pytest the jaxtyping import hook (``--jaxtyping-packages`` in ``pyproject.toml``)
type-checks every annotated function of both packages, so some rows fail through beartype
before the library's own checks run. Users do not run with the hook, so
``test_catalogue_without_import_hook`` runs this module again in a subprocess without it:
both paths must be right. Rows that only one path gets wrong carry an ``xfail`` for that path.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import pytest

import facade
import functional as F
from facade import transform as T

from ._support import Snapshot


def _hooked() -> bool:
    """Whether the jaxtyping import hook instruments the facade in this process."""
    try:
        facade.State(1.0, name=3)  # type: ignore[arg-type]
    except TypeError as err:
        return type(err).__name__ == "TypeCheckError"
    return False


HOOKED = _hooked()
HERE = os.path.abspath(__file__)

# --- the world every row starts from -------------------------------------------------------


@dataclasses.dataclass
class World:
    w: facade.State  # float32[2], read by ``loss``
    b: facade.State  # float32[], read by ``loss``
    icount: facade.State  # int32[2]
    unused: facade.State  # float32[], never read
    site: dict[str, str]  # name -> "file:line" of creation

    @property
    def states(self) -> list[facade.State]:
        return [self.w, self.b, self.icount, self.unused]

    # functions of the world
    def loss(self, x: Any) -> Any:
        return jnp.sum(self.w.value * x) + self.b.value

    def loss_vec(self, x: Any) -> Any:
        return self.w.value * x + self.b.value


def make_world() -> World:
    line = sys._getframe().f_lineno
    w = facade.ParamState(jnp.array([1.0, 2.0]), name="w")
    b = facade.State(jnp.array(0.5), name="b")
    i = facade.State(jnp.array([1, 2], dtype=jnp.int32), name="icount")
    u = facade.ParamState(jnp.array(3.0), name="unused")
    site = {s.name: f"{HERE}:{line + k}" for k, s in enumerate([w, b, i, u], start=1)}
    return World(w, b, i, u, site)


X = jnp.array([1.0, -1.0])
X3 = jnp.ones(3)
XI = jnp.array([1, 2], dtype=jnp.int32)


def loss2(x: Any, y: Any) -> Any:
    return jnp.sum(x * y)


def vec2(x: Any, y: Any) -> Any:
    return x * y


def custom_transform(f: Callable[..., Any], *, argnums: Any, has_aux: bool) -> Any:
    """A user's JAX-style transform that takes no extra parameters."""
    return jax.grad(f, argnums=argnums, has_aux=has_aux)


def write_str(world: World) -> Callable[[Any], Any]:
    def fn(x: Any) -> Any:
        world.b.value = world.b.value + 1.0  # a legal write first, to be rolled back
        world.w.value = "not an array"
        return world.loss(x)

    return fn


class Model:
    """A tiny object graph for the filter rows."""

    def __init__(self, world: World):
        self.w, self.b = world.w, world.b


try:
    from facade import graph as _graph
except ImportError:  # being written concurrently; its rows are skipped until it exists
    _graph = None
NEEDS_GRAPH = pytest.mark.skipif(_graph is None, reason="facade.graph is not available yet")

# --- the catalogue ---------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    id: str
    call: Callable[[World], Any]
    exc: type[BaseException]
    # A regex searched in the message (DOTALL). ``@name`` stands for the State ``name``: its
    # quoted name, then, later in the message, the file:line where it was created.
    pattern: str
    xfail: str | None = None  # a known library bug: the reason
    marks: tuple[Any, ...] = ()
    # Under the import hook, jaxtyping's own message when beartype rejects a union-typed
    # parameter lists every parameter instead of naming one: then this pattern applies.
    hooked_pattern: str | None = None

    def regex(self, world: World) -> str:
        return re.sub(
            r"@(\w+)",
            lambda m: re.escape(f"'{m.group(1)}'") + ".*" + re.escape(world.site[m.group(1)]),
            self.pattern,
        )


def _cases() -> list[Case]:
    L = Case
    return [
        # --- functions that are not callable ------------------------------------------------
        L("F.grad(int)", lambda W: F.grad(3), TypeError, r"\bfun\b"),
        L("F.vector_grad(None)", lambda W: F.vector_grad(None), TypeError, r"\bfun\b"),
        L("F.vjp(str)", lambda W: F.vjp("f", X), TypeError, r"\bfun\b"),
        L("F.jvp(None)", lambda W: F.jvp(None, (X,), (X,)), TypeError, r"\bfun\b"),
        L(
            "F.transform(transform=int)",
            lambda W: F.transform(loss2, 3),
            TypeError,
            r"\btransform\b",
        ),
        L(
            "T.grad(int)",
            lambda W: T.grad(3, grad_states=W.w),
            TypeError,
            r"\bfun\b",
        ),
        L(
            "T.vector_grad(str)",
            lambda W: T.vector_grad("f"),
            TypeError,
            r"\bfunc\b",
        ),
        L("T.vjp(int)", lambda W: T.vjp(3, X), TypeError, r"\bfun\b"),
        L("T.jvp(int)", lambda W: T.jvp(3, (X,), (X,)), TypeError, r"\bfun\b"),
        L("T.StateFinder(int)", lambda W: T.StateFinder(3), TypeError, r"\bfn\b"),
        L("T.jit(int)", lambda W: T.jit(3), TypeError, r"\bfun\b"),
        L(
            "T.GradientTransform(transform=str)",
            lambda W: T.GradientTransform(W.loss, "grad", grad_states=W.w),
            TypeError,
            r"\btransform\b",
        ),
        # --- argnums: wrong type ------------------------------------------------------------
        L("F.grad(argnums=str)", lambda W: F.grad(loss2, argnums="0"), TypeError, "argnums"),
        L("F.grad(argnums=float)", lambda W: F.grad(loss2, argnums=1.0), TypeError, "argnums"),
        L(
            "F.jacrev(argnums=(0, str))",
            lambda W: F.jacrev(vec2, argnums=(0, "1")),
            TypeError,
            "argnums",
        ),
        L("T.grad(argnums=float)", lambda W: T.grad(loss2, argnums=1.5), TypeError, "argnums"),
        L("T.grad(argnums=bool)", lambda W: T.grad(loss2, argnums=True), TypeError, "argnums"),
        L(
            "T.vjp(argnums=[str])",
            lambda W: T.vjp(loss2, X, X, argnums=["0"]),
            TypeError,
            "argnums",
        ),
        # --- argnums: out of range ---------------------------------------------------------
        L(
            "F.grad(argnums=2) of 2 args",
            lambda W: F.grad(loss2, argnums=2)(X, X),
            ValueError,
            r"argnums=2 is out of range",
        ),
        L(
            "F.grad(argnums=-3) of 2 args",
            lambda W: F.grad(loss2, argnums=-3)(X, X),
            ValueError,
            r"argnums=-3 is out of range",
        ),
        L(
            "T.grad(argnums=5) of 2 args",
            lambda W: T.grad(loss2, argnums=5)(X, X),
            ValueError,
            r"argnums=5 is out of range",
        ),
        L(
            "T.grad(grad_states, argnums=1) of 1 arg",
            lambda W: T.grad(W.loss, grad_states=W.w, argnums=1)(X),
            ValueError,
            r"argnums=1 is out of range",
        ),
        L(
            "T.vjp(argnums=2) of 2 args",
            lambda W: T.vjp(loss2, X, X, argnums=2),
            ValueError,
            r"argnums=2 is out of range",
        ),
        L(
            "F.jacfwd(argnums=(0, 3)) of 2 args",
            lambda W: F.jacfwd(vec2, argnums=(0, 3))(X, X),
            ValueError,
            r"argnums=\(0, 3\) is out of range",
        ),
        L(
            "T.jit(static_argnums=3) of 1 arg",
            lambda W: T.jit(lambda x: x * 2, static_argnums=3)(X),
            ValueError,
            r"static_argnums",
        ),
        # --- argnums: empty or repeated ------------------------------------------------------
        L("F.grad(argnums=())", lambda W: F.grad(loss2, argnums=()), ValueError, "argnums"),
        L(
            "T.grad(argnums=(0, 0))",
            lambda W: T.grad(loss2, argnums=(0, 0)),
            ValueError,
            r"argnums.*repeat",
        ),
        L(
            "F.grad(argnums=(1, -1)) of 2 args",
            lambda W: F.grad(loss2, argnums=(1, -1))(X, X),
            ValueError,
            r"argnums=\(1, -1\) names the same argument twice",
        ),
        L(
            "T.grad(argnums=(1, -1)): negative, as brainstate refuses",
            lambda W: T.grad(loss2, argnums=(1, -1)),
            ValueError,
            r"argnums must be non-negative.*\(1, -1\)",
        ),
        L(
            "F.vjp(argnums=(0, -2)) of 2 args",
            lambda W: F.vjp(loss2, X, X, argnums=(0, -2)),
            ValueError,
            r"argnums=\(0, -2\) names the same argument twice",
        ),
        L(
            "T.jacrev(argnums=(-1, 1)): negative, as brainstate refuses",
            lambda W: T.jacrev(vec2, argnums=(-1, 1)),
            ValueError,
            r"argnums must be non-negative.*\(-1, 1\)",
        ),
        # --- grad_states holding something other than States ---------------------------------
        L(
            "T.grad(grad_states=[State, array])",
            lambda W: T.grad(W.loss, grad_states=[W.w, jnp.ones(2)]),
            TypeError,
            # Under the hook beartype may check either item (it samples one per call) and
            # jaxtyping then lists every parameter: "'grad_states': [ParamState(...), f32[2]]".
            r"grad_states.*(ArrayImpl|f32\[2\])",
        ),
        L(
            "T.grad(grad_states={State, float})",
            lambda W: T.grad(W.loss, grad_states={"w": W.w, "b": 1.0}),
            TypeError,
            r"grad_states.*float",
        ),
        L(
            "T.grad(grad_states=array)",
            lambda W: T.grad(W.loss, grad_states=jnp.ones(2)),
            TypeError,
            "grad_states",
        ),
        L(
            "T.vjp(grad_states=[State, None])",
            lambda W: T.vjp(W.loss, X, grad_states=[W.w, None]),
            TypeError,
            r"grad_states.*None",
        ),
        # --- a grad_state the function never reads ------------------------------------------
        L(
            "T.grad unread grad_state",
            lambda W: T.grad(W.loss, grad_states=[W.w, W.unused])(X),
            ValueError,
            r"@unused.*never reads",
        ),
        L(
            "T.vjp unread grad_state",
            lambda W: T.vjp(W.loss, X, grad_states=W.unused),
            ValueError,
            r"@unused.*never reads",
        ),
        L(
            "T.jacrev unread grad_state (dict)",
            lambda W: T.jacrev(W.loss_vec, grad_states={"u": W.unused, "w": W.w})(X),
            ValueError,
            r"@unused.*never reads",
        ),
        L(
            "T.jvp unread grad_state",
            lambda W: T.jvp(
                W.loss, (X,), (X,), grad_states=W.unused, state_tangents=jnp.array(1.0)
            ),
            ValueError,
            r"@unused.*never reads",
        ),
        L(
            "T.hessian unread grad_state",
            lambda W: T.hessian(W.loss, grad_states=W.unused, argnums=0)(X),
            ValueError,
            r"@unused.*never reads",
        ),
        # --- non-scalar output to grad ----------------------------------------------------------
        L(
            "F.grad non-scalar output",
            lambda W: F.grad(lambda x: x * 2)(X),
            TypeError,
            r"scalar.*\(2,\)",
        ),
        L(
            "T.grad non-scalar output",
            lambda W: T.grad(W.loss_vec, grad_states=W.w)(X),
            TypeError,
            r"scalar.*\(2,\)",
        ),
        # --- has_aux=True without a pair -------------------------------------------------------
        L(
            "F.grad(has_aux) returns a scalar",
            lambda W: F.grad(loss2, has_aux=True)(X, X),
            TypeError,
            r"has_aux=True.*'loss2'.*pair",
        ),
        L(
            "T.grad(has_aux) returns a scalar",
            lambda W: T.grad(W.loss, grad_states=W.w, has_aux=True)(X),
            TypeError,
            r"has_aux=True.*'loss'.*pair",
        ),
        L(
            "T.vector_grad(has_aux) returns a triple",
            lambda W: T.vector_grad(lambda x: (x, x, x), has_aux=True)(X),
            TypeError,
            r"has_aux=True.*pair.*length 3",
        ),
        L(
            "F.jvp(has_aux) returns a scalar",
            lambda W: F.jvp(lambda x: jnp.sum(x), (X,), (X,), has_aux=True),
            TypeError,
            r"has_aux=True.*pair",
        ),
        L(
            "T.vjp(has_aux) returns a scalar",
            lambda W: T.vjp(W.loss, X, has_aux=True),
            TypeError,
            r"has_aux=True.*pair",
        ),
        # --- integers without allow_int -----------------------------------------------------------
        L(
            "F.grad of an int argument",
            lambda W: F.grad(lambda x: jnp.sum(x * 1.0))(XI),
            TypeError,
            r"int32.*allow_int",
        ),
        L(
            "F.jacrev of an int argument",
            lambda W: F.jacrev(lambda x: x * 1.0)(XI),
            TypeError,
            r"int32.*allow_int",
        ),
        L(
            "T.grad of an int argument",
            lambda W: T.grad(lambda x: jnp.sum(x * 1.0))(XI),
            TypeError,
            r"int32.*allow_int",
        ),
        L(
            "T.grad of an int State",
            lambda W: T.grad(lambda: jnp.sum(W.icount.value * 1.0), grad_states=W.icount)(),
            TypeError,
            r"(?=.*allow_int).*@icount",
        ),
        L(
            "T.jacrev of an int State",
            lambda W: T.jacrev(lambda: W.icount.value * 1.0, grad_states=[W.icount])(),
            TypeError,
            r"(?=.*allow_int).*@icount",
        ),
        # --- holomorphic=True with real inputs -------------------------------------------------
        L(
            "F.grad(holomorphic) of a real argument",
            lambda W: F.grad(jnp.sum, holomorphic=True)(X),
            TypeError,
            r"holomorphic=True.*float32",
        ),
        L(
            "F.jacfwd(holomorphic) of a real argument",
            lambda W: F.jacfwd(lambda x: x, holomorphic=True)(X),
            TypeError,
            r"holomorphic=True.*float32",
        ),
        L(
            "T.hessian(holomorphic) of a real argument",
            lambda W: T.hessian(jnp.sum, holomorphic=True)(X),
            TypeError,
            r"holomorphic=True.*float32",
        ),
        L(
            "T.grad(holomorphic) of a real State",
            lambda W: T.grad(W.loss, grad_states=W.w, holomorphic=True)(X),
            TypeError,
            r"(?=.*holomorphic=True).*@w",
        ),
        # --- vjp pullback called with a bad cotangent ------------------------------------------
        L(
            "F.vjp cotangent of another structure",
            lambda W: F.vjp(lambda x: x * 2, X)[1]((X, X)),
            TypeError,
            r"cotangent.*structure",
        ),
        L(
            "F.vjp cotangent of another shape",
            lambda W: F.vjp(lambda x: x * 2, X)[1](X3),
            ValueError,
            r"cotangent.*shape \(3,\).*\(2,\)",
        ),
        L(
            "F.vjp cotangent of another dtype",
            lambda W: F.vjp(lambda x: x * 2, X)[1](XI),
            TypeError,
            r"cotangent.*int32.*float32",
        ),
        L(
            "T.vjp cotangent of another structure",
            lambda W: T.vjp(lambda x: {"a": W.loss(x)}, X, grad_states=W.w)[1]([1.0]),
            TypeError,
            r"cotangent.*structure",
        ),
        L(
            "T.vjp cotangent of another shape",
            lambda W: T.vjp(W.loss_vec, X, grad_states=W.w)[1](X3),
            ValueError,
            r"cotangent.*shape \(3,\).*\(2,\)",
        ),
        L(
            "T.vjp cotangent of another dtype",
            lambda W: T.vjp(W.loss, X, grad_states=W.w)[1](jnp.array(1.0, jnp.complex64)),
            TypeError,
            r"cotangent.*complex64.*float32",
        ),
        # --- jvp tangents that do not match the primals --------------------------------------
        L(
            "F.jvp one tangent for two primals",
            lambda W: F.jvp(loss2, (X, X), (X,)),
            TypeError,
            r"tangents.*1.*2 primal",
        ),
        L(
            "F.jvp tangent of another structure",
            lambda W: F.jvp(loss2, (X, X), (X, (X,))),
            TypeError,
            r"tangents\[1\].*structure",
        ),
        L(
            "F.jvp tangent of another shape",
            lambda W: F.jvp(loss2, (X, X), (X, X3)),
            ValueError,
            r"tangents\[1\].*\(3,\)",
        ),
        L(
            "F.jvp tangent of another dtype",
            lambda W: F.jvp(loss2, (X, X), (X, XI)),
            TypeError,
            r"tangents\[1\].*int32",
        ),
        L(
            "T.jvp two tangents for one primal",
            lambda W: T.jvp(W.loss, (X,), (X, X)),
            TypeError,
            r"tangents.*2.*1",
        ),
        L(
            "T.jvp tangent of another shape",
            lambda W: T.jvp(W.loss, (X,), (X3,)),
            ValueError,
            r"^(?!.*tangents\[1\]).*tangents\[0\].*\(3,\)",
        ),
        L(
            "T.jvp state_tangents of another shape",
            lambda W: T.jvp(W.loss, (X,), (X,), grad_states=W.w, state_tangents=X3),
            ValueError,
            r"state_tangents.*\(3,\)",
        ),
        L(
            "T.jvp state_tangents missing",
            lambda W: T.jvp(W.loss, (X,), (X,), grad_states=W.w),
            ValueError,
            "state_tangents",
        ),
        L(
            "T.jvp primals not a sequence",
            lambda W: T.jvp(W.loss, X, X),
            TypeError,
            "primals",
        ),
        # --- invalid StateFinder options -------------------------------------------------------
        L(
            "StateFinder(usage='rw')",
            lambda W: T.StateFinder(W.loss, usage="rw"),
            ValueError,
            r"usage.*'rw'",
        ),
        L(
            "StateFinder(return_type='set')",
            lambda W: T.StateFinder(W.loss, return_type="set"),
            ValueError,
            r"return_type.*'set'",
        ),
        L(
            "StateFinder(key_fn=int)",
            lambda W: T.StateFinder(W.loss, key_fn=3),
            TypeError,
            "key_fn",
        ),
        L(
            "StateFinder(usage=int)",
            lambda W: T.StateFinder(W.loss, usage=1),
            TypeError,
            "usage",
        ),
        # --- transform_params a transform does not accept -----------------------------------------
        L(
            "F.transform(custom, transform_params={'scale'})",
            lambda W: F.transform(loss2, custom_transform, transform_params={"scale": 2.0}),
            TypeError,
            r"transform_params.*'scale'.*'custom_transform'",
        ),
        L(
            "T.GradientTransform(custom, transform_params={'scale'})",
            lambda W: T.GradientTransform(
                W.loss, custom_transform, grad_states=W.w, transform_params={"scale": 2.0}
            ),
            TypeError,
            r"transform_params.*'scale'.*'custom_transform'",
        ),
        L(
            "T.GradientTransform(jax.grad, transform_params={'argnums'})",
            lambda W: T.GradientTransform(
                W.loss, jax.grad, grad_states=W.w, transform_params={"argnums": 1}
            ),
            TypeError,
            r"transform_params.*'argnums'",
        ),
        L(
            "T.GradientTransform(transform_params=list)",
            lambda W: T.GradientTransform(
                W.loss, jax.grad, grad_states=W.w, transform_params=[("holomorphic", True)]
            ),
            TypeError,
            "transform_params",
        ),
        # --- a State assigned a non-array value ---------------------------------------------------
        L(
            "State.value = str",
            lambda W: setattr(W.w, "value", "hello"),
            TypeError,
            r"@w.*str",
        ),
        L(
            "State.value = {'a': object()}",
            lambda W: setattr(W.w, "value", {"a": object()}),
            TypeError,
            r"@w.*object",
        ),
        L(
            "State.value = None",
            lambda W: setattr(W.w, "value", None),
            TypeError,
            r"@w",
        ),
        L(
            "State(str) at creation",
            lambda W: facade.State("x", name="s"),
            TypeError,
            r"'s'.*" + re.escape(os.path.basename(HERE)) + r":\d+.*str",
        ),
        L(
            "State(name=int)",
            lambda W: facade.State(1.0, name=3),
            TypeError,
            r"\bname\b",
        ),
        L(
            "str written inside T.grad",
            lambda W: T.grad(write_str(W), grad_states=W.b)(X),
            TypeError,
            r"@w.*str",
        ),
        L(
            "str written inside T.jit",
            lambda W: T.jit(write_str(W))(X),
            TypeError,
            r"@w.*str",
        ),
        # --- bad filters --------------------------------------------------------------------------
        L(
            "StateFinder(filter=int)",
            lambda W: T.StateFinder(W.loss, filter=3),
            TypeError,
            r"filter 3",
        ),
        L(
            "StateFinder(filter=non-State class)",
            lambda W: T.StateFinder(W.loss, filter=int),
            TypeError,
            r"filter int.*not a State subclass",
        ),
        L(
            "StateFinder(filter=one-argument callable)",
            lambda W: T.StateFinder(W.loss, filter=lambda s: True),
            TypeError,
            r"filter .*lambda.*two positional arguments",
        ),
        L(
            "StateFinder(filter=list)",
            lambda W: T.StateFinder(W.loss, filter=[facade.ParamState]),
            TypeError,
            r"filter.*list.*tuple",
        ),
        L(
            "graph.states(model, str)",
            lambda W: _graph.states(Model(W), "param"),
            TypeError,
            r"filter 'param'",
            marks=(NEEDS_GRAPH,),
        ),
        L(
            "graph.treefy_states(model, (ParamState, 1.5))",
            lambda W: _graph.treefy_states(Model(W), (facade.ParamState, 1.5)),
            TypeError,
            r"filter 1\.5",
            marks=(NEEDS_GRAPH,),
        ),
        L(
            "graph.Not(dict)",
            lambda W: _graph.Not({}),
            TypeError,
            r"filter \{\}",
            marks=(NEEDS_GRAPH,),
        ),
        # --- other parameters of the wrong type or value ------------------------------------------
        L("F.grad(has_aux=int)", lambda W: F.grad(loss2, has_aux=1), TypeError, "has_aux"),
        L(
            "T.grad(return_value=str)",
            lambda W: T.grad(W.loss, grad_states=W.w, return_value="yes"),
            TypeError,
            "return_value",
        ),
        L(
            "T.grad(check_states=None)",
            lambda W: T.grad(W.loss, grad_states=W.w, check_states=None),
            TypeError,
            "check_states",
        ),
        L(
            "F.fwd_grad(tangent_size=0)",
            lambda W: F.fwd_grad(loss2, tangent_size=0),
            ValueError,
            r"tangent_size.*0",
        ),
        L(
            "F.fwd_grad(drct_der_clip=-1)",
            lambda W: F.fwd_grad(loss2, drct_der_clip=-1.0),
            ValueError,
            r"drct_der_clip.*-1",
        ),
        L(
            "T.vjp with nothing to differentiate",
            lambda W: T.vjp(lambda: jnp.sum(W.w.value)),
            ValueError,
            r"nothing to differentiate",
        ),
        L(
            "T.jit(static_argnums=str)",
            lambda W: T.jit(W.loss, static_argnums="a"),
            TypeError,
            "static_argnums",
        ),
    ]


CASES = _cases()
assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"


def _param(case: Case) -> Any:
    marks = list(case.marks)
    if case.xfail:
        marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
    return pytest.param(case, id=case.id, marks=marks)


def test_catalogue_size() -> None:
    assert len(CASES) >= 30


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(scope="module")
def good_grad(world: World) -> Any:
    """A correct transform over the world, compiled once: every failure must leave it working."""
    g = T.grad(world.loss, grad_states=world.w, argnums=0, return_value=True)
    g(X)
    return g


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(case: Case, world: World, good_grad: Any) -> None:
    entry = Snapshot(world.states)
    try:
        with pytest.raises(BaseException) as info:
            case.call(world)
        err = info.value
        # The State checks come first: a wrong message is a lesser bug than a damaged State.
        entry.assert_unchanged()
        assert isinstance(err, case.exc), f"expected {case.exc.__name__}, got {err!r}"
        assert re.search(case.regex(world), str(err), re.DOTALL), (
            f"message does not match {case.regex(world)!r}:\n{err}"
        )
        # Nothing the failed call left behind breaks the next good one.
        (w_grad, x_grad), value = good_grad(X)
        assert w_grad.tolist() == X.tolist() and x_grad.tolist() == [1.0, 2.0]
        assert float(value) == -0.5
        entry.assert_unchanged()
    finally:
        entry.restore()  # an xfail row that did not raise may have changed a State


def test_creation_site_is_the_callers_line() -> None:
    """Also under the import hook, whose wrapper calls ``State.__init__`` (it was reported)."""
    line = sys._getframe().f_lineno + 1
    state = facade.ParamState(jnp.zeros(2), name="here")
    assert state.source == f"{HERE}:{line}"
    assert f"'here' (created at {HERE}:{line})" in state._describe()


@pytest.mark.skipif(not HOOKED, reason="this is the run without the hook")
def test_catalogue_without_import_hook() -> None:
    """The same rows as users see them: no jaxtyping import hook instrumenting the packages."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            HERE,
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "-k",
            "not without_import_hook",
        ],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(HERE))),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    failed = re.search(r"\d+ failed", proc.stdout)
    assert "passed" in proc.stdout and not failed, proc.stdout[-2000:]
