"""Turning findings into alert records: deterministic ids, bilingual messages, retractions."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from permitwatch.models.alerts import Alert, Message, Officers, Retraction
from permitwatch.models.settings import Signal

if TYPE_CHECKING:  # the rules package builds alerts through this module
    from permitwatch.alerts.rules.base import Finding, Rule


def alert_id(case_id: str, rule_id: str, fact: str) -> str:
    """Same case, rule and fact → same id, in every run and every runtime."""
    digest = hashlib.sha256(f"{case_id}\x1f{rule_id}\x1f{fact}".encode()).hexdigest()[:20]
    return f"{rule_id}-{digest}"


def build_alert(
    rule: Rule,
    finding: Finding,
    case_id: str,
    item_code: str | None,
    department: str | None,
    officers: Officers,
    signal_override: Signal | None = None,
) -> Alert:
    deadline = finding.deadline
    return Alert(
        alert_id=alert_id(case_id, rule.id, finding.fact),
        rule=rule.id,
        signal=finding.signal or signal_override or rule.signal,
        status="active",
        case_id=case_id,
        item_code=item_code,
        department=department,
        officers=officers,
        legal_basis=list(finding.basis or rule.basis),
        fact=finding.fact,
        deadline=deadline.info() if deadline else None,
        calendar_version=deadline.calendar_version if deadline else None,
        provisional=deadline.provisional if deadline else False,
        evidence=list(dict.fromkeys(finding.evidence)),
        detected_at=finding.detected_at,
        message=Message(zh=f"办件 {case_id} {finding.zh}", en=f"Case {case_id}: {finding.en}"),
    )


def retraction(alert: Alert, evidence: tuple[str, ...], at: datetime, reason: Message) -> Alert:
    """The same alert, marked retracted, with what disproved it."""
    return alert.model_copy(
        update={
            "status": "retracted",
            "detected_at": at,
            "retraction": Retraction(reason=reason, evidence=list(evidence)),
        }
    )
