"""API keys: stored hashed, each with a role; agent keys are bound to one agent.

Keys are 256-bit random tokens, so a single SHA-256 is enough to store them safely (a slow
password hash protects low-entropy secrets, which these are not) and lets us look them up by hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import String, Uuid, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from omniroute.shared.db import Base, UTCDateTime
from omniroute.shared.errors import Forbidden, Unauthorized
from omniroute.shared.events import utcnow

KEY_PREFIX = "omr_"


class Role(StrEnum):
    INGEST = "ingest"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    key_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None

    def can_act_for(self, agent_id: uuid.UUID) -> bool:
        """Agents act only for themselves; supervisors and admins for anyone."""
        if self.role in (Role.SUPERVISOR, Role.ADMIN):
            return True
        return self.role is Role.AGENT and self.agent_id == agent_id


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(
    session: AsyncSession,
    role: Role,
    *,
    agent_id: uuid.UUID | None = None,
    name: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its clear text, which is shown once and never stored."""
    if role is Role.AGENT and agent_id is None:
        raise ValueError("an agent key must be bound to an agent")
    clear = generate_key()
    row = ApiKey(key_hash=hash_key(clear), role=role.value, agent_id=agent_id, name=name)
    session.add(row)
    await session.flush()
    return row, clear


class KeyStore:
    """Verifies bearer keys against the database, with a short cache for the hot path.

    When a key's cache entry expires under load, every request in flight with that key would
    look it up at once (a gateway serves dozens at a time, usually with one integration's
    key): the first starts one lookup and the others wait for it.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        admin_key: str | None,
        cache_seconds: float = 30.0,
    ) -> None:
        self._sessions = sessions
        self._admin_hash = hash_key(admin_key) if admin_key else None
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lookups: dict[str, asyncio.Task[Principal | None]] = {}

    async def verify(self, key: str) -> Principal | None:
        digest = hash_key(key)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(role=Role.ADMIN)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up(digest))
            self._lookups[digest] = lookup
            lookup.add_done_callback(lambda done: self._forget(digest, done))
        # Shielded: a caller that gives up (a client gone) does not cancel the others' lookup.
        return await asyncio.shield(lookup)

    async def _look_up(self, digest: str) -> Principal | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            )
        principal = (
            Principal(role=Role(row.role), key_id=row.id, agent_id=row.agent_id) if row else None
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + self._cache_seconds, principal)
        return principal

    def _forget(self, digest: str, lookup: asyncio.Task[Principal | None]) -> None:
        self._lookups.pop(digest, None)
        # A failure every waiter gave up on is not "never retrieved".
        if not lookup.cancelled():
            lookup.exception()


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized()
    return token.strip()


async def current_principal(request: Request) -> Principal:
    store: KeyStore = request.app.state.key_store
    principal = await store.verify(_bearer(request))
    if principal is None:
        raise Unauthorized()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def _admit(principal: Principal, allowed: frozenset[Role]) -> Principal:
    if principal.role not in allowed:
        raise Forbidden(f"this needs one of the roles: {', '.join(sorted(allowed))}")
    return principal


async def authenticate(request: Request, *roles: Role) -> Principal:
    """The caller's principal if its role is one of `roles` (admin is always admitted).

    The same check as `require_roles`, called from the endpoint itself: for hot routes that
    skip FastAPI's per-request dependency resolution (the gateway's ingestion routes).
    """
    return _admit(await current_principal(request), frozenset((*roles, Role.ADMIN)))


def require_roles(*roles: Role) -> object:
    """A dependency that admits only the given roles (admin is always admitted)."""
    allowed = frozenset((*roles, Role.ADMIN))

    async def dependency(principal: CurrentPrincipal) -> Principal:
        return _admit(principal, allowed)

    return Depends(dependency)
