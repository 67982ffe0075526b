"""The codec of the engine's stored state (Kafka table values, the embedded checkpoint, retired
cases): what the state is made of, written so that moving a class does not change the stored
bytes, and read so that nothing outside the state's own types can be reached.

Format 2 (`MAGIC` then a pickle stream, protocol 5): objects are pickle's own opcodes (str, int,
float, bytes, tuple, list, dict, set, frozenset, None, bool), and every class of ours is written
as an extension code (pickle's EXT opcodes, `copyreg.add_extension`), never a module path. The
code is derived from the class's tag, its own name (the engine's classes in `alerts` and
`models`, the Kafka stages' stored records, the retired-case store; names are unique there,
checked when the registry is built). The standard library's types the state holds (`datetime`,
`Decimal`, `ZoneInfo`, …) are written by their module paths, which do not move. Pickle writes
and reads the codes in C, which is what makes this format about twice as fast to write as format
1, whose hook Python called for every object. Writing an object of a class that is not
registered, or a function, fails loudly instead of writing a module path (an object whose own
reduction names a global by string would still be written so, and refused when read: the state
has none). Reading resolves a code or a global in the registry only: a stream that names any
other global is refused with `UnsafeState` before anything is called.

What reading still allows a forged stream (so the tables and the checkpoint must be writable by
the workers and the monitor only: Kafka ACLs, file permissions): calling a registered class with
arguments of its choosing, and setting attributes on a registered class object (pickle's BUILD
on a class), which lasts for the process. Closing that needs the writer to emit constructor
tokens instead of classes and the reader to hand out sealed constructors.

Formats 1 (classes as persistent ids: tags, and `zone:KEY` for a time zone) and 0 (plain pickles
naming module paths, before 2026-11-30) are still read, with the classes they name checked
against the same registry; they are never written.
"""

from __future__ import annotations

import collections
import copyreg
import datetime as dt
import decimal
import functools
import importlib
import io
import pickle
import pkgutil
import sys
import threading
import types
import zlib
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pydantic_core import TzInfo

from permitwatch.models.errors import CorruptState

MAGIC = b"PWS\x02"
"""Format 2: the stored state's first bytes."""
_FORMAT_ONE = b"PWS\x01"

_ENGINE_PACKAGES = ("permitwatch.alerts", "permitwatch.models")
_RUNTIME_CLASSES = {"permitwatch.streams.kafka.stages": ("StoredItem", "StoredCase", "CityHeader"),
                    "permitwatch.streams.retired": ("CompactCases",)}
"""The runtimes' own stored records (their modules define other classes, not stored)."""
_STANDARD: tuple[type, ...] = (
    dt.date, dt.datetime, dt.time, dt.timedelta, dt.timezone, decimal.Decimal, TzInfo, ZoneInfo,
    collections.Counter, collections.OrderedDict, collections.defaultdict, collections.deque,
    set, frozenset, list, dict, tuple, str, int, float, bool, bytes,
)
_BEFORE_ONE_PACKAGE = ("alerts.", "models.", "streams.")
"""Module names in format-0 pickles written before the packages moved under `permitwatch`."""


class UnsafeState(CorruptState):
    """Stored state that names something the engine's state is not made of."""


class _Registry(NamedTuple):
    by_tag: dict[str, type]
    by_class: dict[type, str]
    by_path: dict[tuple[str, str], type]
    """(module, qualified name) → class: what pickle asks the reader for."""


@functools.cache
def _registry() -> _Registry:
    """Everything the state may be made of, each of our classes registered under its tag's
    extension code. Built on first use (the modules it reads import this one), under a lock: the
    embedded runtime encodes from several threads."""
    with _building:
        return _build_registry()


_building = threading.Lock()


def _build_registry() -> _Registry:
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
    _register_codes(by_tag)
    return _Registry(by_tag, {cls: tag for tag, cls in by_tag.items()},
                     {(cls.__module__, cls.__qualname__): cls for cls in by_tag.values()})


_CODES_FROM = 0x1000_0000
_registered: dict[int, tuple[str, str]] = {}


def _code(tag: str) -> int:
    """A tag's extension code: the same in every process and release."""
    return _CODES_FROM + zlib.crc32(tag.encode()) % (0x7FFF_FFFF - _CODES_FROM)


