"""Request bodies as inputs: POST /events takes one CloudEvent, a JSON batch (an array) or NDJSON,
and makes of it the runtime's `RawInput`s, each with its original bytes and where it came from."""

from __future__ import annotations

import orjson

from permitwatch.models.errors import InvalidInput
from permitwatch.streams.port import RawInput


class UnreadableBody(InvalidInput):
    """The body is not what its content type says (not JSON, not an array): no input is in it."""

    http_status = 400


def lines_of(body: bytes, origin: str) -> list[RawInput]:
    """NDJSON: one input per non-blank line, keeping each line's original bytes."""
    return [RawInput(f"{origin}:{n}", line.rstrip(b"\r"))
            for n, line in enumerate(body.split(b"\n"), start=1) if line.strip()]


def batch_of(body: bytes, origin: str) -> list[RawInput]:
    """A CloudEvents JSON batch (an array): each element re-serialised (the array's bytes cannot be
    split without a second parse; the element's content is kept exactly)."""
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnreadableBody(f"not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise UnreadableBody("a CloudEvents batch must be a JSON array")
    inputs = []
    for n, item in enumerate(items):
        try:
            inputs.append(RawInput(f"{origin}[{n}]", orjson.dumps(item)))
        except TypeError as exc:  # nested deeper than orjson writes (254 levels): no event is
            raise UnreadableBody(f"element {n} of the batch nests too deeply to be kept ({exc})") from None
    return inputs
