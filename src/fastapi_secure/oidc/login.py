"""Sign in with an OpenID provider: authorization code flow with PKCE (S256).

The OAuth protocol (authorization URL, PKCE challenge, the code exchange with
client authentication, OAuth error answers) is Authlib's
``AsyncOAuth2Client``. The ID token is checked with the provider's
:class:`~fastapi_secure.oidc.remote.RemoteKeySet` (pinned algorithm per key,
bounded and throttled fetches: the same path as the resource server) and the
claim rules of OpenID Connect Core 1.0, section 3.1.3.7: ``iss`` exactly the
provider's, ``aud`` containing our client id (and ``azp`` equal to it when
present or when there are several audiences), ``nonce`` equal to ours,
``exp`` in the future, ``iat`` neither in the future nor older than
``max_id_token_age``.

Browser binding: ``/login`` sets one short-lived cookie (``__Host-`` prefix,
HttpOnly, Secure, ``SameSite=Lax`` because the callback is a top-level
cross-site GET from the provider) holding the ``state``, ``nonce``, PKCE
verifier and ``next`` path under an HMAC; ``/callback`` accepts only the
``state`` of that cookie and clears it, so a callback URL planted in another
browser (login CSRF) or replayed fails.

Redirect URIs come from configuration only, never from the request; ``next``
must be a path on this site (:func:`safe_next_path`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from fastapi_secure._optional import require
from fastapi_secure.accounts.routers import ErrorOut
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError, InvalidTokenError, RequestRefusedError
from fastapi_secure.http_errors import http_exception
from fastapi_secure.oidc.errors import OIDCLoginError, ProviderUnavailableError
from fastapi_secure.oidc.linking import OIDCIdentity
from fastapi_secure.oidc.remote import FetchError, RemoteKeySet, check_provider_url, fetch_json

__all__ = [
    "IdentityCallback",
    "OIDCLogin",
    "OIDCProvider",
    "oidc_router",
    "providers_from_json",
    "safe_next_path",
]

logger = logging.getLogger("fastapi_secure.oidc")

_PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_STATE_CONTEXT = b"fastapi-secure/oidc-state/v1"
_MAX_NEXT = 2048
_MAX_PARAM = 2048
_MAX_SUB = 255  # OpenID Connect Core 1.0, section 2
_MIN_SECRET_BYTES = 32

IdentityCallback = Callable[[OIDCIdentity, Request], Awaitable[Any]]
"""``async on_identity(identity, request)``: sign the user in and answer.

