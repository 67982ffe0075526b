"""JSON Schemas of the contract, generated from the models (downstream systems code against them)."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import TypeAdapter

from permitwatch.models.alerts import Alert
from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.catalog import Catalog
from permitwatch.models.deadletter import DeadLetter
from permitwatch.models.events import Event
from permitwatch.models.referrals import ExemptionRequest, Referral
from permitwatch.models.scorecard import ScorecardRow
from permitwatch.models.settings import RuleSettings
from permitwatch.models.views import ActionRecord

SCHEMAS: dict[str, object] = {
    "event": Event,
    "catalog": Catalog,
    "calendar": CalendarOverride,
    "settings": RuleSettings,
    "alert": Alert,
    "referral": Referral,
    "exemption": ExemptionRequest,
    "deadletter": DeadLetter,
    "scorecard": ScorecardRow,
    "action": ActionRecord,
}


def render_schemas() -> dict[str, bytes]:
    """File name → schema bytes, stable across runs (sorted keys, fixed indentation)."""
    rendered = {}
    for name, model in SCHEMAS.items():
        schema = TypeAdapter(model).json_schema(mode="serialization" if name in ("alert", "referral", "deadletter", "scorecard", "action") else "validation")
        schema["$id"] = f"https://permitwatch.example/schemas/{name}.schema.json"
        rendered[f"{name}.schema.json"] = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    return rendered


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_schemas().items():
        path = out / name
        path.write_bytes(content)
        written.append(path)
    return written