def _register_codes(by_tag: dict[str, type]) -> None:
    """Our classes under their codes, in copyreg's registry, which is the process's: the standard
    library's types keep their module paths (they do not move, and other pickles in the process
    stay as the rest of Python expects). Only what changed is touched, so that a second build
    never leaves a moment where a class has no code."""
    wanted: dict[int, tuple[str, str]] = {}
    for tag, cls in by_tag.items():
        if cls.__module__ in sys.stdlib_module_names:
            continue
        code = _code(tag)
        if code in wanted:
            raise RuntimeError(f"the tags {tag} and {wanted[code][1]} have the same extension code: "
                               "one of the classes needs another name")
        wanted[code] = (cls.__module__, cls.__qualname__)
    stale = {code: key for code, key in _registered.items() if wanted.get(code) != key}
    for code, (module, name) in stale.items():
        copyreg.remove_extension(module, name, code)
        del _registered[code]
    if stale:
        copyreg.clear_extension_cache()
    for code, (module, name) in wanted.items():
        copyreg.add_extension(module, name, code)
        _registered[code] = (module, name)


_NOT_STATE = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.MethodWrapperType,
              types.ModuleType, type(Ellipsis), type(NotImplemented))
"""What pickle would write as a module path and the reader refuses: refused when written."""


def _zone(zone: ZoneInfo) -> tuple[type, tuple[str]]:
    # ZoneInfo's own reduction goes through getattr(ZoneInfo, "_unpickle").
    return ZoneInfo, (zone.key,)


class _Writer(pickle.Pickler):
    dispatch_table = {ZoneInfo: _zone}

    def __init__(self, out: io.BytesIO, registry: _Registry):
        super().__init__(out, protocol=5)
        self.allowed = registry.by_class

    def reducer_override(self, obj: Any) -> Any:
        # Called in C for every object but pickle's own types (and those it has written before),
        # so once per class and per instance of a class.
        cls = obj if isinstance(obj, type) else type(obj)
        if cls not in self.allowed:
            if isinstance(obj, _NOT_STATE):
                raise pickle.PicklingError(f"{obj!r} is not part of the engine's state (streams/state_codec.py): "
                                           "stored state holds data, not functions")
            raise pickle.PicklingError(f"{cls.__module__}.{cls.__qualname__} is not part of the engine's state "
                                       "(streams/state_codec.py): define it in alerts/ or models/")
        return NotImplemented


class _TagReader(pickle.Unpickler):
    """Format 2: extension codes, each resolved here the first time a process reads it."""

    refusal = "stored state names"

    def find_class(self, module: str, name: str) -> Any:
        found = _registry().by_path.get((module, name))
        if found is None:
            raise UnsafeState(f"{self.refusal} {module}.{name}, which is not part of the engine's state")
        return found


class _FormatOneReader(pickle.Unpickler):
    """Format 1: classes as persistent ids, by tag."""

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, str):
            if pid.startswith("zone:"):
                return ZoneInfo(pid[5:])
            found = _registry().by_tag.get(pid)
            if found is not None:
                return found
        raise UnsafeState(f"stored state names {pid!r}, which is not part of the engine's state")

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafeState(f"stored state names {module}.{name}, which is not part of the engine's state")


class _FormatZeroReader(_TagReader):
    """Format 0: module paths, each checked against the registry."""

    refusal = "state pickle names"

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_BEFORE_ONE_PACKAGE):
            module = f"permitwatch.{module}"
        if module == "builtins" and name == "getattr":
            return _zoneinfo_getattr
        return super().find_class(module, name)


def _zoneinfo_getattr(owner: object, name: str) -> Any:
    # A format-0 ZoneInfo is getattr(ZoneInfo, "_unpickle")(key, from_cache); no other use of
    # getattr is let through, since it reaches any attribute of anything.
    if owner is ZoneInfo and name == "_unpickle":
        return ZoneInfo._unpickle
    raise UnsafeState(f"state pickle asks for attribute {name!r} of {owner!r}")


def dumps(value: object) -> bytes:
    out = io.BytesIO()
    out.write(MAGIC)
    _Writer(out, _registry()).dump(value)
    return out.getvalue()


def loads(data: bytes | memoryview) -> Any:
    """Read stored state of format 2, 1 or 0; `UnsafeState` if it names anything else."""
    view = memoryview(data)
    head = view[:len(MAGIC)]
    if head == MAGIC:
        _registry()
        try:
            return _TagReader(io.BytesIO(view[len(MAGIC):])).load()
        except ValueError as exc:
            if "extension code" in str(exc):  # pickle's only word for a code nobody registered
                raise UnsafeState(f"stored state names {exc}, which is not part of the engine's state") from None
            raise
    if head == _FORMAT_ONE:
        return _FormatOneReader(io.BytesIO(view[len(MAGIC):])).load()
    return _FormatZeroReader(io.BytesIO(view)).load()
