"""The Compose file and Kubernetes manifests name only settings and flags that exist: a typo in
a PERMITWATCH_* variable would be silently ignored by pydantic-settings, and a wrong flag would
stop the container at start."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from api.cli import build_parser
from api.settings import ServerSettings
from models.catalog import load_catalog
from streams.kafka.worker import WorkerSettings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
KNOWN = {f"PERMITWATCH_{name.upper()}" for name in {*WorkerSettings.model_fields, *ServerSettings.model_fields}}


def manifests() -> list[dict]:
    documents = [yaml.safe_load((DEPLOY / "compose.yaml").read_text())]
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def walk(node, key=None):
    """Every (key, value) pair of a parsed YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v, key)


def test_every_permitwatch_variable_is_a_setting():
    named = set()
    for document in manifests():
        for key, value in walk(document):
            if isinstance(key, str) and key.startswith("PERMITWATCH_"):
                named.add(key)
            if key == "name" and isinstance(value, str) and value.startswith("PERMITWATCH_"):
                named.add(value)
    assert named and named <= KNOWN, f"not settings: {sorted(named - KNOWN)}"


@pytest.mark.parametrize("arguments", [
    value for document in manifests() for key, value in walk(document)
    if key in ("command", "args") and isinstance(value, list) and value and value[0] in ("worker", "api", "reference")
])
def test_every_command_line_parses(arguments):
    build_parser().parse_args(arguments)


def test_the_shipped_catalog_loads():
    assert load_catalog(DEPLOY / "reference" / "catalog.json").items
