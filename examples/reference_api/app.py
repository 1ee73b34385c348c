"""The reference API: every security decision is made by a fastapi-secure block.

``create_app()`` wires the blocks once, from :class:`AppSettings`:

* passwords: :class:`PasswordHasher` (argon2id, off the event loop) and
  :class:`PasswordPolicy` on the registration and password-change bodies;
* tokens: :class:`KeySet` (EdDSA, published at ``/.well-known/jwks.json``),
  :class:`TokenIssuer` with refresh rotation and reuse detection, on a
  :class:`MemoryTokenStore` or, with ``REDIS_URL``, a :class:`RedisTokenStore`;
* :class:`BearerAuth` (or :class:`CookieAuth` with CSRF), ``require_fresh`` and
  :class:`RoleChecker`;
* :class:`RateLimiter` per IP and per username on the login route, per user
  on password changes;
* :func:`install_secure_defaults`: secure headers, CORS, body size limit,
  error handlers, docs CSP;
* :class:`Database` sessions (SQLite by default, PostgreSQL with ``DATABASE_URL``).
"""

# No ``from __future__ import annotations``: FastAPI must resolve the Annotated
# dependency aliases built inside build_routers() at runtime.
import contextlib
import logging
import pathlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, EmailStr, Field, SecretStr
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import fastapi_secure
from fastapi_secure import (
    AccessClaims,
    AuthenticationError,
    BearerAuth,
    CookieAuth,
    Database,
    InvalidTokenError,
    KeySet,
    MemoryTokenStore,
    PasswordHasher,
    PasswordPolicy,
    RateLimiter,
    RequestRefusedError,
    RoleChecker,
    SecurityError,
    ServiceUnavailableError,
    TokenIssuer,
    TokenPair,
    install_secure_defaults,
    jwks_router,
    require_fresh,
)
from fastapi_secure.errors import ErrorCode
from fastapi_secure.ratelimit import by_subject
from fastapi_secure.tokens.claims import RefreshClaims
from fastapi_secure.tokens.issuer import Grant
from fastapi_secure.tokens.stores import TokenStore

from .models import Role, User
from .schemas import (
    CookieSession,
    ErrorOut,
    LogoutIn,
    Page,
    RefreshIn,
    RolesIn,
    Username,
    UserOut,
    ValidationErrorOut,
)
from .settings import AppSettings

logger = logging.getLogger("reference_api")

POLICY = PasswordPolicy()


RegisterPassword = Annotated[SecretStr, POLICY.with_context_fields("email", "username")]
NewPassword = Annotated[SecretStr, POLICY]
# The users.id column is a 32-bit INTEGER: a larger id must be a 422, not a driver overflow (500).
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed request body (not valid JSON)"},
    401: {"model": ErrorOut, "description": "Missing, invalid, expired or revoked token"},
    403: {"model": ErrorOut, "description": "Authenticated but not allowed"},
    404: {"model": ErrorOut, "description": "No such user"},
    409: {"model": ErrorOut, "description": "Conflict"},
    413: {"model": ErrorOut, "description": "Request body too large"},
    # Replaces FastAPI's default 422 schema, which is not what install_error_handlers sends.
    422: {"model": ValidationErrorOut, "description": "Request validation failed"},
    429: {"model": ErrorOut, "description": "Rate limited; see Retry-After"},
    503: {"model": ErrorOut, "description": "A backing service is unavailable"},
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: ERRORS[code] for code in codes}


class RegisterIn(BaseModel):
    email: EmailStr
    username: Username
    password: RegisterPassword


class PasswordChangeIn(BaseModel):
    # Not the policy: an old password that today's policy refuses must still be usable here.
    current_password: Annotated[SecretStr, Field(min_length=1, max_length=1024)]
    new_password: NewPassword


class ConflictError(RequestRefusedError):
    status = 409
    default_code = ErrorCode.CONFLICT
    default_message = "email or username already registered"


class BadCredentialsError(AuthenticationError):
    default_code = ErrorCode.INVALID_CREDENTIALS
    default_message = "incorrect username or password"


@dataclass
class Components:
    settings: AppSettings
    db: Database
    hasher: PasswordHasher
    keys: KeySet
    issuer: TokenIssuer
    limiter: RateLimiter
    auth: BearerAuth | CookieAuth
    cookie_auth: CookieAuth | None
    redis_ping: Callable[[], Awaitable[bool]] | None = None


