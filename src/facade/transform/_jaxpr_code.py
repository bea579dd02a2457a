"""``jaxpr_to_python_code``: a jaxpr written out as a Python-like function, for reading."""

from __future__ import annotations

from typing import Any

from jax.extend import core as jex_core


def _name(var: Any, names: dict[Any, str]) -> str:
    if isinstance(var, jex_core.Literal):
        return repr(var.val.item() if hasattr(var.val, "item") else var.val)
    if var not in names:
        names[var] = f"v{len(names)}"
    return names[var]


def _param(value: Any) -> str:
    if isinstance(value, jex_core.ClosedJaxpr | jex_core.Jaxpr):
        return "<jaxpr>"
    return repr(value)


def jaxpr_to_python_code(jaxpr: Any, fn_name: str = "generated_function") -> str:
    """A jaxpr as the source of a Python-like function: one line per equation.

    Each equation reads ``out = primitive(operands, param=value, ...)``; sub-programs (a
    ``scan`` or ``cond`` body) are shown as ``<jaxpr>``. It is meant for reading (brainpy shows
    it as an integrator's math expression): unlike brainstate's, which generates runnable
    source for the primitives it knows, it is not meant to be executed.

    Args:
        jaxpr: a ``Jaxpr`` or ``ClosedJaxpr`` (as made by ``jax.make_jaxpr``).
        fn_name: the name of the generated function.

    Returns:
        The source text.

    Example:
        >>> import jax, jax.numpy as jnp, facade
        >>> j = jax.make_jaxpr(lambda x, y: jnp.sin(x) * y)(1.0, 2.0)
        >>> print(facade.transform.jaxpr_to_python_code(j.jaxpr, "f"))
        def f(v0, v1):
            v2 = sin(v0, accuracy=None)
            v3 = mul(v2, v1, out_dtype=None)
            return v3
    """
    if isinstance(jaxpr, jex_core.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    if not isinstance(jaxpr, jex_core.Jaxpr):
        raise TypeError(f"jaxpr_to_python_code: expected a Jaxpr, got {type(jaxpr).__name__}")
    names: dict[Any, str] = {}
    ins = [_name(v, names) for v in (*jaxpr.constvars, *jaxpr.invars)]
    lines = [f"def {fn_name}({', '.join(ins)}):"]
    for eqn in jaxpr.eqns:
        operands = [_name(v, names) for v in eqn.invars]
        operands += [f"{k}={_param(v)}" for k, v in eqn.params.items()]
        outs = [_name(v, names) for v in eqn.outvars] or ["_"]
        lines.append(f"    {', '.join(outs)} = {eqn.primitive.name}({', '.join(operands)})")
    result = [_name(v, names) for v in jaxpr.outvars]
    lines.append(f"    return {', '.join(result) if result else 'None'}")
    return "\n".join(lines)
