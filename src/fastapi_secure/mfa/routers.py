"""HTTP routes of the second factors, over :class:`~fastapi_secure.mfa.factors.SecondFactors`.

* :func:`mfa_router`: a signed-in user manages their factors:
  ``GET {me}/mfa`` (what is set up), ``POST {me}/mfa/totp`` (start enrolment:
  secret, ``otpauth://`` URI, QR code as SVG), ``POST {me}/mfa/totp/confirm``
  (first code; answers the recovery codes), ``DELETE {me}/mfa/totp``,
  ``POST {me}/mfa/recovery-codes`` (a new set), ``POST
  {me}/passkeys/register/options`` and ``/register/verify``, ``GET
  {me}/passkeys``, ``PATCH {me}/passkeys/{id}`` (rename), ``DELETE {me}/passkeys/{id}``.
* :func:`mfa_login_router`: the second step of a login and passkey sign-in:
  ``POST {auth}/mfa/verify`` (``mfa_token`` with a ``code`` or a
  ``recovery_code``), ``POST {auth}/passkey/options`` and ``/passkey/verify``
  (passwordless, or a second factor when the body carries an ``mfa_token``).
  They answer the token pair through the transport, like ``/auth/login``, and
  are marked public for :mod:`fastapi_secure.audit` (they authenticate by what
  the body carries).
* :func:`require_step_up`: a dependency for sensitive routes: a fresh login,
  and for an account with a second factor, one made with it within ``max_age``
  (``401 mfa_required`` otherwise, with the RFC 9470 challenge).

Adding or removing a factor and a new set of recovery codes need the step-up;
confirming an enrolment and registering a passkey need only the session
(each finishes a ceremony the step-up started). Answers that show a secret
(the TOTP secret, recovery codes) are sent with ``Cache-Control: no-store``.
Every route lists each status it can answer in OpenAPI.
"""

# No ``from __future__ import annotations``: FastAPI must resolve the Annotated
# dependency aliases built inside the router factories at runtime.
import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from fastapi_secure._routing import answering, client_address, documented_responses, not_found
from fastapi_secure.accounts.manager import AccountManager
from fastapi_secure.accounts.routers import ErrorOut
from fastapi_secure.audit import AuditInfo, mark_public
from fastapi_secure.auth.base import ClaimsDependency, refuse
from fastapi_secure.auth.guards import ClaimsGuard, FreshnessChecker, MFAChecker
from fastapi_secure.auth.transport import Transport
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.dpop.http import DPoPAuth
from fastapi_secure.errors import AuthenticationError, ErrorCode, SecurityError
from fastapi_secure.http_errors import http_exception
from fastapi_secure.mfa.errors import InvalidOTPError
from fastapi_secure.mfa.factors import (
    MAX_PASSKEY_NAME,
    PASSKEY_NAME_PATTERN,
    FactorCheck,
    SecondFactors,
)
from fastapi_secure.mfa.passkeys import PasskeyCredential, PasskeyOptions
from fastapi_secure.tokens.claims import AccessClaims

__all__ = [
    "MFAStatusOut",
    "PasskeyOut",
    "RecoveryCodesOut",
    "StepUpGuard",
    "TOTPEnrolmentOut",
    "mfa_login_router",
    "mfa_router",
    "require_step_up",
]

_DESCRIPTIONS = {
    400: "Malformed body (not JSON), or a wrong code while confirming an enrolment",
    401: "Not authenticated; a refused code, recovery code, passkey or MFA token; "
    "or a step-up is required (mfa_required / fresh_token_required)",
    403: "Not allowed (CSRF or Origin check)",
    404: "No such factor or passkey among the caller's",
    409: "Not possible with the account's second factors as they are",
    422: "Request validation failed",
    429: "Too many attempts; see Retry-After",
    503: "A backing store is unavailable; see Retry-After",
}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return documented_responses(_DESCRIPTIONS, ErrorOut, *codes)


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# -- the step-up -----------------------------------------------------------------


