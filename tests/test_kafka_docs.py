"""docs/asyncapi.yaml and docs/kafka.md describe the topics the workers create and the settings they
read: the document is current, valid AsyncAPI 3.0.0 (checked with the AsyncAPI initiative's own JSON
Schema, from the npm registry), and names every topic with its key, cleanup policy, retention and
payload; the settings tables of docs/kafka.md and docs/operations.md name every setting. (tests/test_kafka_broker.py runs the documented
commands against a real broker.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

from permitwatch.streams.kafka.asyncapi import asyncapi_yaml, render_asyncapi
from permitwatch.streams.kafka.topology import Topology
from permitwatch.streams.kafka.wire import CONTROL_HEADER, SOURCE_HEADER
from tests.tools import npm_package

DOCS = Path(__file__).resolve().parent.parent / "docs"
TOPOLOGY = Topology("permitwatch", 12)


def test_the_committed_document_is_current():
    assert (DOCS / "asyncapi.yaml").read_text() == asyncapi_yaml(), \
        "stale docs/asyncapi.yaml: run `permitwatch asyncapi`"


def test_the_document_is_valid_asyncapi_3():
    specs = npm_package("@asyncapi/specs", "6.11.1")
    schema = json.loads((specs / "schemas" / "3.0.0-without-$id.json").read_text())
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in jsonschema_rs.validator_for(schema).iter_errors(render_asyncapi())]
    assert not errors, errors[:5]


def test_every_topic_is_a_channel_with_its_key_retention_and_a_payload_schema_that_exists():
    document = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    channels = document["channels"]
    assert {channel["address"] for channel in channels.values()} == \
        {spec.name.replace("permitwatch.", "{prefix}.") for spec in TOPOLOGY.specs()}
    messages = document["components"]["messages"]
    for spec in TOPOLOGY.specs():
        [channel] = [c for c in channels.values() if c["address"] == spec.name.replace("permitwatch.", "{prefix}.")]
        configuration = channel["bindings"]["kafka"]["topicConfiguration"]
        assert configuration["cleanup.policy"] == [spec.configs["cleanup.policy"]]
        assert {k: str(v) for k, v in configuration.items() if k != "cleanup.policy"} == \
            {k: v for k, v in spec.configs.items() if k != "cleanup.policy"}
        for reference in channel["messages"].values():
            message = messages[reference["$ref"].rsplit("/", 1)[-1]]
            if message["name"] != "control":
                assert message["bindings"]["kafka"]["key"]["description"].startswith(spec.key)
            target = message["payload"]["schema"].get("$ref")
            if target:
                assert (DOCS / target.split("#")[0]).is_file(), target
    assert messages["alert"]["headers"]["properties"].keys() == {SOURCE_HEADER}
    assert messages["control"]["headers"]["required"] == [CONTROL_HEADER]


def test_docs_kafka_md_lists_every_topic_with_its_key_and_cleanup_policy():
    table = (DOCS / "kafka.md").read_text().split("## Topology", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for name in re.findall(r"`PREFIX\.([a-z-]+)`", cells[0]):
            rows[name] = cells
    for spec in TOPOLOGY.specs():
        suffix = spec.name.removeprefix("permitwatch.")
        assert suffix in rows, f"docs/kafka.md has no row for PREFIX.{suffix}"
        _, partitions, key, policy, *_ = rows[suffix]
        assert key == spec.key and spec.configs["cleanup.policy"] in policy, (suffix, rows[suffix])
        assert partitions == ("1" if spec.partitions == 1 else "N")


@pytest.mark.parametrize(("doc", "header", "command"), [
    ("kafka.md", "| setting | default | what |", "worker"),
    ("operations.md", "| setting | flag | default | meaning |", "run"),
])
def test_the_settings_tables_name_every_setting_their_command_reads(doc, header, command):
    from permitwatch.streams.settings import Settings

    table = (DOCS / doc).read_text().split(header, 1)[1].split("\n\n", 1)[0]
    named = set()
    for cell in re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE):
        for name in re.findall(r"`((?:PERMITWATCH|…)?_[A-Z_]+)`", cell):
            named.add("PERMITWATCH" + name.removeprefix("PERMITWATCH").removeprefix("…"))
    settings = {f"PERMITWATCH_{name.upper()}" for name in Settings.read_by(command)}
    assert settings - named == set(), f"settings docs/{doc} does not name"
    assert named - settings == set(), f"docs/{doc} names settings that `{command}` does not read"
