"""Referrals out: candidate cases for the supervision bureau (监察机关), one record per version.

A referral groups the red alerts of one case. Every change is a new `version` of the same
`referral_id`; a version is never rewritten. Downstream case systems code against the JSON Schema
generated from `Referral`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from permitwatch.models.alerts import LegalBasis, Message, RuleId
from permitwatch.models.common import Contract, Identifier, Instant, Prose, Text

REFERRAL_SCHEMA_VERSION = "2.0"
"""2.0 (2026-11-30): an aggravation cites the referral that establishes it and no longer counts
its neighbours (`earlier_count` is gone); versions are made only for changes a reader can act on."""

ExemptionGround = Literal["applicant_fraud", "conflicting_rules", "force_majeure", "other"]


class ReferralAlert(Contract):
    alert_id: str
    rule: RuleId
    fact: str
    detected_at: datetime
    status: Literal["active", "withdrawn"] = Field(
        description="withdrawn when the alert was retracted; it stays listed so the history is visible"
    )
    message: Message
    evidence: list[str]


class ResponsibleOfficer(Contract):
    role: Literal["handler", "reviewer", "approver"]
    responsibility: Literal["direct", "principal_leadership", "important_leadership"] = Field(
        description="SZ-XK art. 4: 直接责任 / 主要领导责任 / 重要领导责任"
    )
    responsibility_zh: str
    officer: str | None = Field(description="None when no event names this person")
    known: bool
    evidence: list[str] = Field(description="Ids of the events that name the officer")


class Aggravation(Contract):
    """SZ-XK art. 12(1) holds for one subject: two or more referable violations within one year.

    Every officer the referral names and its department are assessed; a subject that is not
    listed has no earlier open referral in the window, as of this version."""

    basis: Literal["SZ-XK art. 12(1)"] = "SZ-XK art. 12(1)"
    subject_kind: Literal["officer", "department"]
    subject: str
    earlier_referrals: list[str] = Field(description=(
        "The earlier open referral of the same subject that establishes the finding: the most recent one whose "
        "first violation lies within window_days before this one's. It stays cited while it holds"))
    window_days: int


class Mitigation(Contract):
    """SZ-XK art. 14: facts that may lighten the measure (people weigh them)."""

    basis: str = "SZ-XK art. 14"
    kind: Literal["delivered_late", "corrected"]
    description: Message
    at: datetime
    evidence: list[str]


class Exemption(Contract):
    """SZ-XK art. 15: recorded by an operator; the referral is kept, marked exempt."""

    ground: ExemptionGround
    basis: str = Field(description="SZ-XK art. 15(1)…(4)")
    reason: Text
    recorded_by: Identifier
    recorded_at: datetime = Field(description="When the monitor recorded it (its clock; never set by a client)")
    decided_at: datetime | None = Field(None, description="When it was decided, as the operator stated: not "
                                                          "before the referral's first red alert, not after "
                                                          "`recorded_at`")

    def same_decision(self, other: Exemption) -> bool:
        """The same exemption recorded again (a repeated request): it makes no new version."""
        return self.states(other.ground, other.reason, other.recorded_by, other.decided_at)

    def states(self, ground: str, reason: str, recorded_by: str, decided_at: datetime | None) -> bool:
        return (self.ground, self.reason, self.recorded_by, self.decided_at) == (ground, reason, recorded_by, decided_at)


class Measure(Contract):
    """A measure SZ-XK art. 11 allows. The referral lists them; people choose (art. 16, 18)."""

    code: str
    applies_to: Literal["agency", "officer"]
    zh: str
    en: str


class Referral(Contract):
    schema_version: Literal["2.0"] = REFERRAL_SCHEMA_VERSION
    referral_id: str
    version: Annotated[int, Field(ge=1)]
    status: Literal["open", "withdrawn", "exempt"]
    change: Message = Field(description="What this version changed")
    case_id: str
    item_code: str | None = None
    department: str | None = None
    alerts: list[ReferralAlert]
    officers: list[ResponsibleOfficer]
    aggravating: list[Aggravation] = []
    mitigating: list[Mitigation] = []
    exemption: Exemption | None = None
    measures: list[Measure]
    legal_basis: list[LegalBasis]
    first_violation_at: datetime
    as_of: datetime = Field(description="Legal time of the fact that produced this version")
    right_to_be_heard: Message = Field(
        description="SZ-XK art. 18: the officer may state and defend their case before any decision"
    )


class ExemptionRequest(Contract):
    """What an operator submits to record an art. 15 exemption (API body). The monitor stamps when
    it was recorded; the operator may say when it was decided. Unknown fields are refused: a
    client that sends `recorded_at` must learn it is not honoured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ground: ExemptionGround
    reason: Prose
    recorded_by: Identifier | None = Field(None, description="Defaults to the caller; must be the caller")
    decided_at: Instant | None = Field(None, description="When the exemption was decided, if earlier than now: not "
                                                         "before the referral's first red alert")
