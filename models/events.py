"""Events in: CloudEvents 1.0 structured JSON, one event per message or line (EVENTS.md).

Each event type is its own model with a literal `type`, so a batch parses through one
discriminated union in a single pass (`parse_event`), with no second validation on the hot path.
"""

from __future__ import annotations

import hashlib
import zlib
from decimal import Decimal
from typing import Annotated, Literal, Union

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from permitwatch.models.common import (
    NOT_A_TRUTH_VALUE,
    Code,
    Contract,
    Day,
    Identifier,
    Instant,
    LegalInstant,
    Prose,
    Text,
)
from permitwatch.models.errors import InvalidInput

TYPE_PREFIX = "cn.gov.licensing."
SUPERVISION_PREFIX = "cn.gov.permitwatch."


def kind_of(event_type: str) -> str:
    """An event type without its namespace, e.g. `application.accepted`."""
    return event_type.removeprefix(TYPE_PREFIX).removeprefix(SUPERVISION_PREFIX)


MaterialList = Annotated[list[Code], Field(max_length=500)]

Channel = Literal["window", "online", "mobile", "post"]

# XKF art. 45: time spent on these does not count towards the decision limit.
STATUTORY_PAUSE_KINDS = frozenset(
    {"hearing", "tendering", "auction", "inspection", "testing", "quarantine", "appraisal", "expert_review"}
)
ProcedureKind = Literal[
    "extension",
    "hearing",
    "tendering",
    "auction",
    "inspection",
    "testing",
    "quarantine",
    "appraisal",
    "expert_review",
    "on_site_verification",
    "other",
]


class EventData(Contract):
    """Every `data` may name who acted and where; `application.submitted` must."""

    officer: Identifier | None = None
    department: Code | None = None
    item_code: Code | None = None


class ApplicationSubmittedData(EventData):
    item_code: Code
    department: Code
    applicant_id: Identifier
    channel: Channel
    materials: MaterialList = []
    officer: Identifier


class ApplicationAcceptedData(EventData):
    # Missing or empty is a finding (PW-007), not an invalid event.
    receipt_no: Annotated[str, Field(max_length=256)] | None = None
    promised_deadline: Day | None = None


class ApplicationRejectedData(EventData):
    receipt_no: Annotated[str, Field(max_length=256)] | None = None
    reasons: Text | None = None
    remedies_notified: bool = False


class CorrectionRequestedData(EventData):
    notice_no: Annotated[str, Field(max_length=256)] | None = None
    materials: MaterialList


class CorrectionSuppliedData(EventData):
    materials: MaterialList


class ProcedureStartedData(EventData):
    kind: ProcedureKind
    approved_by: Annotated[str, Field(max_length=256)] | None = None
    notified: bool = False
    working_days: Annotated[int, Field(ge=0, le=3650), NOT_A_TRUTH_VALUE] | None = None


class ProcedureEndedData(EventData):
    kind: ProcedureKind


class StepCompletedData(EventData):
    step: Literal["handle", "review", "approve"]
    officer: Identifier
    action: Literal["pass", "return"] = "pass"


class ReviewForwardedData(EventData):
    to_department: Code


class HearingNotifiedData(EventData):
    scheduled_for: Instant


class DecisionMadeData(EventData):
    outcome: Literal["grant", "deny"]
    reasons: Text | None = None
    remedies_notified: bool = False


class LicenceIssuedData(EventData):
    licence_no: Annotated[str, Field(max_length=256)] | None = None


class ResultPublishedData(EventData):
    channel: Annotated[str, Field(max_length=256)] | None = None


class FeeChargedData(EventData):
    fee_code: Code | None = None
    amount: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
    deposit: bool = False


class CloudEvent(Contract):
    """The CloudEvents 1.0 envelope. `subject` is the case id (办件编号); `time` is when it happened."""

    specversion: Literal["1.0"]
    id: Identifier
    source: Annotated[str, Field(min_length=1, max_length=1024)]
    type: str
    time: LegalInstant
    subject: Code
    recordedtime: LegalInstant | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: EventData = EventData()

    @property
    def kind(self) -> str:
        return kind_of(self.type)

    @property
    def case_id(self) -> str:
        return self.subject


