"""The contract as models: envelope, per-type data, errors that name the field."""

from __future__ import annotations

from datetime import date

import orjson
import pytest

from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.catalog import Catalog
from permitwatch.models.events import EVENT_TYPES, ApplicationAccepted, InvalidEvent, parse_event
from permitwatch.models.files import ReferenceFileError, parse_structured
from permitwatch.models.settings import RuleSettings
from tests.factory import CaseEvents

c = CaseEvents()


def raw(**changes) -> bytes:
    event = c.raw("application.accepted", "2026-03-02 09:15", receipt_no="受理-1", officer="o-1")
    event.update(changes)
    return orjson.dumps({k: v for k, v in event.items() if v is not None})


def reason(data: bytes) -> tuple[str, str]:
    with pytest.raises(InvalidEvent) as info:
        parse_event(data)
    return info.value.category, info.value.reason


def test_the_example_event_from_the_contract_parses():
    event = parse_event(raw())
    assert isinstance(event, ApplicationAccepted)
    assert event.case_id == "SZ-2026-000123" and event.kind == "application.accepted"
    assert event.data.receipt_no == "受理-1"
    assert event.time.utcoffset().total_seconds() == 8 * 3600


def test_every_event_type_has_a_model():
    licensing = [t for t in EVENT_TYPES if t.startswith("cn.gov.licensing.")]
    assert len(licensing) == 17 and EVENT_TYPES[-1] == "cn.gov.permitwatch.exemption.recorded"


def test_naive_time_is_rejected_and_says_so():
    assert reason(raw(time="2026-03-02T09:15:00")) == ("schema", "time: Input should have timezone info")


def test_unknown_type_names_the_field_and_lists_the_known_types():
    category, text = reason(raw(type="cn.gov.licensing.application.teleported"))
    assert category == "unknown_type"
    assert "type: unknown event type 'cn.gov.licensing.application.teleported'" in text
    assert "cn.gov.licensing.decision.made" in text


def test_bad_data_field_names_the_path():
    event = c.raw("procedure.started", "2026-03-02", kind="holiday", notified=True)
    category, text = reason(orjson.dumps(event))
    assert category == "schema" and text.startswith("data.kind: Input should be 'extension'")


def test_submitted_requires_item_department_and_applicant():
    event = c.raw("application.submitted", "2026-03-02", channel="window", materials=[], officer="o")
    _, text = reason(orjson.dumps(event))
    assert "data.item_code: Field required" in text and "data.department: Field required" in text
    assert "data.applicant_id: Field required" in text


@pytest.mark.parametrize(
    "payload, category",
    [
        (b'{"specversion": "1.0", "id": "x"', "invalid_json"),
        (b"\xff\xfe\x00{}", "invalid_utf8"),
        (b"[1, 2]", "not_an_object"),
        (b'{"id": "x"}', "missing_type"),
    ],
)
def test_malformed_input_gets_a_category_and_reason(payload, category):
    assert reason(payload)[0] == category


def test_year_9999_is_implausible():
    _, text = reason(raw(time="9999-03-02T09:15:00+08:00"))
    assert text == "time: Input should be less than 2100-01-01T00:00:00Z"


def test_missing_receipt_number_is_a_finding_not_an_invalid_event():
    event = c.raw("application.accepted", "2026-03-02", officer="o-1")
    assert parse_event(orjson.dumps(event)).data.receipt_no is None


def test_a_catalog_exported_with_null_allocation_loads():
    """Other systems write null for fields an item does not use (EVENTS.md)."""
    loaded = Catalog.model_validate([
        {"item_code": "A", "name": "a", "department": "D", "allocation": None, "fee": None},
        {"item_code": "Q", "name": "q", "department": "D", "quantity_limited": True, "allocation": None},
        {"item_code": "T", "name": "t", "department": "D", "quantity_limited": True, "allocation": "tender"},
    ]).by_code()
    assert loaded["A"].allocation is None and not loaded["A"].granted_in_order
    assert loaded["Q"].granted_in_order and not loaded["T"].granted_in_order


def test_fee_amount_is_a_decimal_string():
    event = parse_event(orjson.dumps(c.raw("fee.charged", "2026-03-02", fee_code="F", amount="12.50")))
    assert str(event.data.amount) == "12.50"


def test_catalog_accepts_a_bare_list_and_checks_promises():
    catalog = parse_structured(b'[{"item_code": "A", "name": "n", "department": "D"}]', Catalog, "c.json")
    assert catalog.items[0].statutory_limit is None  # the law decides: 20 WD, 45 WD for joint handling
    with pytest.raises(ReferenceFileError, match=r"items\.0: Value error, promised_limit .* exceeds statutory_limit"):
        parse_structured(b'[{"item_code": "A", "name": "n", "department": "D", "promised_limit": {"value": 30}}]',
                         Catalog, "c.json")


