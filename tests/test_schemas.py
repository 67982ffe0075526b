"""The published JSON Schemas are generated from the models and must not go stale."""

from pathlib import Path

from permitwatch.models.schemas import render_schemas

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def test_committed_schemas_match_the_models():
    rendered = render_schemas()
    stale = [name for name, content in rendered.items()
             if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_bytes() != content]
    assert not stale, f"stale schemas {stale}: run `permitwatch schemas --out docs/schemas`"
    extra = {p.name for p in SCHEMA_DIR.glob("*.schema.json")} - set(rendered)
    assert not extra, f"schemas with no model: {extra}"


def test_event_schema_lists_every_type():
    import orjson

    schema = orjson.loads(render_schemas()["event.schema.json"])
    assert len(schema["oneOf"]) == 18 and schema["discriminator"]["propertyName"] == "type"


def test_rules_document_is_current():
    from permitwatch.alerts.catalog_doc import rules_markdown

    path = SCHEMA_DIR.parent / "rules.md"
    assert path.read_text() == rules_markdown(), "stale docs/rules.md: run `permitwatch rules --markdown > docs/rules.md`"