class ApplicationSubmitted(CloudEvent):
    type: Literal["cn.gov.licensing.application.submitted"]
    data: ApplicationSubmittedData


class ApplicationAccepted(CloudEvent):
    type: Literal["cn.gov.licensing.application.accepted"]
    data: ApplicationAcceptedData = ApplicationAcceptedData()


class ApplicationRejected(CloudEvent):
    type: Literal["cn.gov.licensing.application.rejected"]
    data: ApplicationRejectedData = ApplicationRejectedData()


class CorrectionRequested(CloudEvent):
    type: Literal["cn.gov.licensing.correction.requested"]
    data: CorrectionRequestedData


class CorrectionSupplied(CloudEvent):
    type: Literal["cn.gov.licensing.correction.supplied"]
    data: CorrectionSuppliedData


class ProcedureStarted(CloudEvent):
    type: Literal["cn.gov.licensing.procedure.started"]
    data: ProcedureStartedData


class ProcedureEnded(CloudEvent):
    type: Literal["cn.gov.licensing.procedure.ended"]
    data: ProcedureEndedData


class StepCompleted(CloudEvent):
    type: Literal["cn.gov.licensing.step.completed"]
    data: StepCompletedData


class ReviewForwarded(CloudEvent):
    type: Literal["cn.gov.licensing.review.forwarded"]
    data: ReviewForwardedData


class HearingRequested(CloudEvent):
    type: Literal["cn.gov.licensing.hearing.requested"]


class HearingNotified(CloudEvent):
    type: Literal["cn.gov.licensing.hearing.notified"]
    data: HearingNotifiedData


class HearingHeld(CloudEvent):
    type: Literal["cn.gov.licensing.hearing.held"]


class DecisionMade(CloudEvent):
    type: Literal["cn.gov.licensing.decision.made"]
    data: DecisionMadeData


class LicenceIssued(CloudEvent):
    type: Literal["cn.gov.licensing.licence.issued"]
    data: LicenceIssuedData = LicenceIssuedData()


class ResultPublished(CloudEvent):
    type: Literal["cn.gov.licensing.result.published"]
    data: ResultPublishedData = ResultPublishedData()


class FeeCharged(CloudEvent):
    type: Literal["cn.gov.licensing.fee.charged"]
    data: FeeChargedData


class ApplicationWithdrawn(CloudEvent):
    type: Literal["cn.gov.licensing.application.withdrawn"]


class ExemptionRecordedData(EventData):
    ground: Literal["applicant_fraud", "conflicting_rules", "force_majeure", "other"]
    reason: Prose
    recorded_by: Identifier
    decided_at: Instant | None = Field(None, description="When the exemption was decided, if not when recorded "
                                                         "(the event's time)")


class ExemptionRecorded(CloudEvent):
    """Not a window-system event: an operator records an SZ-XK art. 15 exemption for the referral
    of case `subject` (added to the contract so that replays carry exemptions in the event log)."""

    type: Literal["cn.gov.permitwatch.exemption.recorded"]
    data: ExemptionRecordedData


EVENT_MODELS: tuple[type[CloudEvent], ...] = (
    ApplicationSubmitted,
    ApplicationAccepted,
    ApplicationRejected,
    CorrectionRequested,
    CorrectionSupplied,
    ProcedureStarted,
    ProcedureEnded,
    StepCompleted,
    ReviewForwarded,
    HearingRequested,
    HearingNotified,
    HearingHeld,
    DecisionMade,
    LicenceIssued,
    ResultPublished,
    FeeCharged,
    ApplicationWithdrawn,
    ExemptionRecorded,
)
LICENSING_MODELS = EVENT_MODELS[:-1]