Return a ``Response`` (e.g. after issuing tokens through a transport), a
JSON-able value, or None to be redirected (303) to the validated ``next``
path, also found in ``request.state.oidc_next``.
"""


def _error_response(error: RequestRefusedError) -> JSONResponse:
    """The one place the router turns a refusal into an answer (adapting is one line).

    An answer rather than a raise: the callback must clear the state cookie
    on its refusals too.
    """
    logger.info("OIDC sign-in refused: %s", error.reason)
    answer = http_exception(error)
    return JSONResponse(
        {"detail": answer.detail}, status_code=answer.status_code, headers=answer.headers
    )


def safe_next_path(value: str | None, *, default: str = "/") -> str:
    """``value`` if it is a path on this site, ``default`` when empty; else OIDCLoginError.

    Refused: anything with a scheme or host (``https://evil``), protocol-relative
    ``//evil``, backslashes (``/\\evil``, which browsers read as ``//evil``),
    control characters and spaces, and anything over 2048 characters.
    """
    if value is None or value == "":
        return default
    problem = None
    if len(value) > _MAX_NEXT:
        problem = "next too long"
    elif not value.startswith("/") or value.startswith("//"):
        problem = "next is not a path on this site"
    elif "\\" in value or any(ord(char) < 0x21 or ord(char) == 0x7F for char in value):
        problem = "next has backslashes, spaces or control characters"
    else:
        parts = urlsplit(value)
        if parts.scheme or parts.netloc:
            problem = "next names another site"
    if problem is not None:
        raise OIDCLoginError("invalid next parameter", reason=problem)
    return value


@dataclass
class OIDCProvider:
    """One OpenID provider the app signs users in with.

    ``name`` appears in the routes (``/{name}/login``); ``redirect_uri`` is
    the absolute URL of this app's ``/{name}/callback``, registered at the
    provider. ``client_secret`` None makes a public client (PKCE only).
    ``fetch_userinfo`` asks the userinfo endpoint when the ID token lacks an
    email (providers that put claims only there).
    """

    name: str
    issuer: str
    client_id: str
    redirect_uri: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: Sequence[str] = ("openid", "email", "profile")
    fetch_userinfo: bool = True
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    allow_insecure_loopback: bool = False
    keys: RemoteKeySet | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not _PROVIDER_NAME.fullmatch(self.name):
            raise ConfigurationError("a provider name is 1-32 of a-z, 0-9, '-' or '_'")
        if not self.client_id:
            raise ConfigurationError("client_id must not be empty")
        if "openid" not in self.scopes:
            raise ConfigurationError("scopes must include 'openid'")
        parts = urlsplit(self.redirect_uri)
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ConfigurationError("redirect_uri must be an absolute https URL")
        if parts.fragment:
            raise ConfigurationError("redirect_uri must not have a fragment")
        if self.keys is None:
            self.keys = RemoteKeySet(
                self.issuer, allow_insecure_loopback=self.allow_insecure_loopback
            )
        elif self.keys.issuer != self.issuer:
            raise ConfigurationError("keys belong to another issuer")

    @property
    def key_set(self) -> RemoteKeySet:
        assert self.keys is not None  # set in __post_init__
        return self.keys

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> OIDCProvider:
        """From settings: ``name``, ``issuer``, ``client_id``, ``client_secret``,
        ``redirect_uri``, optional ``scopes`` (list or space-delimited)."""
        options = dict(data)
        scopes = options.get("scopes")
        if isinstance(scopes, str):
            options["scopes"] = tuple(scopes.split())
        elif isinstance(scopes, list):
            options["scopes"] = tuple(scopes)
        try:
            return cls(**options)
        except TypeError as exc:
            raise ConfigurationError(f"bad OIDC provider settings: {exc}") from None


def providers_from_json(text: str) -> list[OIDCProvider]:
    """Providers from JSON settings such as the ``OIDC_PROVIDERS`` variable (a list)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigurationError("OIDC providers settings are not valid JSON") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ConfigurationError("OIDC providers settings must be a JSON list of objects")
    return [OIDCProvider.from_mapping(item) for item in data]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class _Flow:
    provider: str
    state: str
    nonce: str
    verifier: str
    next: str
    expires: float


class OIDCLogin:
    """The two steps of a sign-in, independent of routing.

    :meth:`start` gives the provider URL to redirect to and the state cookie;
    :meth:`finish` checks the callback against that cookie, exchanges the code
    and returns the validated :class:`OIDCIdentity` and ``next`` path.
    """

    def __init__(
        self,
        providers: Iterable[OIDCProvider],
        *,
        state_secret: str | bytes,
        state_ttl: float = 600.0,
        cookie_name: str = "oidc_state",
        secure: bool = True,
        leeway: float = 60.0,
        max_id_token_age: float = 600.0,
        timeout: float = 10.0,
        clock: Clock = system_clock,
    ) -> None:
        require("authlib", extra="oidc", feature="OIDC login")
        secret = state_secret.encode() if isinstance(state_secret, str) else bytes(state_secret)
        if len(secret) < _MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"state_secret must be at least {_MIN_SECRET_BYTES} bytes; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        self._key = secret
        self.providers: dict[str, OIDCProvider] = {}
        for provider in providers:
            if provider.name in self.providers:
                raise ConfigurationError(f"two providers named {provider.name!r}")
            self.providers[provider.name] = provider
        if not self.providers:
            raise ConfigurationError("configure at least one provider")
        if not 0 < state_ttl <= 3600 or not 0 <= leeway <= 300 or max_id_token_age <= 0:
            raise ConfigurationError("state_ttl in (0, 3600], leeway in [0, 300] seconds")
        self.state_ttl = state_ttl
        self.cookie_name = f"__Host-{cookie_name}" if secure else cookie_name
        self.secure = secure
        self.leeway = leeway
        self.max_id_token_age = max_id_token_age
        self.timeout = timeout
        self.clock = clock

    def __repr__(self) -> str:
        return f"OIDCLogin(providers={list(self.providers)!r})"

    def provider(self, name: str) -> OIDCProvider:
        found = self.providers.get(name)
        if found is None:
            raise OIDCLoginError("unknown identity provider", reason="unknown provider name")
        return found

    # -- the state cookie ------------------------------------------------------

    def _mac(self, payload: bytes) -> str:
        return _b64(
            hmac.new(self._key, _STATE_CONTEXT + b"\x00" + payload, hashlib.sha256).digest()
        )

    def _seal(self, flow: _Flow) -> str:
        payload = json.dumps(
            [flow.provider, flow.state, flow.nonce, flow.verifier, flow.next, flow.expires],
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{self._mac(payload)}"

    def _open(self, cookie: str | None, provider: str) -> _Flow:
        if not cookie:
            raise OIDCLoginError(reason="no state cookie (another browser, or expired)")
        if len(cookie) > 4096:
            raise OIDCLoginError(reason="state cookie too long")
        body, _, mac = cookie.partition(".")
        try:
            payload = _unb64(body)
        except ValueError:
            raise OIDCLoginError(reason="malformed state cookie") from None
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise OIDCLoginError(reason="state cookie signature mismatch")
        try:
            name, state, nonce, verifier, next_path, expires = json.loads(payload)
            flow = _Flow(name, state, nonce, verifier, next_path, float(expires))
        except (ValueError, TypeError):  # pragma: no cover - only our own MAC'd payloads get here
            raise OIDCLoginError(reason="malformed state cookie") from None
        if self.clock() > flow.expires:
            raise OIDCLoginError(reason="sign-in took too long (state expired)")
        if flow.provider != provider:
            raise OIDCLoginError(reason="state cookie is for another provider")
        return flow

    def set_state_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            self.cookie_name,
            value,
            max_age=int(self.state_ttl),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear_state_cookie(self, response: Response) -> None:
        response.delete_cookie(
            self.cookie_name, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    # -- step 1 ----------------------------------------------------------------

    def _client(self, provider: OIDCProvider) -> Any:
        httpx_client = require(
            "authlib.integrations.httpx_client", extra="oidc", feature="OIDC login"
        )
        return httpx_client.AsyncOAuth2Client(
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            token_endpoint_auth_method=(
                "client_secret_basic" if provider.client_secret else "none"
            ),
            scope=" ".join(provider.scopes),
            redirect_uri=provider.redirect_uri,
            code_challenge_method="S256",
            timeout=self.timeout,
            follow_redirects=False,
        )

    async def _metadata(self, provider: OIDCProvider) -> dict[str, Any]:
        metadata = await provider.key_set.metadata()
        for name in ("authorization_endpoint", "token_endpoint"):
            try:
                check_provider_url(
                    str(metadata.get(name)),
                    allow_insecure_loopback=provider.allow_insecure_loopback,
                )
            except ConfigurationError as exc:
                raise ProviderUnavailableError(reason=f"unacceptable {name}: {exc}") from None
        return metadata

    async def start(self, name: str, next_path: str | None = None) -> tuple[str, str]:
        """The provider URL to redirect the browser to, and the state cookie value."""
        provider = self.provider(name)
        flow = _Flow(
            provider=name,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            next=safe_next_path(next_path),
            expires=self.clock() + self.state_ttl,
        )
        metadata = await self._metadata(provider)
        async with self._client(provider) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=flow.state,
                code_verifier=flow.verifier,
                nonce=flow.nonce,
                **dict(provider.authorize_params),
            )
        return str(url), self._seal(flow)

    # -- step 2 ----------------------------------------------------------------

    async def finish(
        self, name: str, params: Mapping[str, str], cookie: str | None
    ) -> tuple[OIDCIdentity, str]:
        """Check the callback, exchange the code, validate the ID token."""
        provider = self.provider(name)
        flow = self._open(cookie, name)
        state = params.get("state")
        if not state or not hmac.compare_digest(state.encode(), flow.state.encode()):
            raise OIDCLoginError(reason="state does not match the browser's")
        error = params.get("error")
        if error:
            shown = error if re.fullmatch(r"[a-z_]{1,64}", error) else "malformed"
            raise OIDCLoginError(reason=f"provider answered error={shown}")
        code = params.get("code")
        if not code or len(code) > _MAX_PARAM:
            raise OIDCLoginError(reason="missing or oversized code")
        metadata = await self._metadata(provider)
        token = await self._exchange(provider, metadata, code, flow.verifier)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OIDCLoginError(reason="token response without an id_token")
        claims = await self._validate_id_token(provider, id_token, flow.nonce)
        access_token = token.get("access_token")
        if (
            provider.fetch_userinfo
            and "email" not in claims
            and isinstance(access_token, str)
            and isinstance(metadata.get("userinfo_endpoint"), str)
        ):
            claims = await self._userinfo(
                provider, metadata["userinfo_endpoint"], access_token, claims
            )
        email = claims.get("email")
        identity = OIDCIdentity(
            provider=name,
            issuer=provider.issuer,
            subject=claims["sub"],
            email=email if isinstance(email, str) and email else None,
            email_verified=claims.get("email_verified") is True,
            claims=claims,
        )
        return identity, flow.next

    async def _exchange(
        self, provider: OIDCProvider, metadata: Mapping[str, Any], code: str, verifier: str
    ) -> dict[str, Any]:
        try:
            with anyio.fail_after(self.timeout):
                async with self._client(provider) as client:
                    token = await client.fetch_token(
                        metadata["token_endpoint"],
                        grant_type="authorization_code",
                        code=code,
                        code_verifier=verifier,
                        redirect_uri=provider.redirect_uri,
                    )
        except TimeoutError:
            raise OIDCLoginError(reason="token endpoint timed out") from None
        except Exception as exc:
            # Authlib's OAuthError (invalid_grant for a replayed code) and any
            # transport error: the sign-in fails, the app does not.
            detail = getattr(exc, "error", None) or type(exc).__name__
            raise OIDCLoginError(reason=f"code exchange failed: {detail}") from None
        return dict(token)

    async def _validate_id_token(
        self, provider: OIDCProvider, id_token: str, nonce: str
    ) -> dict[str, Any]:
        try:
            verified = await provider.key_set.verify(id_token)
            claims = verified.claims()
        except InvalidTokenError as exc:
            raise OIDCLoginError(reason=f"ID token refused: {exc.reason}") from None
        typ = verified.header.get("typ")
        if isinstance(typ, str) and typ.lower() in ("at+jwt", "application/at+jwt"):
            raise OIDCLoginError(reason="an access token is not an ID token")
        now = self.clock()
        problem = None
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        azp = claims.get("azp")
        exp, iat = claims.get("exp"), claims.get("iat")
        if claims.get("iss") != provider.issuer:
            problem = "iss is not the provider's"
        elif provider.client_id not in audiences:
            problem = "aud does not name this client"
        elif (len(audiences) > 1 or azp is not None) and azp != provider.client_id:
            problem = "azp is not this client"
        elif not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(
            claims["nonce"].encode(), nonce.encode()
        ):
            problem = "nonce does not match"
        elif not _is_number(exp) or now >= exp + self.leeway:
            problem = "expired or missing exp"
        elif not _is_number(iat) or iat > now + self.leeway:
            problem = "iat missing or in the future"
        elif now - iat > self.max_id_token_age:
            problem = "ID token issued too long ago"
        elif not isinstance(claims.get("sub"), str) or not 0 < len(claims["sub"]) <= _MAX_SUB:
            problem = "missing sub, or longer than 255 characters"
        if problem is not None:
            raise OIDCLoginError(reason=f"ID token refused: {problem}")
        return claims

    async def _userinfo(
        self, provider: OIDCProvider, url: str, access_token: str, claims: dict[str, Any]
    ) -> dict[str, Any]:
        keys = provider.key_set
        try:
            check_provider_url(url, allow_insecure_loopback=provider.allow_insecure_loopback)
            info, _ = await fetch_json(
                keys.http_client,
                url,
                time_limit=keys.timeout,
                max_bytes=keys.max_bytes,
                headers={"Authorization": f"Bearer {access_token}"},
            )
        except (FetchError, ConfigurationError) as exc:
            raise OIDCLoginError(reason=f"userinfo failed: {exc}") from None
        # OpenID Connect Core 1.0, section 5.3.2: the sub must be the ID token's.
        if info.get("sub") != claims["sub"]:
            raise OIDCLoginError(reason="userinfo sub differs from the ID token's")
        return {**info, **claims}


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _documented(*answers: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"description": text, **({"model": ErrorOut} if code >= 400 else {})}
        for code, text in answers
    }


def oidc_router(
    providers: OIDCLogin | Iterable[OIDCProvider],
    *,
    on_identity: IdentityCallback,
    state_secret: str | bytes | None = None,
    **options: Any,
) -> APIRouter:
    """``GET /{provider}/login`` and ``GET /{provider}/callback``.

    Mount it with a prefix: ``app.include_router(oidc_router(...), prefix="/auth/oidc")``.
    ``/login?next=/path`` redirects (302) to the provider; ``/callback`` checks
    everything, then calls ``on_identity(identity, request)`` and answers with
    what it returns (see :data:`IdentityCallback`). Every refusal is a 400
    ``{"detail": {"code": "bad_request", ...}}`` (503 when the provider is
    unreachable); the state cookie is cleared either way.
    """
    if isinstance(providers, OIDCLogin):
        login = providers
    else:
        if state_secret is None:
            raise ConfigurationError("state_secret is required")
        login = OIDCLogin(providers, state_secret=state_secret, **options)
    router = APIRouter(tags=["oidc"])

    @router.get(
        "/{provider}/login",
        name="oidc_login",
        response_class=RedirectResponse,
        responses=_documented(
            (302, "Redirect to the provider's authorization endpoint"),
            (400, "Unknown provider, or a next parameter leaving this site"),
            (503, "The provider's metadata could not be obtained"),
        ),
    )
    async def oidc_login(provider: str, request: Request, next: str | None = None) -> Response:
        try:
            url, cookie = await login.start(provider, next)
        except RequestRefusedError as exc:
            return _error_response(exc)
        response = RedirectResponse(url, status_code=302)
        login.set_state_cookie(response, cookie)
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.get(
        "/{provider}/callback",
        name="oidc_callback",
        responses=_documented(
            (200, "Signed in: what on_identity answered"),
            (303, "Signed in: redirect to the next path"),
            (400, "Wrong or missing state, code or ID token; the provider refused"),
            (403, "Refused by the application (a disabled account)"),
            (409, "Refused by the application (the email belongs to another account)"),
            (503, "The provider or a store is unavailable"),
        ),
    )
    async def oidc_callback(provider: str, request: Request) -> Response:
        params = dict(request.query_params)
        try:
            for name in ("state", "code", "error"):
                if len(request.query_params.getlist(name)) > 1:
                    raise OIDCLoginError(reason=f"{name} given more than once")
            identity, next_path = await login.finish(
                provider, params, request.cookies.get(login.cookie_name)
            )
        except RequestRefusedError as exc:
            answer = _error_response(exc)
            login.clear_state_cookie(answer)
            return answer
        request.state.oidc_next = next_path
        try:
            result = await on_identity(identity, request)
        except RequestRefusedError as exc:
            # A refusal by the app (an email taken by another account, a disabled
            # account): its own status, and the state cookie cleared all the same.
            answer = _error_response(exc)
            login.clear_state_cookie(answer)
            return answer
        if isinstance(result, Response):
            response = result
        elif result is None:
            response = RedirectResponse(next_path, status_code=303)
        else:
            response = JSONResponse(result)
        login.clear_state_cookie(response)
        response.headers["Cache-Control"] = "no-store"
        return response

    return router
