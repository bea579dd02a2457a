"""Run code that imports ``brainstate`` on the facade, unedited: the brainstate alias.

:func:`install_brainstate_alias` puts the facade's modules into ``sys.modules`` under brainstate's
names, so that a later ``import brainstate`` (in your code or in a library such as braintools or
brainpy.state) gets the facade. Call it before the first ``import brainstate``; the command form
``python -m facade.compat pytest ...`` or ``python -m facade.compat script.py`` runs a script or
pytest with the alias active from the start.

Example:
    >>> import sys, facade
    >>> from facade.compat import install_brainstate_alias, uninstall_brainstate_alias
    >>> had = "brainstate" in sys.modules
    >>> if not had:
    ...     _ = install_brainstate_alias()
    ...     import brainstate
    ...     print(brainstate is facade, brainstate.nn is facade.nn)
    ...     uninstall_brainstate_alias()
    ... else:
    ...     print(True, True)
    True True
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

__all__ = ["BRAINSTATE_MODULES", "install_brainstate_alias", "uninstall_brainstate_alias"]

#: brainstate's module names and the facade modules that stand in for them. The two internal
#: names are the ones client libraries import by path (braintools, brainpy): they are small shims
#: in this package, never the facade's own private modules.
BRAINSTATE_MODULES: dict[str, str] = {
    "brainstate": "facade",
    "brainstate.transform": "facade.transform",
    "brainstate.compile": "facade.compile",
    "brainstate.nn": "facade.nn",
    "brainstate.random": "facade.random",
    "brainstate.environ": "facade.environ",
    "brainstate.graph": "facade.graph",
    "brainstate.util": "facade.util",
    "brainstate.util.filter": "facade.util.filter",
    "brainstate.typing": "facade.typing",
    "brainstate.mixin": "facade.mixin",
    "brainstate._state": "facade.compat._state",
    "brainstate._compatible_import": "facade.compat._compatible_import",
}


class _UnknownBrainstateModule(importlib.abc.MetaPathFinder):
    """Refuses ``brainstate.<anything not aliased>`` with a clear error.

    Without it, ``import brainstate.foo`` would search the facade's package directory and load
    ``facade/foo.py`` a second time under another name (two copies of every class in it).
    """

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.startswith("brainstate.") and fullname not in sys.modules:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: the facade's brainstate alias provides only "
                f"{sorted(BRAINSTATE_MODULES)} (see docs/coming-from-brainstate.md)",
                name=fullname,
            )
        return None


_FINDER = _UnknownBrainstateModule()


def install_brainstate_alias(*, replace: bool = False) -> dict[str, types.ModuleType]:
    """Make ``import brainstate`` (and its submodules) import the facade from now on.

    Args:
        replace: if the real brainstate (or anything else) is already imported under one of these
            names, replace it. By default that is an error: modules that already imported the
            real one would keep it, and mixing the two fails in confusing ways.

    Returns:
        The installed ``{brainstate name: facade module}`` mapping.

    Raises:
        RuntimeError: a brainstate name is already imported as another module and ``replace`` is
            False.

    Example:
        >>> from facade.compat import BRAINSTATE_MODULES
        >>> BRAINSTATE_MODULES["brainstate.nn"]
        'facade.nn'
    """
    installed = {}
    for name, target in BRAINSTATE_MODULES.items():
        module = importlib.import_module(target)
        current = sys.modules.get(name)
        if current is not None and current is not module and not replace:
            raise RuntimeError(
                f"{name!r} is already imported from {getattr(current, '__file__', current)!r}; "
                "call install_brainstate_alias() before anything imports brainstate, or pass "
                "replace=True"
            )
        installed[name] = module
    sys.modules.update(installed)
    # A module found as an attribute of its parent: ``brainstate.util.filter`` after
    # ``import brainstate`` works because facade.util.filter is already facade.util's attribute.
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    return installed


def uninstall_brainstate_alias() -> None:
    """Remove the alias: the brainstate names in ``sys.modules`` that point at facade modules.

    Modules that imported ``brainstate`` meanwhile keep their reference to the facade.

    Example:
        >>> from facade.compat import uninstall_brainstate_alias
        >>> uninstall_brainstate_alias()  # a no-op when the alias is not installed
    """
    for name, target in BRAINSTATE_MODULES.items():
        if sys.modules.get(name) is not None and sys.modules.get(name) is sys.modules.get(target):
            del sys.modules[name]
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
