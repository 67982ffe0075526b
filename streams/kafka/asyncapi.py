"""The Kafka topics as an AsyncAPI 3 document (docs/asyncapi.yaml), rendered from `Topology.specs`
so that it cannot drift from the topics the workers create; payloads are the contract's JSON
Schemas in docs/schemas/. A case system's team generates its consumer from it."""

from __future__ import annotations

import yaml

from permitwatch.models.referrals import REFERRAL_SCHEMA_VERSION
from permitwatch.streams.kafka.topology import TopicSpec, Topology
from permitwatch.streams.kafka.wire import CONTROL_HEADER, SOURCE_HEADER

PREFIX = "{prefix}"
DRAFT_07 = "application/schema+json;version=draft-07"
KAFKA_BINDING = "0.5.0"
DOCUMENT_VERSION = "2026-11-30"
"""The day the topics (names, keys, retention, payloads) last changed."""

_SOURCE = {
    "type": "object",
    "properties": {SOURCE_HEADER: {
        "type": "string",
        "description": "The input record this one was made from and its place among that record's outputs "
                       "(topic/partition/offset/index). Workers deliver at least once: a record repeated after a "
                       "worker restart is identical and carries the same value here, so a consumer may drop it.",
    }},
}


def _payload(schema_file: str, pointer: str = "") -> dict:
    return {"schemaFormat": DRAFT_07, "schema": {"$ref": f"./schemas/{schema_file}{pointer}"}}


def _message(name: str, title: str, summary: str, key: str, payload: dict, headers: dict | None = None) -> dict:
    message = {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "payload": payload,
        "bindings": {"kafka": {"key": {"type": "string", "description": key}, "bindingVersion": KAFKA_BINDING}},
    }
    if headers is not None:
        message["headers"] = headers
    return message


def _messages(topology: Topology) -> dict[str, tuple[str, dict]]:
    """Channel suffix → (message id, message)."""
    control = {
        "type": "object",
        "required": [CONTROL_HEADER],
        "properties": {CONTROL_HEADER: {"type": "string", "enum": ["tick", "reference"], "description": (
            "A worker's clock tick, or a change of the reference data: not an event; every consumer of the "
            "events topic other than the workers skips records with this header")}},
    }
    return {
        "events": ("event", _message(
            "event", "Licensing event", "A CloudEvent from a service window's system (see EVENTS.md)",
            "case id (the event's subject): a case's events stay in order", _payload("event.schema.json"))),
        "dead-letter": ("deadLetter", _message(
            "deadLetter", "Dead letter", "Input that could not become an event, with its original bytes, the "
            "reason and where it came from", "origin", _payload("deadletter.schema.json"), _SOURCE)),
        "alerts": ("alert", _message(
            "alert", "Alert record", "An alert (预警 / 黄牌 / 红牌) raised, updated or retracted; the latest "
            "record of an alert id is its current state", "alert id", _payload("alert.schema.json"), _SOURCE)),
        "referrals": ("referral", _message(
            "referral", "Referral version", f"A candidate referral case for the supervision bureau (schema "
            f"{REFERRAL_SCHEMA_VERSION}); the highest version of a referral id is its current state",
            "referral id", _payload("referral.schema.json"), _SOURCE)),
        "catalog": ("catalogEntry", _message(
            "catalogEntry", "Catalog entry", "An item of the licensing catalog; a null value (tombstone) removes "
            "it", "item code", _payload("catalog.schema.json", "#/$defs/CatalogEntry"))),
        "calendar": ("calendarOverride", _message(
            "calendarOverride", "Calendar override", "A working-day calendar override file; a null value "
            "removes it", "calendar version", _payload("calendar.schema.json"))),
        "actions": ("action", _message(
            "action", "Operator's action", "An acknowledgement, assignment, dismissal or exemption, numbered in "
            "the order of the audit trail", "alert or referral id", _payload("action.schema.json"))),
        "city": ("cityInput", _message(
            "cityInput", "City stage input (internal)", "What the case stage tells the city stage; its encoding "
            "is internal and changes without notice: do not consume", "case id",
            {"schemaFormat": DRAFT_07, "schema": {"type": "object"}})),
        "_control": ("control", _message(
            "control", "Control record (internal)", "A worker's clock tick or a reference-data change on the "
            "events topic; skip it", "none", {"schemaFormat": DRAFT_07, "schema": {"type": "object"}}, control)),
    }


def _suffix(topology: Topology, spec: TopicSpec) -> str:
    return spec.name.removeprefix(f"{topology.prefix}.")


def _configuration(spec: TopicSpec) -> dict:
    configuration: dict = {"cleanup.policy": [spec.configs["cleanup.policy"]]}
    for name, value in spec.configs.items():
        if name != "cleanup.policy":
            configuration[name] = int(value)
    return configuration


def render_asyncapi(topology: Topology | None = None) -> dict:
    """The AsyncAPI 3.0.0 document of the topics, with the default settings' retention."""
    topology = topology or Topology("permitwatch", 12)
    messages = _messages(topology)
    channels, components = {}, {}
    for spec in topology.specs():
        suffix = _suffix(topology, spec)
        message_id, message = messages[suffix]
        components[message_id] = message
        channel_messages = {message_id: {"$ref": f"#/components/messages/{message_id}"}}
        if suffix == "events":
            components["control"] = messages["_control"][1]
            channel_messages["control"] = {"$ref": "#/components/messages/control"}
        binding: dict = {"topicConfiguration": _configuration(spec), "bindingVersion": KAFKA_BINDING}
        if spec.partitions == 1:
            binding["partitions"] = 1
        channels[suffix] = {
            "address": f"{PREFIX}.{suffix}",
            "title": f"PREFIX.{suffix}",
            "description": f"{spec.what[0].upper()}{spec.what[1:]}. Key: {spec.key}. "
                           + ("One partition." if spec.partitions == 1 else
                              "PERMITWATCH_PARTITIONS partitions (default 12)."),
            "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"}},
            "messages": channel_messages,
            "bindings": {"kafka": binding},
        }
    sends = {"dead-letter", "alerts", "referrals", "actions", "city"}
    operations = {}
    for suffix in channels:
        action = "send" if suffix in sends else "receive"
        operations[f"{action}{''.join(part.title() for part in suffix.split('-'))}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{suffix}"},
            "summary": f"permitwatch {'writes' if action == 'send' else 'reads'} PREFIX.{suffix}",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "permitwatch Kafka topics",
            "version": DOCUMENT_VERSION,
            "description": (
                "The topics of a permitwatch deployment on Kafka (docs/kafka.md). A case system subscribes to "
                "PREFIX.referrals (and PREFIX.alerts): both are compacted and keyed by id, so a subscriber that "
                "starts late reads every version of the last `versions_kept_days` (default 30) and the current "
                "state of everything older. Retention figures are the defaults; the deployment's settings "
                "(PERMITWATCH_EVENTS_RETENTION_DAYS, PERMITWATCH_VERSIONS_KEPT_DAYS) set them when the topics are "
                "created."),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {"prefix": {"default": "permitwatch", "description": "PERMITWATCH_TOPIC_PREFIX"}},
            "messages": components,
        },
    }


def asyncapi_yaml(topology: Topology | None = None) -> str:
    return yaml.safe_dump(render_asyncapi(topology), sort_keys=False, allow_unicode=True, width=100)
