"""Creating users and their tokens (shared by the CLI and the admin routes)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_api.auth import IssuedToken, issue_token
from livermore_schema.enums import UserRole
from livermore_schema.tables import User


class UserExistsError(Exception):
    """The username or email is taken; choose another."""


async def create_user(
    session: AsyncSession, username: str, email: str | None, *, admin: bool
) -> tuple[User, IssuedToken]:
    """Create a user with a first token and commit; raise `UserExistsError` on a clash."""
    user = User(
        username=username,
        email=email or f"{username}@localhost",
        role=(UserRole.ADMIN if admin else UserRole.USER).value,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise UserExistsError(f"username {username!r} or its email is already taken") from None
    assert user.id is not None
    issued = await issue_token(session, user.id, "initial")
    await session.commit()
    return user, issued


async def find_user(session: AsyncSession, username: str) -> User | None:
    """Return the user named `username`, or None."""
    query = select(User).where(col(User.username) == username)
    return (await session.exec(query)).one_or_none()
