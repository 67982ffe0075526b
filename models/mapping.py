"""A mapping file: how records of a government data feed (GB/T 39046-2020 data sets such as 办事申请,
事项受理, 事项办理, 事项办结) become CloudEvents. JSON or YAML; see docs/import.md."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from permitwatch.models.common import Contract


class FieldSpec(Contract):
    """Where a value comes from: a record field (optionally translated, split, converted), or a constant."""

    field: str | None = None
    const: Any = None
    map: dict[str, Any] | None = Field(None, description="Translate the record's value (e.g. 办理结果 准予 → grant)")
    default: Any = None
    split: str | None = Field(None, description="Split a text field into a list on this separator")
    as_: Literal["text", "int", "bool", "date", "time"] = Field("text", alias="as")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        return {"field": value} if isinstance(value, str) else value


class EventSpec(Contract):
    """One event to make from a record: its type (without `cn.gov.licensing.`), when, and data."""

    type: str
    time: str = Field(description="The record field holding the event time")
    when: dict[str, str] = Field(default_factory=dict, description="Only for records with these field values")
    when_present: str | None = Field(None, description="Only for records where this field is not empty")
    data: dict[str, FieldSpec] = Field(default_factory=dict)


class DatasetSpec(Contract):
    events: Annotated[list[EventSpec], Field(min_length=1)]


class FeedMapping(Contract):
    version: str = "unversioned"
    dataset_field: str = Field("数据集", description="The field naming a record's data set")
    case_field: str = Field("办件编号", description="The case id (CloudEvents subject)")
    id_fields: list[str] = Field(
        description="Fields that identify a record; the event id is a hash of them, so a re-import is "
        "recognised as duplicates")
    source: str = "/import"
    timezone: str = Field("+08:00", description="Offset of timestamps that carry none (the feeds' local time)")
    datasets: dict[str, DatasetSpec]
