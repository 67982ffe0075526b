"""The errors permitwatch raises on purpose, under one root.

Each says in its message what is wrong and what to do. Its class says who can fix it, and so how
a face answers it: the HTTP API with `http_status` (one exception handler, `api/app.py`), the
command line with `exit_status` (`api/cli`): 2 for whatever the user can act on, 70 for stored
state that cannot be read. An exception outside this tree is a bug: the API answers 500 and logs
it, the command line shows the traceback.
"""

from __future__ import annotations

from typing import ClassVar


class PermitwatchError(Exception):
    http_status: ClassVar[int] = 500
    exit_status: ClassVar[int] = 2


class InvalidInput(PermitwatchError):
    """What the caller gave is wrong: an event, a file, a body, a flag."""

    http_status = 422


class NotFound(PermitwatchError):
    """The record asked for does not exist."""

    http_status = 404


class Refused(PermitwatchError):
    """Valid, but not in the present state: a conflicting duplicate, history sent to a running
    monitor or into a deployment that has run."""

    http_status = 409


class Unavailable(PermitwatchError):
    """The store or the broker cannot take it now (a full disk, Kafka unreachable): retry."""

    http_status = 503


class Misconfigured(PermitwatchError):
    """The deployment cannot run as configured: topics, directories, ports, settings."""


class CorruptState(PermitwatchError):
    """Stored state cannot be read: forged, damaged, or of a format this version does not read."""

    exit_status = 70
