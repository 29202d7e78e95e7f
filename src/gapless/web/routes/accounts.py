"""Signing in and out, one's own password, sessions and API tokens, and (site admins,
account owners) accounts, users and members. Thin: parse, call `accounts`, answer.

Sign-in is limited per email and per client address (`limits`, shared through
Redis when scaled out) and answered 429 with `Retry-After` while limited, even
for the right password. The session cookie is `Secure` when the request came
over https (or a trusted proxy says so with `X-Forwarded-Proto`) or the public
URL is https. Imports `accounts`, `limits`, `errors`, `web.*`.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gapless.db.accounts import Caller
from gapless.errors import RateLimitedError, UnauthorizedError
from gapless.limits import Attempts
from gapless.web.auth import COOKIE, SECURE_COOKIE, session_secret
from gapless.web.deps import AccountsDep, CallerDep

router = APIRouter(prefix="/api", tags=["accounts"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SignIn(Strict):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)


class PasswordChange(Strict):
    current: str = Field(max_length=1000)
    new: str = Field(max_length=1000)


class NewToken(Strict):
    name: str = Field(min_length=1, max_length=200)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)


class NewAccount(Strict):
    name: str = Field(min_length=1, max_length=200)


class NewMember(Strict):
    email: str = Field(min_length=3, max_length=320)
    name: str = Field(default="", max_length=200)
    role: Literal["owner", "member"] = "member"
    password: str | None = Field(default=None, max_length=1000)


class RoleChange(Strict):
    role: Literal["owner", "member"]


class Invitation(Strict):
    secret: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class User(BaseModel):
    id: str
    email: str
    name: str
    site_admin: bool
    accounts: list[str]


class Session(BaseModel):
    user: User
    csrf_token: str


class Token(BaseModel):
    id: str
    name: str
    kind: str
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None


class SessionItem(Token):
    current: bool


class NewTokenMade(Token):
    token: str = Field(description="The secret, shown this once.")


class Tokens(BaseModel):
    tokens: list[Token]


class Sessions(BaseModel):
    sessions: list[SessionItem]


class Account(BaseModel):
    id: str
    name: str
    role: str | None = None
    created_at: str | None = None


class Accounts_(BaseModel):
    accounts: list[Account]


class Member(BaseModel):
    id: str
    email: str
    name: str
    role: str


class Members(BaseModel):
    members: list[Member]


class Added(BaseModel):
    id: str
    email: str
    role: str
    invite: str | None = Field(description="An invitation secret for /invite#<secret>, if new")


class UserItem(BaseModel):
    id: str
    email: str
    name: str
    site_admin: bool
    has_password: bool
    created_at: str | None


class Users(BaseModel):
    users: list[UserItem]


def secure(request: Request) -> bool:
    """Over https as the browser sees it: the request's scheme (uvicorn applies a trusted
    proxy's `X-Forwarded-Proto`, from `FORWARDED_ALLOW_IPS`), or an https public URL."""
    public: str = request.app.state.runtime.settings.public_url
    return request.url.scheme == "https" or public.startswith("https://")


def signed_in(request: Request, secret: str, caller: Caller, ttl: float) -> JSONResponse:
    response = JSONResponse({"user": caller.json(), "csrf_token": caller.csrf})
    https = secure(request)
    response.set_cookie(
        SECURE_COOKIE if https else COOKIE,
        secret,
        httponly=True,
        samesite="lax",
        max_age=int(ttl),
        secure=https,
        path="/",
    )
    return response


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/session",
    response_model=Session,
    responses={401: {"description": "Wrong email or password."}},
    openapi_extra={"security": []},
)
async def sign_in(body: SignIn, request: Request, accounts: AccountsDep) -> JSONResponse:
    attempts: Attempts = request.app.state.attempts
    settings = request.app.state.runtime.settings
    email_key = "email:" + body.email.strip().lower()
    keys = [
        (email_key, settings.signin_attempts),
        ("addr:" + client_address(request), settings.signin_address_attempts),
    ]
    wait = await attempts.blocked(keys, time.time())
    if wait > 0:
        raise RateLimitedError(
            "too many failed sign-ins; try again later", code="signin_limited", retry_after=wait
        )
    try:
        secret, caller = await accounts.sign_in(
            body.email.strip(), body.password, request.headers.get("user-agent", "")
        )
    except UnauthorizedError:
        await attempts.failed([key for key, _ in keys], time.time())
        raise
    await attempts.clear(email_key)
    return signed_in(request, secret, caller, accounts.session_ttl.total_seconds())


