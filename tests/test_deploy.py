"""deploy/: the Grafana dashboard (current, valid in Grafana's dashboard model, querying only
metrics the code exports) and the Prometheus configuration and rules (checked by promtool)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.metrics import Metrics
from tests.tools import debian_binary

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
sys.path.insert(0, str(DEPLOY / "grafana"))
import dashboard  # noqa: E402  (deploy/grafana/dashboard.py, the generator)

METRIC = re.compile(r"\b(permitwatch_[a-z_]+)")


def exported() -> set[str]:
    """Every sample name the runtime's registry can expose."""
    names = set()
    for family in Metrics("test").registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    return names


def queries() -> list[str]:
    return [t["expr"] for p in dashboard.dashboard()["panels"] for t in p.get("targets", [])]


def test_dashboard_file_is_current():
    assert (DEPLOY / "grafana" / "dashboards" / "permitwatch.json").read_text(encoding="utf-8") == dashboard.render(), \
        "run `python deploy/grafana/dashboard.py`"


def test_every_dashboard_query_names_an_exported_metric():
    known = exported()
    for expr in queries():
        used = set(METRIC.findall(expr))
        assert used and used <= known, f"{expr}: unknown {used - known}"


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


def test_alerting_rules_query_exported_metrics():
    known = exported()
    text = (DEPLOY / "prometheus" / "rules.yml").read_text(encoding="utf-8")
    used = set(METRIC.findall(text))
    assert used and used <= known, used - known


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
