"""Reading reference files (JSON or YAML) into contract models with readable errors."""

from __future__ import annotations

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


def parse_structured(text: bytes, model: type[M], source: str) -> M:
    """Parse JSON, or YAML when the text is not JSON, into `model`."""
    text = without_bom(text)
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            data = yaml.safe_load(text)
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