class StepUpGuard(ClaimsGuard):
    """Made by :func:`require_step_up`: fresh, and with MFA when the account has a factor."""

    def __init__(
        self,
        auth: ClaimsDependency,
        factors: SecondFactors,
        *,
        max_age: float,
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(auth)
        self.factors = factors
        self.max_age = max_age
        self._fresh = FreshnessChecker(auth, max_age=max_age, clock=clock)
        self._mfa = MFAChecker(auth, max_age=max_age, clock=clock)

    def allowed(self, claims: AccessClaims) -> bool:  # pragma: no cover - authenticate decides
        return False

    async def authenticate(
        self, request: HTTPConnection, scopes: Sequence[str] = ()
    ) -> AccessClaims:
        claims = await self.auth.authenticate(request, scopes)
        if claims is None:
            refuse(AuthenticationError(reason="no credentials"))
        try:
            if await self.factors.enrolled(claims.sub):
                self._mfa.check(claims)
            else:
                self._fresh.check(claims)
        except SecurityError as exc:
            refuse(exc)
        return claims

    def audit_info(self) -> AuditInfo:
        """For :mod:`fastapi_secure.audit`: a fresh-login requirement over ``auth``."""
        return AuditInfo(fresh=True, wraps=(self.auth,))

    def __repr__(self) -> str:
        return f"StepUpGuard(max_age={self.max_age!r})"


def require_step_up(
    auth: ClaimsDependency,
    factors: SecondFactors,
    *,
    max_age: float = 300,
    clock: Clock = system_clock,
) -> StepUpGuard:
    """A dependency for sensitive routes (password change, removing a factor, API keys).

    An account without a second factor needs a fresh login (``require_fresh``)
    within ``max_age`` seconds; an account with one needs a login made with
    it (``amr`` holds ``mfa``) within ``max_age`` (``require_mfa``). Either
    refusal is a 401 with the RFC 9470 ``insufficient_user_authentication``
    challenge; the code says which (``fresh_token_required`` or ``mfa_required``).
    """
    return StepUpGuard(auth, factors, max_age=max_age, clock=clock)


# -- bodies ----------------------------------------------------------------------


class TOTPEnrolmentOut(BaseModel):
    """Shown once: type the secret, open the URI, or scan the QR code (SVG)."""

    secret: str
    otpauth_uri: str
    qr_svg: str


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)


class RecoveryCodesOut(BaseModel):
    """Shown once; each code works once. A new set voids this one."""

    recovery_codes: list[str]


class MFAStatusOut(BaseModel):
    methods: list[str] = Field(description="What the second step of a login accepts")
    totp: bool = Field(description="A TOTP authenticator is set up (confirmed)")
    totp_pending: bool = Field(description="A TOTP enrolment waits for its first code")
    totp_last_used_at: datetime | None = Field(
        description="When the TOTP authenticator last gave an accepted code"
    )
    passkeys: int = Field(description="How many passkeys the account has")
    recovery_codes_remaining: int


class PasskeyOut(BaseModel):
    id: str
    name: str
    created_at: datetime | None
    last_used_at: datetime | None
    transports: list[str]
    synced: bool


class PasskeyCreatedOut(BaseModel):
    passkey: PasskeyOut
    recovery_codes: list[str] = Field(
        description="Recovery codes when this passkey is the account's first second factor"
    )


class PasskeyRenameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=MAX_PASSKEY_NAME,
        pattern=PASSKEY_NAME_PATTERN,
        description="Trimmed; not only spaces; no control, zero-width or bidi characters",
    )


class PasskeyOptionsOut(BaseModel):
    """``publicKey`` goes to ``navigator.credentials.create()`` / ``.get()``
    (``PublicKeyCredential.parseCreationOptionsFromJSON`` / ``parseRequestOptionsFromJSON``)."""

    model_config = ConfigDict(populate_by_name=True)

    public_key: dict[str, Any] = Field(alias="publicKey")
    expires_in: int


class PasskeyRegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: dict[str, Any] = Field(description="The JSON of navigator.credentials.create()")
    name: str = Field(default="", max_length=64)


class PasskeyOptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mfa_token: str | None = Field(default=None, min_length=1, max_length=128)


class PasskeyVerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: dict[str, Any] = Field(description="The JSON of navigator.credentials.get()")
    mfa_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The second step of a password login; omit for a passwordless sign-in",
    )


class MFACodeIn(BaseModel):
    """The second step with a TOTP code."""

    model_config = ConfigDict(extra="forbid")

    mfa_token: str = Field(min_length=1, max_length=128)
    code: str = Field(min_length=1, max_length=64)


class MFARecoveryCodeIn(BaseModel):
    """The second step with a recovery code."""

    model_config = ConfigDict(extra="forbid")

    mfa_token: str = Field(min_length=1, max_length=128)
    recovery_code: str = Field(min_length=1, max_length=128)