def test_a_number_of_days_is_never_read_from_true_or_false():
    """pydantic takes true for 1, and YAML reads yes/no/on/off as booleans: `warning_working_days:
    yes` was one working day, an extension of `true` one day, both silently."""
    with pytest.raises(ReferenceFileError, match=r"warning_working_days: Value error, a number of days, not true"):
        parse_structured(b"- {item_code: A, name: n, department: D, warning_working_days: yes}", Catalog, "c.yaml")
    with pytest.raises(ReferenceFileError, match=r"statutory_limit\.value: Value error, a number of days"):
        parse_structured(b"- {item_code: A, name: n, department: D, statutory_limit: {value: on}}", Catalog, "c.yaml")
    with pytest.raises(ValueError, match="a number of days, not true or false"):
        RuleSettings(closed_case_retention_days=True)
    extension = c.raw("procedure.started", "2026-03-02", kind="extension", notified=True, working_days=True)
    assert reason(orjson.dumps(extension)) == ("schema", "data.working_days: Value error, a number of days, not true "
                                                         "or false")
    assert parse_structured(b"- {item_code: A, name: n, department: D, warning_working_days: 3}", Catalog,
                            "c.yaml").items[0].warning_working_days == 3


def test_a_number_of_days_as_text_is_digits_not_whatever_int_reads():
    """pydantic read a string as Python's int() does: `"5_0"` was fifty days, `"٥"` five."""
    for text in ("5_0", "٥", "0x5", "5.5", "", "五"):
        extension = c.raw("procedure.started", "2026-03-02", kind="extension", notified=True, working_days=text)
        category, why = reason(orjson.dumps(extension))
        assert (category, why.split(",")[0]) == ("schema", "data.working_days: Value error"), text
        assert "is not a whole number such as 5" in why
    with pytest.raises(ReferenceFileError, match=r"statutory_limit\.value: Value error, a number of days: '2_0' is"):
        parse_structured(b'[{"item_code": "A", "name": "n", "department": "D", "statutory_limit": {"value": "2_0"}}]',
                         Catalog, "c.json")
    for text, days in (("5", 5), (" 12 ", 12), ("5.0", 5)):
        extension = c.raw("procedure.started", "2026-03-02", kind="extension", notified=True, working_days=text)
        assert parse_event(orjson.dumps(extension)).data.working_days == days
    assert RuleSettings(closed_case_retention_days="45").closed_case_retention_days == 45


def test_yaml_numbers_are_read_as_yaml_1_2_reads_them():
    """PyYAML reads YAML 1.1: an unquoted 010 was eight working days, 5_0 fifty, 1:30 ninety; a
    code with a leading zero (009) stays text, as it was."""
    def limit(value: str) -> int:
        text = f"- {{item_code: A, name: n, department: D, statutory_limit: {{value: {value}}}}}".encode()
        return parse_structured(text, Catalog, "c.yaml").items[0].statutory_limit.value

    assert (limit("010"), limit("20"), limit("'20'")) == (10, 20, 20)
    for text in ("5_0", "1:30", "0x5"):
        with pytest.raises(ReferenceFileError, match=rf"a number of days: '{text}' is not a whole number"):
            limit(text)
    coded = b"- {item_code: 0089, name: n, department: 009, materials: [{code: 007, name: m}]}"
    item = parse_structured(coded, Catalog, "c.yaml").items[0]
    assert (item.item_code, item.department, item.materials[0].code) == ("0089", "009", "007")


def test_a_day_is_written_as_the_contract_writes_it():
    """pydantic reads a number, or a string of digits, as seconds since 1970: a holiday of 0 was
    1970-01-01, and a promised deadline of 0 one long past, a yellow card the next day (found by
    the OpenAPI fuzz with 200 examples). A day is YYYY-MM-DD, or in YAML a date it reads as one."""
    for day in (b"0", b"'0'", b"86400", b"'2026-10-01T00:00:00'", b"yes"):
        with pytest.raises(ReferenceFileError, match=r"holidays\.0: Value error, a day as YYYY-MM-DD"):
            parse_structured(b"{version: v, holidays: [" + day + b"]}", CalendarOverride, "c.yaml")
    assert parse_structured(b"{version: v, holidays: [2026-10-01, '2026-10-02']}", CalendarOverride,
                            "c.yaml").holidays == [date(2026, 10, 1), date(2026, 10, 2)]
    accepted = c.raw("application.accepted", "2026-03-02", receipt_no="R", promised_deadline=0)
    assert reason(orjson.dumps(accepted)) == ("schema", "data.promised_deadline: Value error, a day as YYYY-MM-DD, "
                                                        "e.g. 2026-10-01, not '0'")


def test_catalog_rejects_duplicate_items():
    entry = b'{"item_code": "A", "name": "n", "department": "D"}'
    with pytest.raises(ReferenceFileError, match="item_code 'A' appears twice"):
        parse_structured(b"[" + entry + b"," + entry + b"]", Catalog, "c.json")


def test_settings_validate_rule_ids_and_cut_off():
    with pytest.raises(ValueError, match="PW-099"):
        RuleSettings(disabled_rules=["PW-099"])
    with pytest.raises(ValueError, match="end_of_day"):
        RuleSettings(end_of_day="25:00")
    assert RuleSettings(end_of_day="17:30").end_of_day_time.hour == 17
