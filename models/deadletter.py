"""Dead letters out: input that could not become an event, kept with its original bytes and why."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field

from permitwatch.models.common import SCHEMA_VERSION, Contract

CATEGORIES: tuple[str, ...] = (
    "invalid_json", "invalid_utf8", "not_an_object", "missing_type", "unknown_type", "schema", "too_large",
    "future_time", "no_referral", "engine_error", "unmapped", "invalid_control", "conflicting_duplicate",
)
"""Every reason an input is refused for."""


class KafkaSource(Contract):
    topic: str
    partition: int
    offset: int


class DeadLetter(Contract):
    schema_version: Literal["1.0"] = SCHEMA_VERSION
    origin: str = Field(description="Where it came from: file:line, HTTP request, topic/partition/offset")
    source: KafkaSource | None = Field(None, description="On Kafka: the record the input came in")
    category: str = Field(description=", ".join(CATEGORIES))
    reason: str = Field(description="What is wrong, naming the field")
    raw: str | None = Field(None, description="The original input, when it is valid UTF-8")
    raw_base64: str | None = Field(None, description="The original bytes, base64, when they are not UTF-8")

    @classmethod
    def of(cls, origin: str, category: str, reason: str, raw: bytes, source: KafkaSource | None = None) -> DeadLetter:
        try:
            return cls(origin=origin, source=source, category=category, reason=reason, raw=raw.decode("utf-8"))
        except UnicodeDecodeError:
            return cls(origin=origin, source=source, category=category, reason=reason,
                       raw_base64=base64.b64encode(raw).decode())

    def original(self) -> bytes:
        return self.raw.encode("utf-8") if self.raw is not None else base64.b64decode(self.raw_base64 or "")