def _options_out(options: PasskeyOptions) -> PasskeyOptionsOut:
    return PasskeyOptionsOut(public_key=options.public_key, expires_in=int(options.expires_in))


def _passkey_out(credential: PasskeyCredential) -> PasskeyOut:
    return PasskeyOut(
        id=credential.id_b64,
        name=credential.name,
        created_at=_moment(credential.created_at or None),
        last_used_at=_moment(credential.last_used_at),
        transports=list(credential.transports),
        synced=credential.backed_up,
    )


CredentialId = Annotated[str, Path(min_length=1, max_length=1400, pattern=r"^[A-Za-z0-9_-]+$")]


def _credential_id(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


_OTHER_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def _allow_only(router: APIRouter, path: str, allowed: Sequence[str], auth: Any) -> None:
    """Answer other methods on ``path`` with a 405 whose ``Allow`` names every route's.

    Starlette answers a 405 with the methods of the first route whose path
    matched, so two routes on one path (POST and DELETE) would each deny the
    other in ``Allow``. Authenticated like the routes themselves.
    """
    methods = [method for method in _OTHER_METHODS if method not in allowed]

    async def method_not_allowed() -> NoReturn:
        raise HTTPException(
            status.HTTP_405_METHOD_NOT_ALLOWED,
            detail={"code": ErrorCode.METHOD_NOT_ALLOWED.value, "message": "Method Not Allowed"},
            headers={"Allow": ", ".join(sorted(allowed))},
        )

    router.add_api_route(
        path,
        method_not_allowed,
        methods=methods,
        include_in_schema=False,
        response_model=None,
        dependencies=[Depends(auth)],
    )


AccountLabel = Callable[[str], Awaitable[str]]
"""``async def label(user_id) -> str``: the account's name in authenticator apps."""


async def _user_id_label(user_id: str) -> str:
    return user_id


# -- routers ---------------------------------------------------------------------


def mfa_router(
    factors: SecondFactors,
    transport: Transport,
    *,
    step_up: ClaimsDependency | None = None,
    auth: ClaimsDependency | None = None,
    prefix: str = "/users/me",
    account_label: AccountLabel = _user_id_label,
    clock: Clock = system_clock,
    tags: Sequence[str] = ("mfa",),
) -> APIRouter:
    """The caller's second factors: TOTP, recovery codes and passkeys.

    ``step_up`` guards adding and removing factors and new recovery codes
    (default: :func:`require_step_up` over ``transport``, 5 minutes).
    ``account_label`` names the account in authenticator apps (an email).
    ``auth`` authenticates the caller instead of ``transport`` (a
    :class:`~fastapi_secure.dpop.DPoPAuth` where DPoP is required).
    """
    router = APIRouter(prefix=prefix, tags=list(tags))
    session: Any = auth if auth is not None else transport
    guard = step_up if step_up is not None else require_step_up(session, factors, clock=clock)
    Claims = Annotated[AccessClaims, Depends(session)]  # noqa: N806
    StepUp = Annotated[AccessClaims, Depends(guard)]  # noqa: N806

    @router.get("/mfa", responses=_responses(401, 503))
    async def mfa_status(claims: Claims) -> MFAStatusOut:
        """Which second factors the caller has."""
        with answering():
            methods = await factors.methods(claims.sub)
            totp = await factors.store.get_totp(claims.sub)
            passkeys = await factors.list_passkeys(claims.sub) if factors.passkeys else []
            remaining = await factors.store.remaining(claims.sub)
        return MFAStatusOut(
            methods=list(methods),
            totp=totp is not None and totp.confirmed,
            totp_pending=totp is not None and not totp.confirmed,
            totp_last_used_at=_moment(totp.last_used_at) if totp and totp.confirmed else None,
            passkeys=len(passkeys),
            recovery_codes_remaining=remaining,
        )

    @router.post(
        "/mfa/totp",
        status_code=status.HTTP_201_CREATED,
        responses=_responses(401, 403, 409, 503),
    )
    async def begin_totp(claims: StepUp, response: Response) -> TOTPEnrolmentOut:
        """Start TOTP enrolment: the secret, its ``otpauth://`` URI and a QR code (SVG).

        Nothing changes at login until ``/mfa/totp/confirm`` gets a first valid code.
        """
        with answering():
            enrolment = await factors.begin_totp(claims.sub, await account_label(claims.sub))
        _no_store(response)
        return TOTPEnrolmentOut(
            secret=enrolment.secret.get_secret_value(),
            otpauth_uri=enrolment.uri.get_secret_value(),
            qr_svg=enrolment.qr_svg,
        )

    @router.post("/mfa/totp/confirm", responses=_responses(400, 401, 403, 409, 422, 429, 503))
    async def confirm_totp(claims: Claims, body: CodeIn, response: Response) -> RecoveryCodesOut:
        """Finish enrolment with a first code: TOTP is on; the answer holds recovery codes."""
        try:
            codes = await factors.confirm_totp(claims.sub, body.code)
        except InvalidOTPError:
            # The caller is signed in: a wrong code here is a bad request, not a 401.
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail={"code": ErrorCode.BAD_REQUEST.value, "message": "invalid code"},
            ) from None
        except SecurityError as error:
            raise http_exception(error) from None
        _no_store(response)
        return RecoveryCodesOut(recovery_codes=codes)

    @router.delete(
        "/mfa/totp",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_responses(401, 403, 404, 503),
    )
    async def remove_totp(claims: StepUp) -> None:
        """Remove TOTP (a recent login with a second factor is required)."""
        with answering():
            removed = await factors.remove_totp(claims.sub)
        if not removed:
            not_found("TOTP authenticator")

    @router.post("/mfa/recovery-codes", responses=_responses(401, 403, 409, 503))
    async def new_recovery_codes(claims: StepUp, response: Response) -> RecoveryCodesOut:
        """A new set of recovery codes; the old set stops working."""
        with answering():
            codes = await factors.new_recovery_codes(claims.sub)
        _no_store(response)
        return RecoveryCodesOut(recovery_codes=codes)

    _allow_only(router, "/mfa/totp", ["DELETE", "POST"], session)
    if factors.passkeys is None:
        return router

    @router.post("/passkeys/register/options", responses=_responses(401, 403, 503))
    async def passkey_registration_options(claims: StepUp) -> PasskeyOptionsOut:
        """Options for ``navigator.credentials.create()``, valid once, for a few minutes."""
        with answering():
            options = await factors.passkey_registration_options(
                claims.sub, await account_label(claims.sub)
            )
        return _options_out(options)

    @router.post(
        "/passkeys/register/verify",
        status_code=status.HTTP_201_CREATED,
        responses=_responses(400, 401, 403, 409, 422, 503),
    )
    async def register_passkey(
        claims: Claims, body: PasskeyRegisterIn, response: Response
    ) -> PasskeyCreatedOut:
        """Store the new passkey from the browser's answer."""
        with answering():
            credential, codes = await factors.register_passkey(
                claims.sub, body.credential, name=body.name
            )
        if codes:
            _no_store(response)
        return PasskeyCreatedOut(passkey=_passkey_out(credential), recovery_codes=codes)

    @router.get("/passkeys", responses=_responses(401, 503))
    async def list_passkeys(claims: Claims) -> list[PasskeyOut]:
        """The caller's passkeys, oldest first."""
        with answering():
            found = await factors.list_passkeys(claims.sub)
        return [_passkey_out(credential) for credential in found]

    @router.patch("/passkeys/{credential_id}", responses=_responses(400, 401, 403, 404, 422, 503))
    async def rename_passkey(
        claims: Claims, credential_id: CredentialId, body: PasskeyRenameIn
    ) -> PasskeyOut:
        """Rename one of the caller's passkeys (the name is trimmed)."""
        raw = _credential_id(credential_id)
        try:
            with answering():
                renamed = (
                    None
                    if raw is None
                    else await factors.rename_passkey(claims.sub, raw, body.name)
                )
        except ValueError:  # pragma: no cover - the body's pattern refuses these first
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                detail={"code": ErrorCode.VALIDATION_FAILED.value, "message": "invalid name"},
            ) from None
        if renamed is None:
            not_found("passkey")
        return _passkey_out(renamed)

    @router.delete(
        "/passkeys/{credential_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_responses(401, 403, 404, 422, 503),
    )
    async def delete_passkey(claims: StepUp, credential_id: CredentialId) -> None:
        """Remove one of the caller's passkeys (a recent login with a second factor)."""
        raw = _credential_id(credential_id)
        with answering():
            removed = raw is not None and await factors.delete_passkey(claims.sub, raw)
        if not removed:
            not_found("passkey")

    _allow_only(router, "/passkeys/{credential_id}", ["DELETE", "PATCH"], session)
    return router


