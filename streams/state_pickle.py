"""Pickles of the engine's own state (Kafka table values, the embedded checkpoint), read back with
only the classes that state is made of.

`pickle.loads` calls whatever callable a pickle names: anyone who can write a changelog topic or
the checkpoint file could run code in every worker or monitor that reads it. Loading here
resolves a name only if it is a class defined in the domain packages (`alerts`, `models`), the
Kafka stages' stored records or the retired-case store, or one of the few standard-library types
the state holds; anything
else is refused with `UnsafeState` before it is called (the "restricting globals" recipe of the
`pickle` documentation).
"""

from __future__ import annotations

import io
import pickle
from typing import Any
from zoneinfo import ZoneInfo

from permitwatch.models.errors import CorruptState

_DOMAIN = ("permitwatch.alerts.", "permitwatch.models.")
_RUNTIME = ("permitwatch.streams.kafka.stages", "permitwatch.streams.retired")
_BEFORE_ONE_PACKAGE = ("alerts.", "models.", "streams.")
"""Module names in pickles written before the packages moved under `permitwatch` (2026-11-30)."""
_STANDARD = {
    "builtins": {"set", "frozenset"},
    "collections": {"Counter", "OrderedDict", "defaultdict", "deque"},
    "datetime": {"date", "datetime", "time", "timedelta", "timezone"},
    "decimal": {"Decimal"},
    "zoneinfo": {"ZoneInfo"},
    "pydantic_core._pydantic_core": {"TzInfo"},
}


class UnsafeState(CorruptState):
    """A state pickle names something the engine's state is not made of."""


def _zoneinfo_getattr(owner: object, name: str) -> Any:
    # ZoneInfo pickles as getattr(ZoneInfo, "_unpickle")(key, from_cache); no other use of
    # getattr is let through, since it reaches any attribute of anything.
    if owner is ZoneInfo and name == "_unpickle":
        return ZoneInfo._unpickle
    raise UnsafeState(f"state pickle asks for attribute {name!r} of {owner!r}")


class _StateUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_BEFORE_ONE_PACKAGE):
            module = f"permitwatch.{module}"
        if module == "builtins" and name == "getattr":
            return _zoneinfo_getattr
        if name in _STANDARD.get(module, ()):
            return super().find_class(module, name)
        if (module.startswith(_DOMAIN) or module in _RUNTIME) and "." not in name:
            found = super().find_class(module, name)
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise UnsafeState(f"state pickle names {module}.{name}, which is not part of the engine's state")


def dumps(value: object) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes | memoryview) -> Any:
    """Read a pickle written by `dumps`; `UnsafeState` if it names anything else."""
    return _StateUnpickler(io.BytesIO(data)).load()
