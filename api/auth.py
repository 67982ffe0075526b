"""Bearer tokens with roles. Only SHA-256 digests of tokens are kept; a request's token is hashed
and compared in constant time.

Roles: `operator` (read alerts, cases, referrals; acknowledge, assign, dismiss, exempt), `ingest`
(post events), `admin` (everything, and uploading catalog and calendar files)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from pathlib import Path
from typing import Annotated, Literal

import orjson
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from permitwatch.models.errors import InvalidInput
from permitwatch.models.files import load_structured

log = logging.getLogger("permitwatch.auth")

Role = Literal["operator", "ingest", "admin"]


class TokenEntry(BaseModel):
    name: str = Field(description="Who holds the token (shown in the audit trail)")
    roles: list[Role]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token")


class TokenFile(BaseModel):
    tokens: list[TokenEntry]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(name: str, roles: list[Role]) -> tuple[str, TokenEntry]:
    """A fresh random token and the entry that stores it hashed."""
    token = "pw_" + secrets.token_urlsafe(24)
    return token, TokenEntry(name=name, roles=roles, sha256=digest(token))


def write_token_file(path: Path, entries: list[TokenEntry]) -> None:
    """The token file, readable by its owner only, replaced whole (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(orjson.dumps(TokenFile(tokens=entries).model_dump(), option=orjson.OPT_INDENT_2) + b"\n")
    partial.chmod(0o600)
    partial.replace(path)


def add_token(path: Path, entry: TokenEntry) -> None:
    """`entry` added to the token file at `path` (made when missing)."""
    entries = load_structured(path, TokenFile).tokens if path.exists() else []
    write_token_file(path, [*entries, entry])


class Principal(BaseModel):
    name: str
    roles: list[Role]

    def has(self, role: Role) -> bool:
        return role in self.roles or "admin" in self.roles


class Authenticator:
    """The tokens of a token file, read again when the file changes: a token added or removed
    (`permitwatch token --tokens-file`) counts from the next request, not from the next restart
    (in a Kubernetes Secret, once the kubelet has updated the mounted file: up to about a minute)."""

    def __init__(self, entries: list[TokenEntry], path: Path | None = None):
        self.entries = entries
        self.path = path
        self._read_as = self._stamp()

    @classmethod
    def from_file(cls, path: Path) -> Authenticator:
        authenticator = cls([], path)  # stamped before it reads: a change in between is read again
        authenticator.entries = load_structured(path, TokenFile).tokens
        return authenticator

    def _stamp(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            found = self.path.stat()
        except OSError:
            return None
        return found.st_ino, found.st_mtime_ns, found.st_size

    def _current(self) -> list[TokenEntry]:
        stamp = self._stamp()
        if stamp != self._read_as:
            self._read_as = stamp
            try:
                self.entries = load_structured(self.path, TokenFile).tokens
                log.info("token file %s read again: %s tokens", self.path, len(self.entries))
            except (InvalidInput, OSError) as exc:
                # Half-written by a hand, or gone: the tokens read before stay until it is whole again.
                log.error("token file %s could not be read again (%s); the %s tokens read before stay in force",
                          self.path, exc, len(self.entries))
        return self.entries

    def identify(self, token: str) -> Principal | None:
        candidate = digest(token)
        found = None
        for entry in self._current():
            if hmac.compare_digest(candidate, entry.sha256):
                found = entry
        return Principal(name=found.name, roles=found.roles) if found else None


BEARER = HTTPBearer(auto_error=False, description="A token from `permitwatch token` (or shown once at the first "
                    "start): roles operator, ingest, admin")


async def _principal(request: Request,
                     _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None) -> Principal:
    # async (its only I/O is the token file's stat): FastAPI runs a plain `def` dependency in its
    # thread pool, two thread hops on every request for a hash and a comparison. `BEARER` only
    # declares the scheme in the OpenAPI description; the header is read here, with this API's own
    # 401 answers.
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = request.app.state.services.auth.identify(token.strip())
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked token",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


def requires(role: Role):
    """A dependency that admits a principal holding `role` (or admin)."""

    async def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not principal.has(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"token '{principal.name}' lacks the '{role}' role this endpoint needs")
        return principal

    return check
