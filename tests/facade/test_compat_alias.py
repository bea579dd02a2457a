"""facade.compat: ``import brainstate`` resolves to the facade once the alias is installed, in
the function form and the ``python -m facade.compat`` command form; the jax internals shim
(``brainstate._compatible_import``) works against the pinned jax.

The alias changes ``sys.modules``, so each alias test runs in a fresh subprocess."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

import facade
from facade.compat import BRAINSTATE_MODULES, _compatible_import

SRC = str(pathlib.Path(facade.__file__).parents[1])


def _run(args: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_install_makes_every_brainstate_name_the_facade_module(tmp_path: pathlib.Path) -> None:
    code = textwrap.dedent(
        """
        import importlib, sys
        from facade.compat import BRAINSTATE_MODULES, install_brainstate_alias
        install_brainstate_alias()
        import brainstate, brainstate.nn, brainstate.util.filter
        from brainstate.typing import ArrayLike, Size
        from brainstate.util import DotDict
        import facade
        assert brainstate is facade and brainstate.nn is facade.nn
        for name, target in BRAINSTATE_MODULES.items():
            assert importlib.import_module(name) is importlib.import_module(target), name
        # A client's State subclass is a facade State: the facade's transforms find it.
        class Var(brainstate.State):
            pass
        assert isinstance(Var(1.0), facade.State)
        # brainstate modules the facade lacks fail clearly, never by loading a second copy.
        try:
            import brainstate.interop
        except ModuleNotFoundError as e:
            assert "brainstate.interop" in str(e) and "alias" in str(e), e
        else:
            raise AssertionError("brainstate.interop imported")
        print("ok")
        """
    )
    out = _run(["-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_install_refuses_when_brainstate_is_already_another_module(tmp_path: pathlib.Path) -> None:
    code = textwrap.dedent(
        """
        import sys, types
        sys.modules["brainstate"] = types.ModuleType("brainstate")
        from facade.compat import install_brainstate_alias, uninstall_brainstate_alias
        try:
            install_brainstate_alias()
        except RuntimeError as e:
            assert "already imported" in str(e), e
        else:
            raise AssertionError("no error")
        install_brainstate_alias(replace=True)
        import brainstate, facade
        assert brainstate is facade
        uninstall_brainstate_alias()
        assert "brainstate" not in sys.modules and "brainstate.nn" not in sys.modules
        print("ok")
        """
    )
    out = _run(["-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_command_form_runs_a_script_as_main_with_its_arguments(tmp_path: pathlib.Path) -> None:
    (tmp_path / "helper.py").write_text("VALUE = 3\n")
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import brainstate, facade, helper  # helper: the script's own folder is importable
            print(brainstate is facade, __name__, sys.argv[1:], helper.VALUE)
            """
        )
    )
    out = _run(["-m", "facade.compat", str(script), "a", "b"], tmp_path / "..")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True __main__ ['a', 'b'] 3"


def test_command_form_runs_a_module_as_main(tmp_path: pathlib.Path) -> None:
    (tmp_path / "client_cli.py").write_text(
        "import sys, brainstate, facade\nprint(brainstate is facade, __name__, sys.argv[1:])\n"
    )
    env_path = f"{SRC}{os.pathsep}{tmp_path}"
    env = {**os.environ, "PYTHONPATH": env_path, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-m", "facade.compat", "-m", "client_cli", "x"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True __main__ ['x']"


def test_command_form_runs_pytest_with_the_alias_active(tmp_path: pathlib.Path) -> None:
    (tmp_path / "test_client.py").write_text(
        textwrap.dedent(
            """
            import brainstate
            import jax.numpy as jnp

            def test_client_code_runs_on_the_facade():
                import facade
                assert brainstate is facade
                w = brainstate.ParamState(jnp.ones(2))
                grads = brainstate.transform.grad(lambda: (w.value ** 2).sum(), grad_states=w)()
                assert jnp.allclose(grads, 2.0)
            """
        )
    )
    out = _run(["-m", "facade.compat", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout


def test_command_form_without_a_command_prints_usage(tmp_path: pathlib.Path) -> None:
    out = _run(["-m", "facade.compat"], tmp_path)
    assert out.returncode == 2
    assert "usage: python -m facade.compat" in out.stdout


def test_the_alias_covers_the_modules_clients_import() -> None:
    assert {
        "brainstate",
        "brainstate.transform",
        "brainstate.nn",
        "brainstate.random",
        "brainstate.environ",
        "brainstate.graph",
        "brainstate.util",
        "brainstate.util.filter",
        "brainstate.typing",
        "brainstate.mixin",
        "brainstate._state",
        "brainstate._compatible_import",
    } <= set(BRAINSTATE_MODULES)


class TestCompatibleImport:
    """The jax internals braintools and brainpy import through brainstate's shim."""

    def test_safe_zip_and_safe_map_refuse_unequal_lengths(self) -> None:
        assert _compatible_import.safe_zip([1, 2], "ab") == [(1, "a"), (2, "b")]
        assert _compatible_import.safe_map(lambda a, b: a + b, [1, 2], [10, 20]) == [11, 22]
        with pytest.raises(ValueError, match="length"):
            _compatible_import.safe_zip([1, 2], [1])

    def test_unzip(self) -> None:
        assert _compatible_import.unzip2([(1, "a"), (2, "b")]) == ((1, 2), ("a", "b"))
        assert _compatible_import.unzip2([]) == ((), ())
        assert _compatible_import.unzip3([(1, 2, 3)]) == ((1,), (2,), (3,))

    def test_jax_classes_are_jaxs_own(self) -> None:
        import jax.extend.core as jcore

        for name in ("Primitive", "ClosedJaxpr", "Jaxpr", "JaxprEqn", "Literal", "Var"):
            assert getattr(_compatible_import, name) is getattr(jcore, name)
        jaxpr = jax.make_jaxpr(lambda x: x + 1.0)(1.0)
        assert isinstance(jaxpr, _compatible_import.ClosedJaxpr)
        assert isinstance(jaxpr.jaxpr.eqns[0], _compatible_import.JaxprEqn)

    def test_a_primitive_defined_through_the_shim_works(self) -> None:
        double = _compatible_import.Primitive("stategrad_test_double")
        double.def_impl(lambda x: 2 * x)
        double.def_abstract_eval(lambda x: x)
        assert float(double.bind(jnp.float32(3.0))) == 6.0

    def test_get_aval_and_get_backend(self) -> None:
        aval = _compatible_import.get_aval(jnp.zeros((2, 3), jnp.float32))
        assert aval.shape == (2, 3) and aval.dtype == jnp.float32
        assert _compatible_import.get_backend().platform == "cpu"

    def test_wrap_init_wraps_a_callable_for_jax(self) -> None:
        wrapped = _compatible_import.wrap_init(lambda x: x * 3, (1,), {}, "triple")
        assert wrapped.call_wrapped(2) == 6
