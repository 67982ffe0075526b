"""The codec of the engine's stored state (Kafka table values, the embedded checkpoint, retired
cases): what the state is made of, written so that moving a class does not change the stored
bytes, and read so that nothing outside the state's own types can be reached.

Format 1 (`MAGIC` then a pickle stream, protocol 5): objects are pickle's own opcodes (str, int,
float, bytes, tuple, list, dict, set, frozenset, None, bool), and every class is named by a tag,
never a module path: the class's own name for the engine's classes (`alerts`, `models`, the
Kafka stages' stored records, the retired-case store; names are unique there, checked when the
registry is built), the standard types the state holds by theirs (`datetime`, `Decimal`, …), and
a time zone by its key (`zone:Asia/Shanghai`). Writing a class that is not registered fails
loudly instead of writing a module path. Reading resolves tags in the registry only: a stream
that names any global is refused with `UnsafeState` before anything is called.

What reading still allows a forged stream (so the tables and the checkpoint must be writable by
the workers and the monitor only: Kafka ACLs, file permissions): calling a registered class with
arguments of its choosing, and setting attributes on a registered class object (pickle's BUILD
on a class), which lasts for the process. Closing that needs the writer to emit constructor
tokens instead of classes (reducer_override) and the reader to hand out sealed constructors.

Format 0 is what permitwatch wrote before 2026-11-30: plain pickles naming module paths. They are
still read (a checkpoint or a changelog written by the previous version), with the classes they
name checked against the same registry; they are never written.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import functools
import importlib
import io
import pickle
import pkgutil
import types
from typing import Any
from zoneinfo import ZoneInfo

from pydantic_core import TzInfo

from permitwatch.models.errors import CorruptState

MAGIC = b"PWS\x01"
"""Format 1: the stored state's first bytes."""

_ENGINE_PACKAGES = ("permitwatch.alerts", "permitwatch.models")
_RUNTIME_CLASSES = {"permitwatch.streams.kafka.stages": ("StoredItem", "StoredCase", "CityHeader"),
                    "permitwatch.streams.retired": ("CompactCases",)}
"""The runtimes' own stored records (their modules define other classes, not stored)."""
_STANDARD: tuple[type, ...] = (
    dt.date, dt.datetime, dt.time, dt.timedelta, dt.timezone, decimal.Decimal, TzInfo,
    collections.Counter, collections.OrderedDict, collections.defaultdict, collections.deque,
    set, frozenset, list, dict, tuple, str, int, float, bool, bytes,
)
_BEFORE_ONE_PACKAGE = ("alerts.", "models.", "streams.")
"""Module names in format-0 pickles written before the packages moved under `permitwatch`."""


class UnsafeState(CorruptState):
    """Stored state that names something the engine's state is not made of."""


@functools.cache
def _registry() -> tuple[dict[str, type], dict[type, str]]:
    """Tag → class and class → tag of everything the state may be made of. Built on first use:
    the modules it reads import this one."""
    by_tag: dict[str, type] = {cls.__name__: cls for cls in _STANDARD}
    for module_name, names in _RUNTIME_CLASSES.items():
        module = importlib.import_module(module_name)
        by_tag.update((name, getattr(module, name)) for name in names)
    modules = []
    for package_name in _ENGINE_PACKAGES:
        package = importlib.import_module(package_name)
        modules.append(package)
        modules += [importlib.import_module(info.name)
                    for info in pkgutil.walk_packages(package.__path__, f"{package_name}.")]
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                other = by_tag.setdefault(value.__name__, value)
                if other is not value:
                    raise RuntimeError(f"two classes of the engine's state are called {value.__name__} "
                                       f"({other.__module__}, {value.__module__}): the state codec names "
                                       "classes by name, so one of them needs another")
    return by_tag, {cls: tag for tag, cls in by_tag.items()}


@functools.cache
def _zone_id(key: str) -> str:
    # One string object per zone, so that the pickle's memo writes it once per state.
    return f"zone:{key}"


_NOT_STATE = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.MethodWrapperType,
              types.ModuleType, type(Ellipsis), type(NotImplemented))
"""What pickle would write as a module path and the reader refuses: refused when written."""


class _Writer(pickle.Pickler):
    def persistent_id(self, obj: Any) -> str | None:
        kind = type(obj)
        if kind is ZoneInfo:
            return _zone_id(obj.key)
        if isinstance(obj, _NOT_STATE):
            raise pickle.PicklingError(f"{obj!r} is not part of the engine's state (streams/state_codec.py): "
                                       "stored state holds data, not functions")
        if not isinstance(obj, type):
            return None
        tag = _registry()[1].get(obj)
        if tag is None:
            raise pickle.PicklingError(f"{obj.__module__}.{obj.__qualname__} is not part of the engine's state "
                                       "(streams/state_codec.py): define it in alerts/ or models/")
        return tag


class _Reader(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, str):
            if pid.startswith("zone:"):
                return ZoneInfo(pid[5:])
            found = _registry()[0].get(pid)
            if found is not None:
                return found
        raise UnsafeState(f"stored state names {pid!r}, which is not part of the engine's state")

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafeState(f"stored state names {module}.{name}, which is not part of the engine's state")


class _FormatZeroReader(pickle.Unpickler):
    """Format 0: module paths, each checked against the registry."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_BEFORE_ONE_PACKAGE):
            module = f"permitwatch.{module}"
        if module == "builtins" and name == "getattr":
            return _zoneinfo_getattr
        if module == "zoneinfo" and name == "ZoneInfo":
            return ZoneInfo
        found = _registry()[0].get(name)
        if found is not None and found.__module__ == module:
            return found
        raise UnsafeState(f"state pickle names {module}.{name}, which is not part of the engine's state")


def _zoneinfo_getattr(owner: object, name: str) -> Any:
    # A format-0 ZoneInfo is getattr(ZoneInfo, "_unpickle")(key, from_cache); no other use of
    # getattr is let through, since it reaches any attribute of anything.
    if owner is ZoneInfo and name == "_unpickle":
        return ZoneInfo._unpickle
    raise UnsafeState(f"state pickle asks for attribute {name!r} of {owner!r}")


def dumps(value: object) -> bytes:
    out = io.BytesIO()
    out.write(MAGIC)
    _Writer(out, protocol=5).dump(value)
    return out.getvalue()


def loads(data: bytes | memoryview) -> Any:
    """Read stored state of format 1 or 0; `UnsafeState` if it names anything else."""
    view = memoryview(data)
    if view[:len(MAGIC)] == MAGIC:
        return _Reader(io.BytesIO(view[len(MAGIC):])).load()
    return _FormatZeroReader(io.BytesIO(view)).load()
