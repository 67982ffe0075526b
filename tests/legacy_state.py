"""What the runtimes wrote before 2026-12-01, for the tests that show it still reads: the state
codec's format 2, a pickle stream whose classes are extension codes derived from their names
(`streams/state_codec.py` describes it), a case as its layout's flat tuple and an alert as a
stream of its own. The runtimes no longer write it; their reader is still the codec's."""

from __future__ import annotations

import io
import pickle
import types
from typing import Any
from zoneinfo import ZoneInfo

from permitwatch.alerts import case as c
from permitwatch.models.alerts import Alert
from permitwatch.streams import state_codec as codec

_NOT_STATE = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.MethodWrapperType,
              types.ModuleType, type(Ellipsis), type(NotImplemented))
"""What pickle would write as a module path and the reader refuses: refused when written."""


def dumps(value: object, with_layouts: bool = True) -> bytes:
    """`value` as format 2; `with_layouts` off writes cases and alerts as objects (as the releases
    before the layouts did, and as an alert's own stream is written)."""
    out = io.BytesIO()
    out.write(codec.MAGIC)
    _Writer(out, with_layouts).dump(value)
    return out.getvalue()


def tags() -> dict[Any, str]:
    """Each class of the state by its tag (registering the tags' extension codes)."""
    return {cls: tag for tag, cls in codec._registry().by_tag.items()}


def _case_layout(case: c.CaseState) -> tuple:
    # The layout as those releases wrote it, not made from today's `_case_record`: the tests must
    # read what they wrote (datetimes, sets and decimals as themselves), whatever the record becomes.
    fact, instant, officer = codec._fact, codec._instant, codec._officer
    return codec._case_from_layout, ((
        codec._CASE_LAYOUT, case.case_id, case.item_code, case.department, case.applicant, fact(case.submitted),
        [(instant(r[0]), r[1], r[2], r[3]) for r in case.receipts],
        [(instant(n[0]), n[1], n[2]) for n in case.notices],
        fact(case.accepted), case.promised_day, fact(case.rejected), fact(case.withdrawn), fact(case.closure),
        [(instant(p[0]), *p[1:]) for p in case.procedure_starts],
        [(instant(p[0]), p[1], p[2]) for p in case.procedure_ends],
        fact(case.forwarded), fact(case.hearing_requested), fact(case.hearing_held),
        [(instant(d[0]), *d[1:]) for d in case.decisions],
        fact(case.licence), fact(case.published),
        [(instant(f[0]), *f[1:]) for f in case.fees],
        officer(case.handler), officer(case.reviewer), officer(case.approver),
        case.seen, instant(case.last_time), case.last_step, case.alerts, case.referable,
        None if case.dues is None else {rule: instant(due) for rule, due in case.dues.items()},
        instant(case.expires),
    ),)


def _alert_layout(alert: Alert) -> tuple:
    return codec._alert_from_stored, (dumps(alert, with_layouts=False),)


_LAYOUTS = {c.CaseState: _case_layout, Alert: _alert_layout}


def _zone(zone: ZoneInfo) -> tuple[type, tuple[str]]:
    # ZoneInfo's own reduction goes through getattr(ZoneInfo, "_unpickle").
    return ZoneInfo, (zone.key,)


class _Writer(pickle.Pickler):
    dispatch_table = {ZoneInfo: _zone}

    def __init__(self, out: io.BytesIO, with_layouts: bool):
        super().__init__(out, protocol=5)
        self.allowed = tags()
        self.layouts = _LAYOUTS if with_layouts else {}

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        layout = self.layouts.get(cls)
        if layout is not None:
            return layout(obj)
        if cls is types.FunctionType and obj in self.allowed:
            return NotImplemented  # a layout's reader
        if isinstance(obj, type):
            cls = obj
        if cls not in self.allowed:
            if isinstance(obj, _NOT_STATE):
                raise pickle.PicklingError(f"{obj!r} is not part of the engine's state")
            raise pickle.PicklingError(f"{cls.__module__}.{cls.__qualname__} is not part of the engine's state")
        return NotImplemented
