"""Reference data: the item catalog (事项目录), one entry per licensing item."""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, model_validator

from permitwatch.models.common import NOT_A_TRUTH_VALUE, Code, Contract, Duration, working_days
from permitwatch.models.files import load_structured


class Material(Contract):
    code: Code
    name: Annotated[str, Field(max_length=512)] = ""


class FeeStandard(Contract):
    """The fee basis of an item; amounts are yuan as decimal strings."""

    fee_code: Code
    max_amount: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class CatalogEntry(Contract):
    item_code: Code
    name: Annotated[str, Field(max_length=512)]
    department: Code
    statutory_limit: Duration | None = Field(
        None, description="The item's own statutory limit; null: the law's (20 WD, 45 WD for joint handling)")
    promised_limit: Duration | None = None
    materials: list[Material] = []
    on_the_spot: bool = False
    hearing_required: bool = False
    joint_handling: bool = False
    quantity_limited: bool = False
    allocation: Literal["order", "tender", "auction", "exam"] | None = Field(None, description=(
        "How a quantity-limited item is allocated; null or absent: by order of acceptance (XKF art. 57), "
        "or the item is not quantity-limited"))
    fee: FeeStandard | None = None
    licence_required: bool = False
    publish_within: Duration | None = None
    # Added to the contract: a lower agency reviews first and forwards (XKF art. 43, PW-014).
    preliminary_review: bool = False
    # Added: item-level override of the PW-002 warning threshold (working days before the limit).
    warning_working_days: Annotated[int, Field(ge=0, le=60), NOT_A_TRUTH_VALUE] | None = None

    @model_validator(mode="after")
    def _promise_within_law(self) -> CatalogEntry:
        limit, promise = self.statutory_limit or working_days(45 if self.joint_handling else 20), self.promised_limit
        if promise is not None and promise.unit == limit.unit and promise.value > limit.value:
            raise ValueError(
                f"promised_limit ({promise.value} {promise.unit}) exceeds statutory_limit "
                f"({limit.value} {limit.unit})"
            )
        return self

    @property
    def granted_in_order(self) -> bool:
        """Quantity-limited and allocated by order of acceptance (not by tender, auction or exam)."""
        return self.quantity_limited and self.allocation in (None, "order")

    @cached_property
    def material_codes(self) -> frozenset[str]:
        return frozenset(m.code for m in self.materials)


class Catalog(Contract):
    """A catalog file: a bare list of entries, or `{version, items}`."""

    version: Annotated[str, Field(max_length=128)] = "unversioned"
    items: list[CatalogEntry] = []

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_list(cls, value: object) -> object:
        return {"items": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _unique_codes(self) -> Catalog:
        seen: set[str] = set()
        for entry in self.items:
            if entry.item_code in seen:
                raise ValueError(f"item_code {entry.item_code!r} appears twice")
            seen.add(entry.item_code)
        return self

    def by_code(self) -> dict[str, CatalogEntry]:
        return {entry.item_code: entry for entry in self.items}


CATALOG_ADAPTER = TypeAdapter(Catalog)


def load_catalog(path: str | Path) -> Catalog:
    """Read a catalog file (JSON or YAML); errors name the entry and field."""
    return load_structured(path, Catalog)
