"""Shared fixtures."""

from __future__ import annotations

import pytest

from tests.embedded import Runtime, start


@pytest.fixture
def runtimes():
    """Start embedded runtimes (`runtimes(tmp_path, now=..., **settings)`); all are stopped after
    the test, which releases their data directories."""
    started: list[Runtime] = []

    def starter(*args, **kwargs) -> Runtime:
        runtime = start(*args, **kwargs)
        started.append(runtime)
        return runtime

    yield starter
    for runtime in started:
        runtime.stop()
