"""Builds events for tests the way a window system would send them: as CloudEvent JSON, parsed
through the real contract (so every test also exercises the wire format)."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import orjson

from permitwatch.models.catalog import Catalog, CatalogEntry
from permitwatch.models.events import TYPE_PREFIX, CloudEvent, parse_event

TZ = "+08:00"


def at(text: str) -> str:
    """'2026-03-02 09:15' → '2026-03-02T09:15:00+08:00' (Asia/Shanghai unless a zone is given)."""
    text = text.replace(" ", "T")
    if len(text) == 10:
        text += "T09:00"
    if len(text) == 16:
        text += ":00"
    if not (text.endswith("Z") or "+" in text[10:] or "-" in text[10:]):
        text += TZ
    return text


def moment(text: str) -> datetime:
    return datetime.fromisoformat(at(text))


class CaseEvents:
    """Events of one case, with ids `<case>-<n>` in the order they are made."""

    _ids = itertools.count(1)

    def __init__(self, case_id: str = "SZ-2026-000123", item: str = "ITEM-STD", department: str = "D-MARKET"):
        self.case_id = case_id
        self.item = item
        self.department = department
        self.counter = itertools.count(1)

    def raw(self, kind: str, when: str, /, *, event_id: str | None = None, recorded: str | None = None, **data: Any) -> dict:
        event = {
            "specversion": "1.0",
            "id": event_id or f"{self.case_id}-{next(self.counter)}",
            "source": "/shenzhen/test/window",
            "type": TYPE_PREFIX + kind,
            "time": at(when),
            "subject": self.case_id,
            "datacontenttype": "application/json",
            "data": data,
        }
        if recorded:
            event["recordedtime"] = at(recorded)
        return event

    def event(self, kind: str, when: str, /, **kwargs: Any) -> CloudEvent:
        return parse_event(orjson.dumps(self.raw(kind, when, **kwargs)))

    # Shortcuts for the common events, with the data a real window system would send.

    def submitted(self, when: str, materials: tuple[str, ...] = ("M1", "M2", "M3"), officer: str = "o-handler", **kw: Any) -> CloudEvent:
        return self.event("application.submitted", when, item_code=self.item, department=self.department,
                          applicant_id="91440300MA5ABCDE1X", channel="window", materials=list(materials),
                          officer=officer, **kw)

    def accepted(self, when: str, receipt_no: str | None = "受理-0001", officer: str = "o-handler", **kw: Any) -> CloudEvent:
        data = {"officer": officer, **kw}
        if receipt_no is not None:
            data["receipt_no"] = receipt_no
        return self.event("application.accepted", when, **data)

    def rejected(self, when: str, **kw: Any) -> CloudEvent:
        return self.event("application.rejected", when, **{"receipt_no": "不予受理-1", "reasons": "不属于本机关职权",
                                                            "remedies_notified": True, "officer": "o-handler", **kw})

    def correction(self, when: str, materials: tuple[str, ...], **kw: Any) -> CloudEvent:
        return self.event("correction.requested", when, notice_no=f"补正-{next(self._ids)}", materials=list(materials),
                          officer=kw.pop("officer", "o-handler"), **kw)

    def supplied(self, when: str, materials: tuple[str, ...], **kw: Any) -> CloudEvent:
        return self.event("correction.supplied", when, materials=list(materials), **kw)

    def procedure(self, when: str, kind: str, working_days: int | None = None, approved_by: str | None = "head-1",
                  notified: bool = True, **kw: Any) -> CloudEvent:
        data = {"kind": kind, "notified": notified, **kw}
        if working_days is not None:
            data["working_days"] = working_days
        if approved_by is not None:
            data["approved_by"] = approved_by
        return self.event("procedure.started", when, **data)

    def procedure_ended(self, when: str, kind: str, **kw: Any) -> CloudEvent:
        return self.event("procedure.ended", when, kind=kind, **kw)

    def step(self, when: str, step: str, officer: str, action: str = "pass", **kw: Any) -> CloudEvent:
        return self.event("step.completed", when, step=step, officer=officer, action=action, **kw)

    def forwarded(self, when: str, to_department: str = "D-PROVINCE", **kw: Any) -> CloudEvent:
        return self.event("review.forwarded", when, to_department=to_department, officer="o-handler", **kw)

    def hearing(self, kind: str, when: str, **kw: Any) -> CloudEvent:
        return self.event(f"hearing.{kind}", when, **kw)

    def decided(self, when: str, outcome: str = "grant", officer: str = "o-approver", **kw: Any) -> CloudEvent:
        data = {"outcome": outcome, "officer": officer, "remedies_notified": True, **kw}
        if outcome == "deny":
            data.setdefault("reasons", "不符合法定条件")
        return self.event("decision.made", when, **data)

    def licence(self, when: str, **kw: Any) -> CloudEvent:
        return self.event("licence.issued", when, licence_no=f"证-{next(self._ids)}", **kw)

    def published(self, when: str, **kw: Any) -> CloudEvent:
        return self.event("result.published", when, channel="website", **kw)

    def fee(self, when: str, amount: str, fee_code: str = "FEE-1", deposit: bool = False, **kw: Any) -> CloudEvent:
        return self.event("fee.charged", when, fee_code=fee_code, amount=amount, deposit=deposit, **kw)

    def withdrawn(self, when: str, **kw: Any) -> CloudEvent:
        return self.event("application.withdrawn", when, **kw)

    def exemption(self, when: str, ground: str = "force_majeure", reason: str = "台风停工三日",
                  recorded_by: str = "op-7") -> CloudEvent:
        """An operator's SZ-XK art. 15 exemption record for this case's referral."""
        raw = self.raw("application.withdrawn", when)
        raw.update(type="cn.gov.permitwatch.exemption.recorded",
                   data={"ground": ground, "reason": reason, "recorded_by": recorded_by})
        return parse_event(orjson.dumps(raw))


def catalog(*entries: dict) -> Catalog:
    """A catalog with a standard item plus any given entries (dicts in the catalog file format)."""
    standard = {
        "item_code": "ITEM-STD",
        "name": "食品经营许可",
        "department": "D-MARKET",
        "materials": [{"code": c, "name": c} for c in ("M1", "M2", "M3", "M4", "M5")],
        "licence_required": True,
        "fee": None,
    }
    return Catalog(items=[CatalogEntry.model_validate(standard), *(CatalogEntry.model_validate(e) for e in entries)])
