"""Shared fixtures."""

from __future__ import annotations

import gc

import pytest

from tests.embedded import Runtime, start

_GC_THRESHOLDS = gc.get_threshold()


@pytest.fixture(autouse=True)
def _collector_as_found():
    """The runtimes tune the garbage collector for their process (`streams/tuning.py`): freeze
    what is alive, collect rarely. In the one test process that would keep alive, for good, every
    cycle alive at a freeze (a calendar, a monitor's database connections) and make when garbage
    goes depend on which tests ran before."""
    yield
    gc.unfreeze()
    gc.set_threshold(*_GC_THRESHOLDS)


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


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true",
                     help="run the long variants: slow-marked tests, and hypothesis with many more examples")


def pytest_configure(config):
    from hypothesis import settings

    settings.register_profile("long", max_examples=5_000)
    if config.getoption("--long"):
        settings.load_profile("long")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="a long variant: run with --long")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    from tests.fuzzing import TRIED

    if TRIED:
        terminalreporter.section("fuzz inputs tried")
        for path, count in sorted(TRIED.items()):
            terminalreporter.write_line(f"{path:<24} {count:>9,}")
