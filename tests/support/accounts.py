"""Shared helpers of the account tests: an application-owned user model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastapi_secure.accounts.action_tokens import ActionTokens, ActionTokenStore
from fastapi_secure.accounts.hooks import AccountHooks
from fastapi_secure.accounts.lockout import Lockout
from fastapi_secure.accounts.mail import LinkBuilder, MailMessage, MemoryOutbox
from fastapi_secure.accounts.manager import AccountManager, user_grant_loader
from fastapi_secure.accounts.routers import account_router, auth_router, sessions_router
from fastapi_secure.accounts.sqlalchemy import SQLAlchemyIdentityMixin, SQLAlchemyUserMixin
from fastapi_secure.accounts.users import MemoryUserStore, UserStore
from fastapi_secure.auth.bearer import BearerAuth
from fastapi_secure.auth.cookie import CookieAuth
from fastapi_secure.db import Database
from fastapi_secure.dpop import DPoPAuth, DPoPVerifier
from fastapi_secure.passwords.hasher import PasswordHasher
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.issuer import TokenIssuer
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.base import TokenStore
from fastapi_secure.tokens.stores.memory import MemoryTokenStore


class Base(DeclarativeBase):
    pass


class AppUser(SQLAlchemyUserMixin, Base):
    """A model the application owns: its table, its key, an extra column."""

    __tablename__ = "app_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(sa.String(80), default="")


class AppIdentity(SQLAlchemyIdentityMixin, Base):
    """The application's table of identities linked to its users."""

    __tablename__ = "app_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("app_users.id", ondelete="CASCADE"), index=True
    )


@asynccontextmanager
async def sql_database(url: str, *, create: bool = True) -> AsyncIterator[Database]:
    """A Database at ``url`` (holding the AppUser table when ``create``), disposed afterwards."""
    db = Database(url)
    try:
        if create:
            async with db.engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
        yield db
    finally:
        await db.dispose()


# -- a small app on the account routers ------------------------------------------------

SECRET = "accounts-router-test-secret-of-32-bytes+"
ORIGIN = "https://testserver"


@dataclass
class AccountsApp:
    """Everything a router test touches, built on one fake clock."""

    app: FastAPI
    manager: AccountManager
    users: UserStore
    issuer: TokenIssuer
    outbox: MemoryOutbox
    hooks: AccountHooks
    clock: FakeClock
    transport: BearerAuth | CookieAuth


def build_accounts_app(
    clock: FakeClock,
    *,
    mode: str = "bearer",
    reveal_existing: bool = True,
    require_verified_email: bool = False,
    store: TokenStore | None = None,
    lockout: Lockout | None = None,
    users: UserStore | None = None,
    action_store: ActionTokenStore | None = None,
    dpop: str = "off",
) -> AccountsApp:
    """``dpop``: ``"off"``, ``"optional"`` (a proof binds) or ``"required"``."""
    users = users if users is not None else MemoryUserStore(clock=clock)
    issuer = TokenIssuer(
        KeySet.from_secret(SECRET, kid="k1"),
        store if store is not None else MemoryTokenStore(clock=clock),
        issuer=ORIGIN,
        audience=ORIGIN,
        clock=clock,
        grant_loader=user_grant_loader(users),
    )
    transport: BearerAuth | CookieAuth
    if mode == "bearer":
        transport = BearerAuth(issuer, token_url="/auth/login")
    else:
        transport = CookieAuth(issuer, csrf_secret=SECRET, allowed_origins=[ORIGIN])
    outbox = MemoryOutbox()
    hooks = AccountHooks(clock=clock)
    manager = AccountManager(
        users,
        issuer,
        PasswordHasher.insecure_fast_for_tests(),
        mail=outbox,
        links=LinkBuilder("https://app.example.io"),
        hooks=hooks,
        lockout=lockout or Lockout(hooks=hooks, clock=clock),
        action_tokens=ActionTokens(users, action_store, clock=clock),
        require_verified_email=require_verified_email,
    )
    app = FastAPI()
    dpop_auth = None
    if dpop != "off":
        dpop_auth = DPoPAuth(issuer, DPoPVerifier(clock=clock), public_url=ORIGIN)
    app.include_router(
        auth_router(manager, transport, dpop=dpop_auth, dpop_required=dpop == "required")
    )
    # Where DPoP is required, every route that takes an access token takes DPoP.
    auth = dpop_auth if dpop == "required" else None
    app.include_router(
        account_router(manager, transport, reveal_existing=reveal_existing, auth=auth)
    )
    app.include_router(sessions_router(manager, transport, auth=auth))
    return AccountsApp(app, manager, users, issuer, outbox, hooks, clock, transport)


def token_from(message: MailMessage) -> str:
    """The ``token`` query parameter of a mailed link."""
    assert message.link is not None
    return parse_qs(urlsplit(message.link).query)["token"][0]
