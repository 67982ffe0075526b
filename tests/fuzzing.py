"""Hostile input for the fuzz tests: raw bytes a window system, a proxy or an attacker could send,
built by mutating valid CloudEvents, and a tally of how many were tried (printed at the end of the
session, recorded in docs/reliability.md)."""

from __future__ import annotations

import copy
import json
import sys
from collections import Counter

import orjson
from hypothesis import strategies as st

from tests.factory import CaseEvents

TRIED: Counter = Counter()
"""Inputs tried per path ('parse', 'embedded ingest', …), summed over the session."""

_case = CaseEvents("SZ-FUZZ-1", item="ITEM-STD")
TEMPLATES = [
    _case.raw("application.submitted", "2026-03-02 09:00", item_code="ITEM-STD", department="D-MARKET",
              applicant_id="91440300MA5ABCDE1X", channel="window", materials=["M1", "M2"], officer="o-1"),
    _case.raw("application.accepted", "2026-03-02 10:00", receipt_no="R-1", officer="o-1"),
    _case.raw("correction.requested", "2026-03-02 11:00", notice_no="N-1", materials=["M3"], officer="o-1"),
    _case.raw("procedure.started", "2026-03-03 09:00", kind="extension", working_days=10, approved_by="head",
              notified=True),
    _case.raw("decision.made", "2026-03-04 09:00", outcome="grant", officer="o-2", remedies_notified=True),
    _case.raw("fee.charged", "2026-03-04 10:00", fee_code="FEE-1", amount="20.00"),
]

TIMESTAMPS = [
    "2026-03-02T09:00:00",              # no zone
    "2026-03-02 09:00",                 # no zone, no seconds
    "9999-12-31T23:59:59+08:00",        # the year 9999
    "0001-01-01T00:00:00Z",
    "2026-02-30T09:00:00+08:00",        # no such day
    "2026-03-02T24:00:00+08:00",
    "2026-03-02T23:59:60+08:00",        # a leap second
    "2026-03-02T09:00:00+25:00",        # no such offset
    "2026-03-02T09:00:00.123456789+08:00",
    "1772413200",                       # epoch seconds as text
    "",
    "２０２６-03-02T09:00:00+08:00",    # full-width digits
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_event(draw) -> bytes:
    """A valid event damaged in one or more ways, serialised, then possibly damaged as bytes."""
    event = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 3))):
        target = event if draw(st.booleans()) else event.setdefault("data", {})
        if not isinstance(target, dict):
            target = event
        field = draw(st.sampled_from(sorted(target) or ["id"]) | st.text(max_size=10))
        damage = draw(st.sampled_from(["value", "delete", "huge", "time", "nest", "type"]))
        if damage == "value":
            target[field] = draw(json_values)
        elif damage == "delete":
            target.pop(field, None)
        elif damage == "huge":
            target[field] = "字" * draw(st.sampled_from([257, 4001, 70_000, 1_500_000]))
        elif damage == "time":
            event[draw(st.sampled_from(["time", "recordedtime"]))] = draw(st.sampled_from(TIMESTAMPS))
        elif damage == "nest":
            value: object = "x"
            for _ in range(draw(st.integers(1, 3000))):
                value = [value]
            target[field] = value
        else:
            event["type"] = draw(st.sampled_from(["cn.gov.licensing.", "cn.gov.licensing.decision.made ",
                                                  "CN.GOV.LICENSING.DECISION.MADE", ""]) | st.text(max_size=30))
    return draw(_byte_damage(_serialised(event, ascii_only=draw(st.booleans()))))


def _serialised(event: object, ascii_only: bool) -> bytes:
    """orjson, or the standard library's encoder (non-ASCII escaped as \\uXXXX), which also writes
    the deep nesting orjson refuses to."""
    if not ascii_only:
        try:
            return orjson.dumps(event)
        except TypeError:
            pass
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        return json.dumps(event).encode()
    finally:
        sys.setrecursionlimit(limit)


@st.composite
def _byte_damage(draw, raw: bytes) -> bytes:
    damage = draw(st.sampled_from(["none", "none", "truncate", "invalid_utf8", "bom", "nul", "duplicate_key",
                                   "not_json_number"]))
    if damage == "truncate":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if damage == "invalid_utf8":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])) + raw[at:]
    if damage == "bom":
        return b"\xef\xbb\xbf" + raw
    if damage == "nul":
        return raw.replace(b'"', b'"\x00', 1)
    if damage == "duplicate_key":
        return raw[:-1] + b',"id":7}' if raw.endswith(b"}") else raw
    if damage == "not_json_number":  # what the event parser takes where the model ignores it, and JSON does not
        number = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 400]))
        return raw[:-1] + b',"zzext":' + number + b"}" if raw.endswith(b"}") else raw
    return raw


raw_inputs = st.one_of(
    mutated_event(),
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    json_values.map(lambda value: _serialised(value, ascii_only=False)),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 200_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.sampled_from([b"", b" ", b"null", b"{}", b"[]", b'"x"', b"NaN", b"1e999", b"18446744073709551616"]),
)
"""Anything at all; most of it invalid, some of it valid events."""

valid_events = st.sampled_from(TEMPLATES).map(orjson.dumps)
