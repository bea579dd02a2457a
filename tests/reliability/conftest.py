"""Reliability suite configuration: hypothesis profiles.

``HYPOTHESIS_PROFILE=ci`` (the default) keeps ``test_properties.py`` within about a minute on two
cores: few examples and no shrinking (every example compiles a program, so shrinking a failure
can take many minutes; the failing example is printed in full instead). ``dev`` runs 150
examples per property and shrinks failures, for local soak testing:
``HYPOTHESIS_PROFILE=dev pytest tests/reliability/test_properties.py``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "ci",
    max_examples=4,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    **_COMMON,
)
settings.register_profile("dev", max_examples=150, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: object, items: list[object]) -> None:
    """Start the subprocess workers that the selected tests need, to overlap with the rest.

    Under pytest-xdist the controller has started them already (``tests/conftest.py``).
    """
    from . import _workers

    if os.environ.get("PYTEST_XDIST_WORKER"):
        return

    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        path = str(getattr(item, "path", ""))
        if os.path.dirname(path) == here and os.path.basename(path) in _workers.NEEDED_BY:
            _workers.start(_workers.NEEDED_BY[os.path.basename(path)])


def pytest_sessionfinish(session: object, exitstatus: object) -> None:
    from . import _workers

    _workers.stop_all()