def mfa_login_router(
    manager: AccountManager,
    transport: Transport,
    *,
    prefix: str = "/auth",
    tags: Sequence[str] = ("auth",),
    trusted_proxies: TrustedProxies | None = None,
    dpop: DPoPAuth | None = None,
    dpop_required: bool = False,
) -> APIRouter:
    """The second step of a login, and passkey sign-in; answers as ``/auth/login`` does.

    ``dpop`` and ``dpop_required`` as for :func:`~fastapi_secure.accounts.routers.auth_router`
    (give both routers the same): a request with a ``DPoP`` proof gets tokens
    bound to the client's key.
    """
    if dpop_required and dpop is None:
        from fastapi_secure.errors import ConfigurationError

        raise ConfigurationError("dpop_required=True needs dpop=DPoPAuth(...)")
    factors = manager.mfa
    if factors is None:
        from fastapi_secure.errors import ConfigurationError

        raise ConfigurationError("mfa_login_router needs an AccountManager with mfa=")
    router = APIRouter(prefix=prefix, tags=list(tags))
    address = client_address(trusted_proxies)
    check_origin: Callable[[Request], None] | None = getattr(transport, "check_origin", None)

    def login_csrf(request: Request) -> None:
        # As /login: a cookie transport must not sign a browser into another's account.
        if check_origin is not None and (
            "origin" in request.headers or "referer" in request.headers
        ):
            with answering():
                check_origin(request)

    async def proof_key(request: Request) -> str | None:
        return await dpop.check_login_proof(request, required=dpop_required) if dpop else None

    # Read by check_login_proof, so declared in OpenAPI only (a missing one stays a 401).
    proof_header = dpop.login_proof_openapi(required=dpop_required) if dpop else None

    @router.post(
        "/mfa/verify",
        responses=_responses(400, 401, 403, 422, 429, 503),
        openapi_extra=proof_header,
    )
    async def verify_mfa(
        request: Request, response: Response, body: MFACodeIn | MFARecoveryCodeIn
    ) -> dict[str, Any]:
        """The second step: the MFA token with a TOTP code or a recovery code; the tokens."""
        login_csrf(request)
        jkt = await proof_key(request)
        with answering():
            pair = await manager.complete_mfa(
                body.mfa_token,
                FactorCheck(code=body.code)
                if isinstance(body, MFACodeIn)
                else FactorCheck(recovery_code=body.recovery_code),
                user_agent=request.headers.get("user-agent"),
                client_address=address(request),
                dpop_jkt=jkt,
            )
        return transport.login_response(pair, response)

    mark_public(verify_mfa, "authenticated by the MFA token and the second factor")
    if factors.passkeys is None:
        return router

    @router.post("/passkey/options", responses=_responses(400, 401, 422, 503))
    async def passkey_options(body: PasskeyOptionsIn | None = None) -> PasskeyOptionsOut:
        """Options for ``navigator.credentials.get()``: passwordless (any passkey, user
        verification required), or with an ``mfa_token`` that account's passkeys."""
        with answering():
            if body is not None and body.mfa_token is not None:
                options = await factors.passkey_options_for(body.mfa_token)
            else:
                options = await factors.passwordless_options()
        return _options_out(options)

    @router.post(
        "/passkey/verify",
        responses=_responses(400, 401, 403, 422, 429, 503),
        openapi_extra=proof_header,
    )
    async def passkey_verify(
        request: Request, response: Response, body: PasskeyVerifyIn
    ) -> dict[str, Any]:
        """Sign in with a passkey assertion (with ``mfa_token``: as a second factor)."""
        login_csrf(request)
        jkt = await proof_key(request)
        with answering():
            if body.mfa_token is not None:
                pair = await manager.complete_mfa(
                    body.mfa_token,
                    FactorCheck(passkey=body.credential),
                    user_agent=request.headers.get("user-agent"),
                    client_address=address(request),
                    dpop_jkt=jkt,
                )
            else:
                pair = await manager.login_with_passkey(
                    body.credential,
                    user_agent=request.headers.get("user-agent"),
                    client_address=address(request),
                    dpop_jkt=jkt,
                )
        return transport.login_response(pair, response)

    mark_public(passkey_options, "a challenge for a sign-in; reveals no account")
    mark_public(passkey_verify, "authenticated by the passkey assertion")
    return router
