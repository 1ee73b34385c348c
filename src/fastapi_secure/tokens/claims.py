"""Typed claims of the tokens that :class:`~fastapi_secure.TokenIssuer` issues.

Every token carries ``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``jti``, its
kind twice (the JOSE ``typ`` header and the ``token_use`` claim) and ``sid``,
the id of its token family (one login session). Access tokens add ``roles``,
``scope`` (space-delimited, RFC 9068 / RFC 8693), ``fresh`` and ``auth_time``.
Tokens bound to a client key (DPoP, RFC 9449) carry ``cnf: {"jkt": ...}``,
the key's RFC 7638 thumbprint, in both the access and the refresh token.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

__all__ = [
    "ACCESS_TOKEN_TYP",
    "REFRESH_TOKEN_TYP",
    "RESERVED_CLAIMS",
    "SCOPE_TOKEN",
    "AccessClaims",
    "Confirmation",
    "RefreshClaims",
    "TokenPair",
]

ACCESS_TOKEN_TYP = "at+jwt"
"""JOSE ``typ`` header of access tokens (RFC 9068)."""

REFRESH_TOKEN_TYP = "rt+jwt"
"""JOSE ``typ`` header of refresh tokens (distinct from access tokens by design)."""

SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
"""One OAuth2 scope token (RFC 6749, appendix A.4); nothing else may stand in a scope."""

RESERVED_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "sid",
        "token_use",
        "typ",
        "roles",
        "scope",
        "scopes",
        "fresh",
        "auth_time",
        "amr",
        "cnf",
        "client_id",
    }
)
"""Claim names that custom claims may never set."""

# The largest magnitude of exp, iat, nbf and auth_time: the integers JSON carries
# exactly (RFC 7493, section 2.2). Beyond it, time arithmetic would meet an
# integer too large for a float (OverflowError, a 500) instead of a refusal.
_MAX_NUMERIC_DATE: Final = 2**53
_NumericDate = Annotated[int, Field(ge=-_MAX_NUMERIC_DATE, le=_MAX_NUMERIC_DATE)]


class Confirmation(BaseModel):
    """The ``cnf`` claim (RFC 7800) of a token bound to a DPoP key (RFC 9449, section 6)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    jkt: str = Field(
        min_length=43,
        max_length=43,
        pattern=r"^[A-Za-z0-9_-]{43}$",
        description="base64url SHA-256 JWK thumbprint (RFC 7638) of the client's key",
    )


class _BaseClaims(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        str_strip_whitespace=False,
        validate_by_name=True,
        validate_by_alias=True,
    )

    iss: str = Field(min_length=1)
    sub: str = Field(min_length=1)
    aud: str | list[str]
    exp: _NumericDate
    iat: _NumericDate
    nbf: _NumericDate | None = None
    jti: str = Field(min_length=1)
    sid: str = Field(min_length=1, description="token family (login session) id")
    auth_time: _NumericDate = Field(
        description="when the user last authenticated with a credential"
    )
    roles: tuple[str, ...] = ()
    scopes: frozenset[str] = Field(default=frozenset(), alias="scope")
    amr: tuple[str, ...] = Field(
        default=(), description="how the user authenticated (RFC 8176: pwd, otp, hwk, mfa, ...)"
    )
    cnf: Confirmation | None = Field(
        default=None, description="the DPoP key the token is bound to; None for bearer tokens"
    )

    @field_validator("scopes", mode="before")
    @classmethod
    def _split_scope(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(value.split())
        return value

    @field_serializer("scopes")
    def _join_scope(self, value: frozenset[str]) -> str:
        return " ".join(sorted(value))


class AccessClaims(_BaseClaims):
    """Verified claims of an access token, as returned by ``verify_access`` and the
    auth dependencies.

    Custom claims passed to ``issue(claims=...)`` are kept as extra fields
    (``claims.model_extra``).
    """

    model_config = ConfigDict(
        frozen=True, extra="allow", validate_by_name=True, validate_by_alias=True
    )

    token_use: Literal["access"] = "access"
    fresh: bool = False

    @property
    def subject(self) -> str:
        """The ``sub`` claim."""
        return self.sub

    @property
    def extra_claims(self) -> dict[str, Any]:
        """Custom claims set at issue time (never a reserved claim)."""
        return dict(self.model_extra or {})


class RefreshClaims(_BaseClaims):
    """Verified claims of a refresh token.

    ``roles`` and ``scopes`` are those of the login: what a rotation keeps when
    the issuer has no grant loader to read them again.
    """

    token_use: Literal["refresh"] = "refresh"


class TokenPair(BaseModel):
    """An access and a refresh token; serializes as an OAuth2 token response
    (RFC 6749, section 5.1)."""

    model_config = ConfigDict(frozen=True)

    access_token: str
    refresh_token: str
    token_type: Literal["bearer", "DPoP"] = Field(
        default="bearer", description='"DPoP" when the pair is bound to a client key'
    )
    expires_in: int = Field(description="access token lifetime in seconds")
    refresh_expires_in: int = Field(description="refresh token lifetime in seconds")
    session_id: str = Field(
        exclude=True,
        description="the token family (login session) both tokens belong to: their `sid`",
    )