def _make_keys(settings: AppSettings) -> KeySet:
    pem = settings.signing_key_pem
    if pem is not None:
        return KeySet.from_pem(pem.get_secret_value().encode())
    if settings.signing_key_file is not None:
        return KeySet.from_pem(pathlib.Path(settings.signing_key_file).read_bytes())
    logger.warning(
        "no SIGNING_KEY_PEM or SIGNING_KEY_FILE: using a fresh EdDSA key; tokens will not "
        "survive a restart and are not shared between worker processes"
    )
    return KeySet.generate("EdDSA")


def _make_hasher(settings: AppSettings) -> PasswordHasher:
    if settings.password_hash_profile == "test_only_fast":
        return PasswordHasher.insecure_fast_for_tests()
    if settings.password_hash_profile == "owasp_minimum":
        return PasswordHasher.owasp_minimum()
    return PasswordHasher.recommended()


def build_components(settings: AppSettings) -> Components:
    database_url = settings.database_url.get_secret_value() if settings.database_url else ""
    db = Database(database_url or "sqlite+aiosqlite:///./reference_api.db")
    hasher = _make_hasher(settings)
    keys = _make_keys(settings)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    redis_ping: Callable[[], Awaitable[bool]] | None = None
    if redis_url:
        from fastapi_secure.tokens.stores.redis import RedisTokenStore

        prefix = settings.redis_key_prefix
        redis_store = RedisTokenStore.from_url(redis_url, prefix=f"{prefix}tokens:")
        store: TokenStore = redis_store

        async def ping_redis() -> bool:
            try:
                with anyio.fail_after(1.0):
                    return bool(await redis_store.client.ping())
            except Exception:  # any failure means "unavailable"; health must not 500
                return False

        redis_ping = ping_redis

        limiter = RateLimiter(
            redis_url,
            strategy="moving-window",
            key_prefix=f"{prefix}limits",
            trusted_proxies=settings.trusted_proxies,
        )
    else:
        store = MemoryTokenStore()
        limiter = RateLimiter(
            "memory://", strategy="moving-window", trusted_proxies=settings.trusted_proxies
        )

    async def load_grant(claims: RefreshClaims) -> Grant | None:
        async with db.transaction() as session:
            user = await session.get(User, _user_id(claims.sub))
            if user is None or not user.is_active:
                return None
            # A login that checked the old password while it was being changed must
            # not outlive the change: its session started before the new password.
            if claims.auth_time < int(user.password_changed_at.timestamp()):
                return None
            return Grant(roles=user.role_names)

    issuer = TokenIssuer.from_settings(settings, keys, store, grant_loader=load_grant)
    cookie_auth: CookieAuth | None = None
    auth: BearerAuth | CookieAuth
    if settings.auth_transport == "cookie":
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        if secret is None:
            logger.warning(
                "no SECRET_KEY: using a random CSRF secret; CSRF tokens will not survive a "
                "restart and are not accepted by other worker processes"
            )
        cookie_auth = CookieAuth(
            issuer,
            csrf_secret=secret or secrets.token_urlsafe(32),
            allowed_origins=settings.cors_allow_origins or ["http://127.0.0.1:8000"],
            secure=settings.cookie_secure,
        )
        auth = cookie_auth
    else:
        auth = BearerAuth(issuer, token_url="/auth/login", refresh_url="/auth/refresh")
    return Components(settings, db, hasher, keys, issuer, limiter, auth, cookie_auth, redis_ping)


def _user_id(subject: str) -> int:
    # users.id is a 32-bit INTEGER; anything else is not one of our subjects.
    if not (subject.isascii() and subject.isdigit()) or len(subject) > 10:
        raise InvalidTokenError(reason="subject is not a user id")
    if int(subject) > 2**31 - 1:
        raise InvalidTokenError(reason="subject is not a user id")
    return int(subject)


def _plausible_login_name(name: str) -> bool:
    # No username or email holds a control character, and PostgreSQL refuses a NUL
    # in a text parameter with an error (a 500) instead of "no match".
    return 0 < len(name) <= 254 and name.isprintable()


def _login_condition(name: str) -> Any:
    # Emails are stored lower-cased (a CHECK constraint), so the unique index on
    # users.email serves this lookup; usernames have a unique index on lower().
    if "@" in name:
        return User.email == name.lower()
    return func.lower(User.username) == name.lower()


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        username=user.username,
        is_active=user.is_active,
        roles=user.role_names,
        created_at=user.created_at,
    )