@router.get("/session", response_model=Session)
async def session(caller: CallerDep) -> dict[str, Any]:
    return {"user": caller.json(), "csrf_token": caller.csrf}


@router.delete("/session", status_code=204)
async def sign_out(request: Request, caller: CallerDep, accounts: AccountsDep) -> Response:
    secret = session_secret(request)
    if not caller.session or not secret:
        raise UnauthorizedError("not signed in with a session")
    await accounts.sign_out(secret)
    response = Response(status_code=204)
    https = secure(request)
    name = SECURE_COOKIE if https else COOKIE
    response.delete_cookie(name, path="/", secure=https, httponly=True)
    return response


@router.post("/invites", response_model=Session, openapi_extra={"security": []})
async def accept_invite(body: Invitation, request: Request, accounts: AccountsDep) -> JSONResponse:
    secret, caller = await accounts.accept_invite(
        body.secret, body.password, request.headers.get("user-agent", "")
    )
    return signed_in(request, secret, caller, accounts.session_ttl.total_seconds())


@router.put("/me/password", status_code=204)
async def change_password(
    body: PasswordChange, caller: CallerDep, accounts: AccountsDep
) -> Response:
    await accounts.change_password(caller, body.current, body.new)
    return Response(status_code=204)


@router.get("/me/sessions", response_model=Sessions)
async def my_sessions(caller: CallerDep, accounts: AccountsDep) -> dict[str, Any]:
    return {"sessions": await accounts.sessions(caller)}


@router.delete("/me/sessions", status_code=204)
async def sign_out_everywhere(caller: CallerDep, accounts: AccountsDep) -> Response:
    await accounts.end_sessions(caller)
    return Response(status_code=204)


@router.delete("/me/sessions/{session_id}", status_code=204)
async def end_session(session_id: str, caller: CallerDep, accounts: AccountsDep) -> Response:
    await accounts.end_sessions(caller, session_id)
    return Response(status_code=204)


@router.get("/me/tokens", response_model=Tokens)
async def my_tokens(caller: CallerDep, accounts: AccountsDep) -> dict[str, Any]:
    return {"tokens": await accounts.tokens(caller)}


@router.post("/me/tokens", status_code=201, response_model=NewTokenMade)
async def create_token(body: NewToken, caller: CallerDep, accounts: AccountsDep) -> dict[str, Any]:
    return await accounts.create_token(caller, body.name, body.expires_in_days)


@router.delete("/me/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: str, caller: CallerDep, accounts: AccountsDep) -> Response:
    await accounts.revoke_token(caller, token_id)
    return Response(status_code=204)


@router.get("/accounts", response_model=Accounts_)
async def list_accounts(caller: CallerDep, accounts: AccountsDep) -> dict[str, Any]:
    return {"accounts": await accounts.accounts(caller)}


@router.post("/accounts", status_code=201, response_model=Account)
async def create_account(body: NewAccount, caller: CallerDep, accounts: AccountsDep) -> Any:
    return await accounts.create_account(caller, body.name)


@router.get("/accounts/{account_id}/members", response_model=Members)
async def members(account_id: str, caller: CallerDep, accounts: AccountsDep) -> dict[str, Any]:
    return {"members": await accounts.members(caller, account_id)}


@router.post("/accounts/{account_id}/members", status_code=201, response_model=Added)
async def add_member(
    account_id: str, body: NewMember, caller: CallerDep, accounts: AccountsDep
) -> dict[str, Any]:
    return await accounts.invite(
        caller, account_id, body.email, name=body.name, role=body.role, password=body.password
    )


@router.patch("/accounts/{account_id}/members/{user_id}", status_code=204)
async def set_role(
    account_id: str, user_id: str, body: RoleChange, caller: CallerDep, accounts: AccountsDep
) -> Response:
    await accounts.set_role(caller, account_id, user_id, body.role)
    return Response(status_code=204)


@router.delete("/accounts/{account_id}/members/{user_id}", status_code=204)
async def remove_member(
    account_id: str, user_id: str, caller: CallerDep, accounts: AccountsDep
) -> Response:
    await accounts.remove(caller, account_id, user_id)
    return Response(status_code=204)


@router.get("/users", response_model=Users)
async def users(caller: CallerDep, accounts: AccountsDep) -> dict[str, Any]:
    return {"users": await accounts.users(caller)}


@router.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: str, caller: CallerDep, accounts: AccountsDep) -> Response:
    await accounts.delete_user(caller, user_id)
    return Response(status_code=204)

