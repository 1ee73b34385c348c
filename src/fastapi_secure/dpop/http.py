"""The HTTP side of DPoP: a FastAPI dependency and the helper for login and refresh.

:class:`DPoPAuth` reads ``Authorization: DPoP <access token>`` and the
``DPoP`` proof header, verifies the token through the issuer and the proof
through a :class:`~fastapi_secure.dpop.DPoPVerifier` (with ``ath`` and the
token's ``cnf.jkt``), and returns the token's ``AccessClaims``, so the role
and permission checkers apply unchanged. :meth:`DPoPAuth.check_login_proof`
checks the proof of a login or refresh request and gives the key thumbprint
to bind the session to (``issuer.issue(..., dpop_jkt=)``).

Answers (RFC 9449, section 7.1):

* no DPoP credentials: ``401`` with ``WWW-Authenticate: DPoP algs="..."``
  (``auto_error=False``: ``None``, to chain with another scheme);
* a bad token, a token not bound to a key, or a token sent as ``Bearer``
  (unless ``accept_bearer``): ``401`` ``DPoP error="invalid_token"``;
* a missing, bad, replayed or foreign proof: ``401`` ``DPoP error="invalid_dpop_proof"``;
* a proof without the current server nonce: ``401`` ``DPoP error="use_dpop_nonce"``
  with a ``DPoP-Nonce`` header;
* the replay cache or token store down: ``503`` (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import quote

from fastapi.openapi.models import HTTPBase
from fastapi.security.base import SecurityBase
from fastapi.security.oauth2 import SecurityScopes
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from fastapi_secure.audit import AuditInfo
from fastapi_secure.auth.base import (
    DEFAULT_MAX_TOKEN_LENGTH,
    AccessTokenVerifier,
    close_on_refusal,
    token_syntax_problem,
)
from fastapi_secure.dpop.proofs import (
    DPoPNonceError,
    DPoPProof,
    DPoPVerifier,
    InvalidDPoPProofError,
    normalize_htu,
    refuse_if_bound,
)
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    InsufficientScopeError,
    InvalidTokenError,
    RequestRefusedError,
    SecurityError,
)
from fastapi_secure.http_errors import http_exception, www_authenticate
from fastapi_secure.tokens.claims import SCOPE_TOKEN, AccessClaims

__all__ = ["DPoPAuth"]

logger = logging.getLogger("fastapi_secure.dpop")

_CACHE_KEY = "fastapi_secure.dpop_verified"


class DPoPAuth(SecurityBase):
    """``Authorization: DPoP <token>`` plus a ``DPoP`` proof -> ``AccessClaims``.

    ``public_url`` (``https://api.example.com``, optionally with the path
    prefix a proxy strips) is the origin clients sign their ``htu`` for;
    without it the request's scheme and ``Host`` header are used, which is
    right only when the app is reached directly. ``accept_bearer=True``
    also takes unbound tokens as ``Authorization: Bearer`` (a migration
    period); a bound token sent that way is refused either way. Without it,
    any ``Bearer`` credentials are refused (``invalid_token``), or, with
    ``auto_error=False``, left to the next dependency (None). In a
    ``FirstOf`` with a ``BearerAuth``, put the ``BearerAuth`` first.
    """

    model: HTTPBase

    def __init__(
        self,
        issuer: AccessTokenVerifier,
        verifier: DPoPVerifier,
        *,
        public_url: str | None = None,
        accept_bearer: bool = False,
        auto_error: bool = True,
        scheme_name: str | None = None,
        description: str | None = None,
        max_token_length: int = DEFAULT_MAX_TOKEN_LENGTH,
    ) -> None:
        if not callable(getattr(issuer, "verify_access", None)):
            raise ConfigurationError("issuer must provide an async verify_access(token) method")
        if not isinstance(verifier, DPoPVerifier):
            raise ConfigurationError("verifier must be a DPoPVerifier")
        if isinstance(max_token_length, bool) or not isinstance(max_token_length, int):
            raise ConfigurationError("max_token_length must be an int")
        if max_token_length < 64:
            raise ConfigurationError("max_token_length below 64 characters cannot hold a JWT")
        self._public_url: str | None = None
        if public_url is not None:
            try:
                self._public_url = normalize_htu(public_url).rstrip("/")
            except ValueError:
                raise ConfigurationError(
                    "public_url must be an absolute http(s) URL without user info"
                ) from None
        self.issuer = issuer
        self.verifier = verifier
        self.accept_bearer = bool(accept_bearer)
        self.auto_error = bool(auto_error)
        self.max_token_length = max_token_length
        self.model = HTTPBase(scheme="DPoP", description=description)
        self.scheme_name = scheme_name or type(self).__name__
        self._algs = f'algs="{" ".join(verifier.algorithms)}"'
        self.challenge = f"DPoP {self._algs}"
        """The challenge of a request without credentials (``FirstOf`` joins them)."""

    def _refuse(self, err: SecurityError, headers: dict[str, str] | None = None) -> NoReturn:
        # The one place where a core error becomes an HTTP answer.
        extra = dict(headers or {})
        if isinstance(err, DPoPNonceError):
            extra.setdefault("DPoP-Nonce", err.nonce)
        elif (
            isinstance(err, AuthenticationError)
            and err.scheme == "DPoP"
            and not isinstance(err, InvalidDPoPProofError)
        ):
            # RFC 9449, section 7.1: tell the client which algorithms to sign with.
            challenge = www_authenticate(err) or "DPoP"
            separator = ", " if err.challenge_error else " "
            extra.setdefault("WWW-Authenticate", f"{challenge}{separator}{self._algs}")
        if isinstance(err, RequestRefusedError):
            logger.debug("DPoP request refused: %s (%s)", type(err).__name__, err.reason)
        raise http_exception(err, headers=extra or None) from None

    def audit_info(self) -> AuditInfo:
        """What :func:`fastapi_secure.audit.audit` reports: DPoP-bound tokens."""
        return AuditInfo(
            authentication="dpop",
            optional=not self.auto_error,
            details={"accept_bearer": str(self.accept_bearer).lower()},
        )

    # -- request side ------------------------------------------------------------

    def request_uri(self, request: HTTPConnection) -> str:
        """The URI this request's proof must name in ``htu`` (before normalization)."""
        raw = request.scope.get("raw_path")
        if isinstance(raw, bytes):
            # Some servers leave the query string in raw_path; htu never has one.
            path = raw.decode("latin-1").partition("?")[0]
        else:
            path = quote(request.scope.get("root_path", "") + request.scope["path"])
        if self._public_url is not None:
            return self._public_url + path
        host = request.headers.get("host", "")
        return f"{request.url.scheme}://{host}{path}"

    async def authenticate(
        self, request: HTTPConnection, scopes: Sequence[str] = ()
    ) -> AccessClaims | None:
        """Verify the token, the proof and the required ``scopes``; None only when
        DPoP credentials are absent and ``auto_error`` is False.

        A WebSocket handshake is refused: RFC 9449 binds a proof to an HTTP
        method and URI, and browsers cannot send a ``DPoP`` header on one.
        """
        try:
            if not isinstance(request, Request):
                raise AuthenticationError(reason="DPoP on a WebSocket handshake", scheme="DPoP")
            return await self._authenticate(request, scopes)
        except HTTPException:
            raise
        except SecurityError as err:
            self._refuse(err)

    async def _authenticate(self, request: Request, scopes: Sequence[str]) -> AccessClaims | None:
        values = request.headers.getlist("authorization")
        if len(values) > 1:
            raise InvalidTokenError(reason="several Authorization headers", scheme="DPoP")
        scheme, _, param = values[0].strip(" ").partition(" ") if values else ("", "", "")
        token = param.strip(" ")
        if scheme.lower() == "bearer" and self.accept_bearer and token:
            return await self._bearer(request, token, scopes)
        if scheme.lower() == "bearer" and token and self.auto_error:
            # A token where DPoP is required (RFC 9449, section 7.2: a bound one
            # sent as a bearer token is a downgrade); unbound ones are not taken here.
            raise InvalidTokenError(
                reason="Bearer credentials where DPoP is required", scheme="DPoP"
            )
        if scheme.lower() != "dpop":
            if not self.auto_error:
                return None
            raise AuthenticationError(reason="no DPoP credentials", scheme="DPoP")
        problem = token_syntax_problem(token, self.max_token_length) if token else "no token"
        if problem is not None:
            raise InvalidTokenError(reason=f"DPoP credentials: {problem}", scheme="DPoP")
        proof = self._proof_header(request)
        cache: dict[tuple[int, str, str], tuple[AccessClaims, DPoPProof]]
        cache = request.scope.setdefault(_CACHE_KEY, {})
        # Several dependencies of one request check one proof once: a second
        # check would see its own jti as a replay.
        cached = cache.get((id(self), token, proof))
        if cached is None:
            claims = await self._verify_token(token)
            if claims.cnf is None:
                raise InvalidTokenError(reason="token not bound to a DPoP key", scheme="DPoP")
            checked = await self.verifier.verify(
                proof,
                method=request.method,
                uri=self.request_uri(request),
                access_token=token,
                jkt=claims.cnf.jkt,
            )
            cached = cache[(id(self), token, proof)] = (claims, checked)
        claims = cached[0]
        self._check_scopes(claims, scopes)
        return claims

    async def _bearer(self, request: Request, token: str, scopes: Sequence[str]) -> AccessClaims:
        problem = token_syntax_problem(token, self.max_token_length)
        if problem is not None:
            raise InvalidTokenError(reason=f"Bearer credentials: {problem}")
        claims = await self._verify_token(token, scheme="Bearer")
        try:
            refuse_if_bound(claims)
        except InvalidTokenError as err:
            # Answered with the DPoP challenge: the client should use DPoP.
            raise InvalidTokenError(reason=err.reason, scheme="DPoP") from None
        self._check_scopes(claims, scopes, scheme="Bearer")
        return claims

    def _proof_header(self, request: Request) -> str:
        proofs = request.headers.getlist("dpop")
        if not proofs:
            raise InvalidDPoPProofError(reason="no DPoP header")
        if len(proofs) > 1:
            raise InvalidDPoPProofError(reason="several DPoP headers")
        return proofs[0].strip(" ")

    async def _verify_token(self, token: str, *, scheme: str = "DPoP") -> AccessClaims:
        try:
            return await self.issuer.verify_access(token)
        except InvalidTokenError as err:
            # The same error (expired, revoked...), answered with this scheme's challenge.
            err.scheme = scheme
            raise
        except SecurityError:
            raise
        except Exception as exc:
            # The issuer promises InvalidTokenError for bad input; anything else
            # still refuses the request rather than answer 500.
            logger.error("access token verification failed unexpectedly: %s", type(exc).__name__)
            raise InvalidTokenError(
                reason=f"unexpected {type(exc).__name__}", scheme=scheme
            ) from None

    def _check_scopes(
        self, claims: AccessClaims, scopes: Sequence[str], scheme: str = "DPoP"
    ) -> None:
        missing = set(scopes) - claims.scopes
        if not missing:
            return
        err = InsufficientScopeError(scopes=scopes, reason=f"missing scopes {sorted(missing)}")
        headers = None
        if scheme == "DPoP":
            challenge = 'DPoP error="insufficient_scope"'
            shown = " ".join(scope for scope in scopes if SCOPE_TOKEN.fullmatch(scope))
            if shown:
                challenge += f', scope="{shown}"'
            headers = {"WWW-Authenticate": challenge}
        self._refuse(err, headers)

    async def __call__(
        self, request: HTTPConnection, response: Response, security_scopes: SecurityScopes
    ) -> AccessClaims | None:
        # On a WebSocket route the handshake is refused (close 1008), never a 500.
        claims = await close_on_refusal(request, self.authenticate(request, security_scopes.scopes))
        if isinstance(request, Request):
            self._offer_nonce(request, response)
        return claims

    def _offer_nonce(self, request: Request, response: Response) -> None:
        # RFC 9449, section 8.2: a new nonce may ride on a successful answer, so
        # the client's next proof does not bounce off use_dpop_nonce.
        nonces = self.verifier.nonces
        if nonces is None:
            return
        current = nonces.current()
        verified: dict[Any, tuple[AccessClaims, DPoPProof]] = request.scope.get(_CACHE_KEY, {})
        if any(proof.nonce != current for _, proof in verified.values()):
            response.headers["DPoP-Nonce"] = current

    # -- login and refresh ---------------------------------------------------------

    def login_proof_openapi(self, *, required: bool = False) -> dict[str, Any]:
        """The ``openapi_extra`` of a route that calls :meth:`check_login_proof`:
        declares its ``DPoP`` request header (``required`` as given there).

        Only the schema changes: the header is still read by
        :meth:`check_login_proof`, so a missing or repeated one keeps its
        401 ``invalid_dpop_proof`` answer rather than FastAPI's 422.
        """
        algorithms = ", ".join(self.verifier.algorithms)
        described = "binds the session to the proof's key" + (
            " (required)" if required else "; without it the tokens are not bound"
        )
        return {
            "parameters": [
                {
                    "name": "DPoP",
                    "in": "header",
                    "required": bool(required),
                    "schema": {"type": "string"},
                    "description": (
                        f"A DPoP proof JWT (RFC 9449) for this request, signed with {algorithms}: "
                        f"{described}."
                    ),
                }
            ]
        }

    async def check_login_proof(self, request: Request, *, required: bool = False) -> str | None:
        """The thumbprint of the key that signed this login or refresh request's
        ``DPoP`` proof, to bind the session to: ``issuer.issue(sub, dpop_jkt=...)``
        or ``issuer.rotate(refresh_token, dpop_jkt=...)``.

        None when the request carries no proof and ``required`` is False. A
        bad proof is refused (401 ``invalid_dpop_proof`` or ``use_dpop_nonce``)
        even when not required: a client that sent one expects a bound pair.
        """
        try:
            proofs = request.headers.getlist("dpop")
            if not proofs:
                if required:
                    raise InvalidDPoPProofError(reason="no DPoP header where one is required")
                return None
            checked = await self.verifier.verify(
                self._proof_header(request), method=request.method, uri=self.request_uri(request)
            )
        except SecurityError as err:
            self._refuse(err)
        return checked.jkt