EVENT_TYPES: tuple[str, ...] = tuple(m.model_fields["type"].annotation.__args__[0] for m in EVENT_MODELS)
EVENT_KINDS: tuple[str, ...] = tuple(kind_of(t) for t in EVENT_TYPES)

Event = Annotated[Union[EVENT_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007

EVENT_ADAPTER: TypeAdapter[CloudEvent] = TypeAdapter(Event)
# The core validator, called directly on the hot path (the TypeAdapter wrapper adds ~10%).
_VALIDATE_JSON = EVENT_ADAPTER.validator.validate_json


class InvalidEvent(InvalidInput):
    """Raised for input that is not a valid event; `reason` says which field is wrong and why."""

    def __init__(self, reason: str, category: str):
        super().__init__(reason)
        self.reason = reason
        self.category = category


def _describe(error: dict) -> tuple[str, str]:
    """One readable line per pydantic error: `data.receipt_no: Input should be a valid string`."""
    kind = error["type"]
    if kind == "json_invalid":
        return "invalid_json", f"not valid JSON: {error['ctx'].get('error', error['msg'])}"
    if kind == "union_tag_not_found":
        return "missing_type", "type: field required (the CloudEvents `type` attribute)"
    if kind == "union_tag_invalid":
        tag = error["ctx"]["tag"]
        return "unknown_type", f"type: unknown event type {tag!r}; expected one of {', '.join(EVENT_TYPES)}"
    if kind == "dict_type" and not error["loc"]:
        return "not_an_object", "the event must be a JSON object (one CloudEvent)"
    # The first location element is the union tag; it is noise to a reader.
    loc = [str(part) for part in error["loc"][1:]] or ["(event)"]
    field = ".".join(loc)
    return "schema", f"{field}: {error['msg']}"


def _invalid(exc: ValidationError) -> InvalidEvent:
    described = [_describe(e) for e in exc.errors(include_url=False)]
    return InvalidEvent("; ".join(text for _, text in described), described[0][0])


def parse_event(raw: bytes | str) -> CloudEvent:
    """Parse one structured CloudEvent from JSON, or raise `InvalidEvent` naming every bad field."""
    try:
        return _VALIDATE_JSON(raw)
    except ValidationError as exc:
        if isinstance(raw, bytes) and exc.errors()[0]["type"] == "json_invalid":
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise InvalidEvent(f"not valid UTF-8: {bad.reason} at byte {bad.start}", "invalid_utf8") from None
        raise _invalid(exc) from None


def event_key(event: CloudEvent) -> int:
    """What identifies an event across the whole log (CloudEvents, EVENTS.md): its `source` and
    `id`, whatever its subject. 64 bits, stable across processes."""
    return int.from_bytes(hashlib.blake2b(f"{event.source}\x1f{event.id}".encode(), digest_size=8).digest(), "big")


def content_digest(raw: bytes | str) -> int:
    """What a repeat of an event must match to be a duplicate rather than a conflict: its JSON
    content, whatever the spacing and the order of keys. `InvalidEvent` (invalid_json) for what
    the event parser takes in an attribute it ignores and this reader does not: NaN and Infinity
    (not JSON), numbers beyond a double's range (JSON, but past what readers must take)."""
    try:
        content = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {exc} (NaN, Infinity and numbers beyond a double's range are refused "
                           "too)", "invalid_json") from None
    return zlib.crc32(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))


def parse_event_with_digest(raw: bytes | str) -> tuple[CloudEvent, int]:
    """`parse_event` and the event's `content_digest`: how every runtime takes an event in, so that
    one the digest cannot read is refused on arrival whatever its type, the same way everywhere
    (an exemption needs no digest, and was taken by some runtimes and refused by others). Where
    the digest is not needed, this is still the check: the digest's reader is the strict one."""
    return parse_event(raw), content_digest(raw)


def parse_event_object(obj: object) -> CloudEvent:
    """Like `parse_event`, for input already decoded from JSON (e.g. one element of a batch)."""
    try:
        return EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise _invalid(exc) from None
