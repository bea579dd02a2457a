"""Developer sessions: tests, lint, typecheck, bench, demo, docs."""

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy")
    session.run("mypy", "src")


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-e", ".")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    session.install("-e", ".[examples]")
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict")


@nox.session(venv_backend="none")
def ecosystem(session: nox.Session) -> None:
    """brainstate's client suites under brainstate and the facade (slow; not a default session).

    benchmarks/ecosystem.py makes its own venv with the pinned clients (.ecosystem/venv).
    """
    session.run("python", "benchmarks/ecosystem.py", *session.posargs)