def build_routers(c: Components) -> list[APIRouter]:
    db, issuer, auth, hasher = c.db, c.issuer, c.auth, c.hasher
    Session = Annotated[AsyncSession, db.depends()]
    Claims = Annotated[AccessClaims, Depends(auth)]
    admin_only = RoleChecker(["admin"], auth=auth)
    fresh_only = require_fresh(auth, max_age=300)

    login_by_ip = c.limiter.limit(c.settings.login_limits_per_ip, name="login-ip")

    async def login_account(request: Request) -> str | None:
        # One bucket per account, whether the form names it by username or by email
        # (a bucket per spelling would double an attacker's guesses). Unknown names
        # get a bucket of their own; a request that is no login form is left to the
        # endpoint, which refuses it.
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return None
        try:
            raw = (await request.form()).get("username")
        except Exception:  # a malformed body: FastAPI answers 400/422 for it
            return None
        name = raw.strip() if isinstance(raw, str) else ""
        if not _plausible_login_name(name):
            return None
        async with db.transaction() as lookup:
            user_id = (
                await lookup.execute(select(User.id).where(_login_condition(name)))
            ).scalar_one_or_none()
        return f"user:{user_id}" if user_id is not None else f"name:{name.casefold()}"

    login_by_username = c.limiter.limit(
        c.settings.login_limits_per_username, key=login_account, name="login-user"
    )
    register_by_ip = c.limiter.limit(c.settings.register_limits_per_ip, name="register-ip")
    refresh_by_ip = c.limiter.limit(c.settings.refresh_limits_per_ip, name="refresh-ip")
    # Each try of a current password is an argon2 verify, and a stolen fresh token
    # would otherwise allow unlimited guesses while it stays fresh.
    password_change_by_user = c.limiter.limit(
        c.settings.password_change_limits_per_user, key=by_subject(auth), name="password-user"
    )

    async def current_user(claims: Claims, session: Session) -> User:
        user = await session.get(User, _user_id(claims.sub))
        if user is None or not user.is_active:
            raise InvalidTokenError(reason="user gone or inactive")
        return user

    CurrentUser = Annotated[User, Depends(current_user)]

    def refuse_foreign_origin(request: Request) -> None:
        # Cookie mode: a route that sets the session cookies must not run for a
        # page of another site (login CSRF: the victim's browser would end up in
        # the attacker's account). Browsers send Origin on every POST, "null" from
        # sandboxed or privacy-stripped pages; a client that sends neither Origin
        # nor Referer is not a browser page, and its cookies are its own.
        if c.cookie_auth is not None and (
            "origin" in request.headers or "referer" in request.headers
        ):
            c.cookie_auth.check_origin(request)

    # Cookie mode answers with CookieSession: after an XSS a script could otherwise
    # read the refresh token from the body that HttpOnly keeps out of its reach.
    TokensOut: Any = CookieSession if c.cookie_auth is not None else TokenPair
    # CookieAuth answers 403 csrf_failed on unsafe methods without a matching CSRF token.
    csrf: tuple[int, ...] = (403,) if c.cookie_auth is not None else ()

    async def respond_with_tokens(
        response: Response, tokens: TokenPair
    ) -> TokenPair | CookieSession:
        if c.cookie_auth is None:
            return tokens
        csrf_token = c.cookie_auth.set_cookies(response, tokens)
        return CookieSession(
            csrf_token=csrf_token,
            expires_in=tokens.expires_in,
            refresh_expires_in=tokens.refresh_expires_in,
        )

    auth_router = APIRouter(prefix="/auth", tags=["auth"])

    @auth_router.post(
        "/register",
        status_code=status.HTTP_201_CREATED,
        response_model=UserOut,
        dependencies=[Depends(register_by_ip)],
        responses=responses(400, 409, 413, 422, 429, 503),
    )
    async def register(body: RegisterIn, session: Session) -> UserOut:
        password_hash = await hasher.ahash(body.password.get_secret_value())
        user = User(email=body.email.lower(), username=body.username, password_hash=password_hash)
        session.add(user)
        try:
            await session.flush()
        except IntegrityError:
            raise ConflictError() from None
        await session.refresh(user, ["roles"])
        return _user_out(user)

    @auth_router.post(
        "/login",
        response_model=TokensOut,
        dependencies=[Depends(login_by_ip), Depends(login_by_username)],
        responses=responses(400, 401, 413, 422, 429, 503, *csrf),
    )
    async def login(
        request: Request,
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
        session: Session,
        response: Response,
    ) -> TokenPair | CookieSession:
        refuse_foreign_origin(request)
        name = form.username.strip()
        if not _plausible_login_name(name) or len(form.password) > 1024:
            await hasher.adummy_verify()
            raise BadCredentialsError()
        user = (
            await session.execute(select(User).where(_login_condition(name)))
        ).scalar_one_or_none()
        if user is None:
            await hasher.adummy_verify(form.password)
            raise BadCredentialsError()
        valid, new_hash = await hasher.averify_and_update(form.password, user.password_hash)
        if not valid or not user.is_active:
            raise BadCredentialsError()
        if new_hash is not None:
            user.password_hash = new_hash
        user.last_login_at = _now()
        tokens = await issuer.issue(str(user.id), roles=user.role_names, fresh=True)
        return await respond_with_tokens(response, tokens)

    @auth_router.post(
        "/refresh",
        response_model=TokensOut,
        dependencies=[Depends(refresh_by_ip)],
        responses=responses(400, 401, 413, 422, 429, 503, *csrf),
    )
    async def refresh(
        request: Request, response: Response, body: RefreshIn | None = None
    ) -> TokenPair | CookieSession:
        token = body.refresh_token if body is not None else None
        if token is None and c.cookie_auth is not None:
            # The cookie travels with any same-site request: check who sent it.
            c.cookie_auth.check_origin(request)
            token = c.cookie_auth.refresh_token(request)
        if not token:
            raise InvalidTokenError(reason="no refresh token")
        tokens = await issuer.rotate(token)
        return await respond_with_tokens(response, tokens)

    @auth_router.post(
        "/logout",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=responses(400, 401, 413, 422, 503, *csrf),
    )
    async def logout(claims: Claims, response: Response, body: LogoutIn | None = None) -> None:
        await issuer.revoke_family(claims.sid)
        if body is not None and body.refresh_token:
            # An already unusable refresh token still lets the logout succeed.
            with contextlib.suppress(InvalidTokenError):
                await issuer.revoke(body.refresh_token)
        if c.cookie_auth is not None:
            c.cookie_auth.clear_cookies(response)

    @auth_router.post(
        "/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 503, *csrf)
    )
    async def logout_all(claims: Claims, response: Response) -> None:
        await issuer.revoke_subject(claims.sub)
        if c.cookie_auth is not None:
            c.cookie_auth.clear_cookies(response)

    users_router = APIRouter(prefix="/users", tags=["users"])

    @users_router.get("/me", response_model=UserOut, responses=responses(401, 503))
    async def me(user: CurrentUser) -> UserOut:
        return _user_out(user)

    @users_router.patch(
        "/me/password",
        response_model=TokensOut,
        dependencies=[Depends(password_change_by_user)],
        responses=responses(400, 401, 413, 422, 429, 503, *csrf),
    )
    async def change_password(
        body: PasswordChangeIn,
        claims: Annotated[AccessClaims, Depends(fresh_only)],
        session: Session,
        response: Response,
    ) -> TokenPair | CookieSession:
        user = await session.get(User, _user_id(claims.sub))
        if user is None or not user.is_active:
            raise InvalidTokenError(reason="user gone or inactive")
        # The body model cannot see the account: the context words registration
        # refuses (username, email) are checked here, with the same 422.
        problems = POLICY.check(body.new_password, context=[user.email, user.username])
        if problems:
            raise RequestValidationError(
                [
                    {
                        "type": "weak_password",
                        "loc": ("body", "new_password"),
                        "msg": "; ".join(problems),
                        "input": None,
                    }
                ]
            )
        if not await hasher.averify(body.current_password.get_secret_value(), user.password_hash):
            raise BadCredentialsError("current password is incorrect")
        user.password_hash = await hasher.ahash(body.new_password.get_secret_value())
        user.password_changed_at = _now()
        # Every other session (and this token) stops working; this client gets a new pair.
        await issuer.revoke_subject(claims.sub)
        tokens = await issuer.issue(str(user.id), roles=user.role_names, fresh=True)
        return await respond_with_tokens(response, tokens)

    admin_router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin_only)])

    @admin_router.get(
        "/users", response_model=Page[UserOut], responses=responses(401, 403, 422, 503)
    )
    async def list_users(
        session: Session,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Page[UserOut]:
        total = (await session.execute(select(func.count()).select_from(User))).scalar_one()
        rows = await session.execute(select(User).order_by(User.id).offset(offset).limit(limit))
        items = [_user_out(user) for user in rows.scalars()]
        return Page[UserOut](items=items, total=total, offset=offset, limit=limit)

    async def _target(session: AsyncSession, user_id: int) -> User:
        user = await session.get(User, user_id)
        if user is None:
            raise HTTPException(status_code=404, detail="user not found")
        return user

    @admin_router.post(
        "/users/{user_id}/roles",
        response_model=UserOut,
        responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def grant_roles(user_id: UserId, body: RolesIn, session: Session) -> UserOut:
        user = await _target(session, user_id)
        for name in sorted(set(body.roles) - set(user.role_names)):
            role = (
                await session.execute(select(Role).where(Role.name == name))
            ).scalar_one_or_none()
            if role is None:
                role = Role(name=name)
                session.add(role)
            user.roles.append(role)
        try:
            await session.flush()
        except IntegrityError:
            # Two admins created the same new role at once: one of them answers 409.
            raise ConflictError("the roles changed concurrently; try again") from None
        # Role changes reach the user's tokens at their next refresh (grant loader).
        return _user_out(user)

    @admin_router.post(
        "/users/{user_id}/deactivate",
        response_model=UserOut,
        responses=responses(401, 403, 404, 409, 422, 503),
    )
    async def deactivate(user_id: UserId, session: Session, claims: Claims) -> UserOut:
        if str(user_id) == claims.sub:
            # An admin deactivating themselves could leave nobody able to administer.
            raise ConflictError("you cannot deactivate your own account")
        user = await _target(session, user_id)
        user.is_active = False
        await session.flush()
        await issuer.revoke_subject(str(user.id))
        return _user_out(user)

    meta_router = APIRouter(tags=["meta"])

    @meta_router.get("/health", responses=responses(503))
    async def health() -> dict[str, str]:
        checks = {"database": "ok" if await db.is_available() else "unavailable"}
        if c.redis_ping is not None:
            checks["redis"] = "ok" if await c.redis_ping() else "unavailable"
        if any(value != "ok" for value in checks.values()):
            raise ServiceUnavailableError(reason=str(checks))
        return {"status": "ok", **checks}

    return [auth_router, users_router, admin_router, meta_router, jwks_router(c.keys)]


def _now() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def create_app(
    settings: AppSettings | None = None, *, components: Components | None = None
) -> FastAPI:
    settings = settings or AppSettings()
    c = components or build_components(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await c.db.check()
        await bootstrap_admin(c)
        try:
            yield
        finally:
            await c.limiter.aclose()
            await c.issuer.store.aclose()
            await c.db.dispose()

    docs = settings.docs_enabled
    app = FastAPI(
        title="fastapi-secure reference API",
        version=fastapi_secure.__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    for router in build_routers(c):
        app.include_router(router)
    install_secure_defaults(app, settings=settings, max_body_bytes=settings.max_body_bytes)
    app.state.components = c
    return app


async def bootstrap_admin(c: Components) -> bool:
    """Create the first admin from ADMIN_EMAIL / ADMIN_PASSWORD when no admin exists.

    Returns whether a user was created.
    """
    s = c.settings
    if not s.admin_email or s.admin_password is None:
        return False
    POLICY.validate(s.admin_password, context=[s.admin_email, s.admin_username])
    try:
        async with c.db.transaction() as session:
            admin_role = (
                await session.execute(select(Role).where(Role.name == "admin"))
            ).scalar_one_or_none()
            if admin_role is not None:
                holders = await session.execute(
                    select(func.count()).select_from(User).where(User.roles.contains(admin_role))
                )
                if holders.scalar_one() > 0:
                    return False
            else:
                admin_role = Role(name="admin")
                session.add(admin_role)
            password_hash = await c.hasher.ahash(s.admin_password.get_secret_value())
            user = User(
                email=s.admin_email.lower(),
                username=s.admin_username,
                password_hash=password_hash,
            )
            user.roles.append(admin_role)
            session.add(user)
    except IntegrityError:
        # Worker processes start together on a fresh database: the one that loses the
        # race to create the role or the user finds the other's admin and starts anyway.
        logger.warning(
            "first admin not created: another process created it at the same time, "
            "or the admin email or username is already taken"
        )
        return False
    logger.info("created the first admin user %r", s.admin_username)
    return True


__all__ = ["Components", "SecurityError", "build_components", "build_routers", "create_app"]
