"""The ``comet_simulator`` pytest fixture: a running simulator per test, in one line.

Registered through the ``pytest11`` entry point, so installing the package is enough::

    def test_my_retries(comet_simulator):
        client = MyClient(base_url=comet_simulator.base_url, api_key="sk-test")

    @pytest.mark.comet_simulator(scenario="flaky", seed=7)
    def test_under_faults(comet_simulator): ...
"""

from __future__ import annotations

from typing import Iterator

import pytest

__all__ = ["comet_simulator", "pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker, so ``--strict-markers`` suites can use it."""
    config.addinivalue_line(
        "markers",
        "comet_simulator(scenario=None, seed=None, api_key=None): configure the "
        "comet_simulator fixture (a preset name, dict, Scenario or file path)",
    )


@pytest.fixture
def comet_simulator(request: pytest.FixtureRequest) -> Iterator[object]:
    """A :class:`simulator.Simulator` on a free loopback port, closed after the test."""
    from .server import Simulator  # imported late: plugin loading stays cheap for every suite

    marker = request.node.get_closest_marker("comet_simulator")
    kwargs = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        kwargs.setdefault("scenario", marker.args[0])
    with Simulator(
        kwargs.get("scenario"), kwargs.get("seed"), api_key=kwargs.get("api_key")
    ) as sim:
        yield sim
