"""Reading reference files (JSON or YAML) into contract models with readable errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import orjson
import yaml
from pydantic import BaseModel, ValidationError

from permitwatch.models.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


class ReferenceFileError(InvalidInput):
    """A reference file (catalog, calendar, settings) that cannot be used, and why."""


def describe_validation_error(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}" for err in exc.errors(include_url=False)
    )


BOM = b"\xef\xbb\xbf"


def without_bom(data: bytes) -> bytes:
    """Text editors on Windows start UTF-8 files with a byte-order mark, which JSON parsers refuse."""
    return data[3:] if data.startswith(BOM) else data


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without YAML 1.1's odd numbers: there an unquoted 010 is eight (octal),
    5_0 fifty, 1:30 ninety and 0x5 five (a catalog's limit of 010 working days was eight). Here a
    number is decimal digits with no leading zero, or with a point for a fraction; anything else
    stays text, which the models refuse where they want a number and take where they want a code
    (009 stays the text it was)."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, re.compile(
    r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
_Loader.add_constructor(_INT, lambda loader, node: int(loader.construct_scalar(node)))


def parse_structured(text: bytes, model: type[M], source: str) -> M:
    """Parse JSON, or YAML when the text is not JSON, into `model`."""
    text = without_bom(text)
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise ReferenceFileError(f"{source}: neither valid JSON nor valid YAML ({exc})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ReferenceFileError(f"{source}: {describe_validation_error(exc)}") from None


def load_structured(path: str | Path, model: type[M]) -> M:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ReferenceFileError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_structured(text, model, str(path))
