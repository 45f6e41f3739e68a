"""Admin routes: users and their tokens."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func
from sqlmodel import col, select

from livermore_api.auth import issue_token, revoke_token
from livermore_api.errors import ConflictError, NotFoundError
from livermore_api.models import PageQuery, TokenCreate, TokenPath, UserCreate, UserPath
from livermore_api.resources import IssuedTokenOut, TokenOut, UserCreated, UserOut
from livermore_api.routing import body_of, json_response, path_of, query_of
from livermore_api.users import UserExistsError, create_user
from livermore_api.views.common import session
from livermore_schema.enums import UserRole
from livermore_schema.tables import ApiToken, User


def user_out(user: User) -> UserOut:
    """Serialise a user."""
    assert user.id is not None
    return UserOut(
        id=user.id,
        username=user.username,
        email=user.email,
        role=UserRole(user.role),
        is_active=user.is_active,
        created_at=user.created_at,
    )


async def list_users(request: web.Request) -> web.StreamResponse:
    """List users."""
    page = query_of(request, PageQuery)
    async with session(request) as db:
        total = (await db.exec(select(func.count()).select_from(User))).one()
        rows = await db.exec(
            select(User).order_by(col(User.id)).limit(page.limit).offset(page.offset)
        )
        items = [user_out(u).model_dump(mode="json") for u in rows.all()]
    return json_response(
        {"items": items, "total": total, "limit": page.limit, "offset": page.offset}
    )


async def add_user(request: web.Request) -> web.StreamResponse:
    """Create a user; the response holds their first token, shown only this once."""
    body = body_of(request, UserCreate)
    async with session(request) as db:
        try:
            user, issued = await create_user(db, body.username, body.email, admin=body.admin)
        except UserExistsError as err:
            raise ConflictError(str(err), code="user_exists") from None
    token = IssuedTokenOut(token_id=issued.token_id, user_id=issued.user_id, token=issued.token)
    return json_response(UserCreated(user=user_out(user), token=token), status=201)


async def _existing_user(request: web.Request) -> int:
    user_id = path_of(request, UserPath).user_id
    async with session(request) as db:
        if await db.get(User, user_id) is None:
            raise NotFoundError(f"no user {user_id}", code="user_not_found")
    return user_id


async def list_tokens(request: web.Request) -> web.StreamResponse:
    """List a user's tokens (metadata only)."""
    user_id = await _existing_user(request)
    async with session(request) as db:
        rows = await db.exec(
            select(ApiToken).where(col(ApiToken.user_id) == user_id).order_by(col(ApiToken.id))
        )
        items = [
            TokenOut.model_validate(t, from_attributes=True).model_dump(mode="json")
            for t in rows.all()
        ]
    return json_response({"items": items})


async def add_token(request: web.Request) -> web.StreamResponse:
    """Issue a new token for a user; shown only in this response."""
    user_id = await _existing_user(request)
    body = body_of(request, TokenCreate)
    async with session(request) as db:
        issued = await issue_token(db, user_id, body.name)
        await db.commit()
    out = IssuedTokenOut(token_id=issued.token_id, user_id=issued.user_id, token=issued.token)
    return json_response(out, status=201)


async def delete_token(request: web.Request) -> web.StreamResponse:
    """Revoke a token; revoking twice is a 409."""
    token_id = path_of(request, TokenPath).token_id
    async with session(request) as db:
        revoked = await revoke_token(db, token_id)
        await db.commit()
    if revoked is None:
        raise NotFoundError(f"no token {token_id}", code="token_not_found")
    if not revoked:
        raise ConflictError(f"token {token_id} is already revoked", code="already_revoked")
    return web.Response(status=204)
