"""Bearer tokens: creation, hashing, lookup and revocation.

Tokens are 256 random bits (`secrets.token_urlsafe(32)`) behind a `lvm_` prefix. Only their
SHA-256 is stored. A slow password hash (bcrypt, argon2) exists to make guessing low-entropy
secrets expensive; guessing a 256-bit random token is already infeasible, so a fast hash loses
nothing and lets each request find its token with one indexed equality lookup on `token_hash`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_schema.enums import UserRole
from livermore_schema.tables import ApiToken, User

TOKEN_PREFIX = "lvm_"
"""Marks a string as a Livermore token (helps secret scanners and humans)."""

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""`api_tokens.last_used_at` is written at most this often per token."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    user_id: int
    username: str
    role: UserRole
    token_id: int

    @property
    def is_admin(self) -> bool:
        """Return whether the caller may do everything."""
        return self.role is UserRole.ADMIN


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly created token; `token` is shown once and never stored."""

    token_id: int
    user_id: int
    token: str


def new_token() -> str:
    """Return a fresh random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the stored form of a token (hex SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(session: AsyncSession, user_id: int, name: str) -> IssuedToken:
    """Create a token for `user_id` (the caller commits)."""
    token = new_token()
    row = ApiToken(user_id=user_id, name=name, token_hash=hash_token(token))
    session.add(row)
    await session.flush()
    assert row.id is not None
    return IssuedToken(token_id=row.id, user_id=user_id, token=token)


async def revoke_token(session: AsyncSession, token_id: int) -> bool | None:
    """Revoke a token; return True if revoked now, False if it already was, None if unknown."""
    row = await session.get(ApiToken, token_id)
    if row is None:
        return None
    if row.revoked_at is not None:
        return False
    row.revoked_at = datetime.now(UTC)
    await session.flush()
    return True


async def authenticate(session: AsyncSession, token: str, now: datetime) -> Principal | None:
    """Return the principal owning an active token, or None (unknown, revoked, inactive user)."""
    found = (
        await session.exec(
            select(ApiToken, User)
            .join(User, col(User.id) == col(ApiToken.user_id))
            .where(col(ApiToken.token_hash) == hash_token(token))
        )
    ).first()
    if found is None:
        return None
    api_token, user = found
    if api_token.revoked_at is not None or not user.is_active:
        return None
    assert api_token.id is not None and user.id is not None
    last = api_token.last_used_at
    if last is None or now - last >= LAST_USED_RESOLUTION:
        await session.exec(
            update(ApiToken).where(col(ApiToken.id) == api_token.id).values(last_used_at=now)
        )
        await session.commit()
    return Principal(
        user_id=user.id, username=user.username, role=UserRole(user.role), token_id=api_token.id
    )


async def valid_token_ids(session: AsyncSession, token_ids: Iterable[int]) -> set[int]:
    """Return which of `token_ids` are still usable (not revoked, their user active)."""
    rows = await session.exec(
        select(col(ApiToken.id))
        .join(User, col(User.id) == col(ApiToken.user_id))
        .where(
            col(ApiToken.id).in_(list(token_ids)),
            col(ApiToken.revoked_at).is_(None),
            col(User.is_active),
        )
    )
    return {token_id for token_id in rows.all() if token_id is not None}
