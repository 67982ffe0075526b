"""deploy/: the Grafana dashboard (current, valid in Grafana's dashboard model, querying only
series a monitor exposes from its start) and the Prometheus configuration and rules (checked by
promtool, on input series a monitor really exposes)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from permitwatch.streams.metrics import Metrics
from tests.tools import debian_binary

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
sys.path.insert(0, str(DEPLOY / "grafana"))
import dashboard  # noqa: E402  (deploy/grafana/dashboard.py, the generator)

SELECTOR = re.compile(r"\b(permitwatch_[a-z_]+)(?:\{([^}]*)\})?")
LABEL = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
TARGET_LABELS = {"instance", "job"}
"""Labels Prometheus gives every sample of a target: not the exporter's."""


def fresh_samples() -> dict[tuple[str, frozenset], float]:
    """What a monitor exposes before any input: (name, labels) → value."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in Metrics("test").registry.collect() for sample in family.samples}


def unexposed(expr: str) -> list[str]:
    """The selectors of `expr` (name and `=` matchers) that no series of a fresh monitor matches:
    `increase()` would miss their first values, and `sum()` of them would be empty, not 0."""
    samples = fresh_samples()
    missing = []
    for name, matchers in SELECTOR.findall(expr):
        wanted = {(k, v) for k, v in LABEL.findall(matchers) if k not in TARGET_LABELS}
        if not any(n == name and wanted <= labels for n, labels in samples):
            missing.append(f"{name}{{{matchers}}}")
    return missing


def queries() -> list[str]:
    return [t["expr"] for p in dashboard.dashboard()["panels"] for t in p.get("targets", [])]


def test_dashboard_file_is_current():
    assert (DEPLOY / "grafana" / "dashboards" / "permitwatch.json").read_text(encoding="utf-8") == dashboard.render(), \
        "run `python deploy/grafana/dashboard.py`"


def test_every_dashboard_query_reads_series_a_fresh_monitor_exposes():
    for expr in queries():
        assert SELECTOR.search(expr), expr
        assert not unexposed(expr), f"{expr}: {unexposed(expr)}"


def _contained(ours, theirs, path="$"):
    """Every key and value we wrote is in what Grafana's model made of it."""
    if isinstance(ours, dict):
        assert isinstance(theirs, dict), path
        for key, value in ours.items():
            assert key in theirs, f"{path}.{key} is not in Grafana's dashboard schema"
            _contained(value, theirs[key], f"{path}.{key}")
    elif isinstance(ours, list):
        assert isinstance(theirs, list) and len(ours) == len(theirs), path
        for n, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _contained(a, b, f"{path}[{n}]")
    else:
        assert ours == theirs, f"{path}: {ours!r} became {theirs!r}"


def test_dashboard_loads_in_grafanas_dashboard_model():
    """grafana-foundation-sdk is generated from Grafana's own dashboard schema (the CUE kinds);
    decoding our JSON into it and encoding it back must keep every field."""
    models = pytest.importorskip("grafana_foundation_sdk.models.dashboard")
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins

    register_default_plugins()
    ours = json.loads((DEPLOY / "grafana" / "dashboards" / "permitwatch.json").read_text(encoding="utf-8"))
    theirs = json.loads(json.dumps(models.Dashboard.from_json(ours), cls=JSONEncoder))
    _contained(ours, theirs)


def rules() -> list[dict]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alerting_rules_read_series_a_fresh_monitor_exposes():
    for rule in rules():
        assert not unexposed(rule["expr"]), f"{rule['alert']}: {unexposed(rule['expr'])}"


def test_rule_tests_start_from_what_a_fresh_monitor_exposes():
    """Each input series of the promtool tests is one a monitor exposes before any input, and a
    counter starts at the value it exposes then (0): a test fed series that appear only at
    their first increment would pass rules that never fire on a real monitor."""
    samples = fresh_samples()
    tests = yaml.safe_load((DEPLOY / "prometheus" / "rules_test.yml").read_text(encoding="utf-8"))["tests"]
    for given in (series for test in tests for series in test["input_series"]):
        name, matchers = SELECTOR.fullmatch(given["series"]).groups()
        labels = frozenset((k, v) for k, v in LABEL.findall(matchers) if k not in TARGET_LABELS)
        assert (name, labels) in samples, f"{given['series']}: a fresh monitor exposes no such series"
        if name.endswith("_total"):
            first = float(re.match(r"-?[\d.]+", given["values"]).group())
            assert first == samples[name, labels], f"{given['series']} starts at {first}"


@pytest.fixture(scope="module")
def promtool() -> str:
    return debian_binary("prometheus", "promtool")


@pytest.mark.parametrize("args", [
    ["check", "rules", "rules.yml"],
    ["check", "config", "prometheus.yml"],
    ["test", "rules", "rules_test.yml"],
])
def test_promtool(promtool, args):
    done = subprocess.run([promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
