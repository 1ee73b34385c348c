"""Settings of the reference API, read from the environment.

Embedded defaults (an SQLite file and in-memory stores) make it run with no
configuration. ``DATABASE_URL`` and ``REDIS_URL`` switch it to PostgreSQL and
Redis. ``ENVIRONMENT=production`` refuses a weak or missing ``SECRET_KEY``, a
wildcard CORS origin and exposed docs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from fastapi_secure import (
    ConfigurationError,
    SecuritySettings,
)
from fastapi_secure.tokens.keys import SUPPORTED_ALGORITHMS, SYMMETRIC_ALGORITHMS

_PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_PROVIDER_KEYS = {
    "issuer",
    "client_id",
    "client_secret",
    "scopes",
    "allow_link_by_email",
    "allow_insecure_loopback",
}


@dataclass(frozen=True)
class ProviderSettings:
    """One entry of ``OIDC_PROVIDERS``."""

    name: str
    issuer: str
    client_id: str
    client_secret: str | None
    scopes: tuple[str, ...]
    allow_link_by_email: bool
    allow_insecure_loopback: bool

    def __repr__(self) -> str:
        return f"ProviderSettings(name={self.name!r}, issuer={self.issuer!r})"


def parse_oidc_providers(text: str) -> list[ProviderSettings]:
    """``OIDC_PROVIDERS``: a JSON object, provider name -> its settings.

    ``{"keycloak": {"issuer": "...", "client_id": "...", "client_secret": "...",
    "scopes": ["openid", "email"], "allow_link_by_email": false}}``
    """
    try:
        data: Any = json.loads(text)
    except ValueError:
        raise ConfigurationError("OIDC_PROVIDERS is not valid JSON") from None
    if not isinstance(data, dict) or not data:
        raise ConfigurationError("OIDC_PROVIDERS must be a JSON object: name -> settings")
    providers = []
    for name, entry in data.items():
        if not _PROVIDER_NAME.fullmatch(name):
            raise ConfigurationError(f"OIDC provider name {name!r}: 1-32 of a-z, 0-9, '-', '_'")
        if not isinstance(entry, dict) or not {"issuer", "client_id"} <= entry.keys():
            raise ConfigurationError(f"OIDC provider {name!r} needs issuer and client_id")
        unknown = set(entry) - _PROVIDER_KEYS
        if unknown:
            raise ConfigurationError(f"OIDC provider {name!r}: unknown keys {sorted(unknown)}")
        scopes = entry.get("scopes", ["openid", "email", "profile"])
        if isinstance(scopes, str):
            scopes = scopes.split()
        flags = [
            entry.get(key, False) for key in ("allow_link_by_email", "allow_insecure_loopback")
        ]
        secret = entry.get("client_secret")
        if (
            not all(isinstance(entry[key], str) for key in ("issuer", "client_id"))
            or not isinstance(scopes, list)
            or not all(isinstance(scope, str) for scope in scopes)
            or not all(isinstance(flag, bool) for flag in flags)
            or not (secret is None or isinstance(secret, str))
        ):
            raise ConfigurationError(f"OIDC provider {name!r}: a setting has the wrong type")
        providers.append(
            ProviderSettings(
                name=name,
                issuer=entry["issuer"],
                client_id=entry["client_id"],
                client_secret=secret,
                scopes=tuple(scopes),
                allow_link_by_email=flags[0],
                allow_insecure_loopback=flags[1],
            )
        )
    return providers


class AppSettings(SecuritySettings):
    """Environment variables carry no prefix: ``DATABASE_URL``, ``REDIS_URL``, ..."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    database_url: SecretStr | None = Field(
        default=SecretStr("sqlite+aiosqlite:///./reference_api.db"),
        description="SQLAlchemy URL; sqlite+aiosqlite (default) or postgresql+asyncpg",
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Redis URL for token state and rate limits; memory when unset"
    )
    redis_key_prefix: str = Field(
        default="refapi:", description="prefix of every Redis key the API writes"
    )
    token_issuer: str = "http://127.0.0.1:8000"
    token_audience: str = "reference-api"
    password_hash_profile: Literal["rfc9106_low_memory", "owasp_minimum", "test_only_fast"] = (
        "rfc9106_low_memory"
    )
    signing_key_pem: SecretStr | None = Field(
        default=None, description="PEM private key (EdDSA, ES256, RS256) that signs tokens"
    )
    signing_key_file: str | None = Field(default=None, description="path of that PEM file")
    signing_key_algorithm: str | None = Field(
        default=None,
        description="algorithm of the signing key: needed for RSA (RS256, PS256, ...) and for "
        "HMAC (HS256/384/512, with SIGNING_KEY_SECRET); EC and Ed25519 keys name their own",
    )
    signing_key_secret: SecretStr | None = Field(
        default=None, description="HMAC secret (at least the hash size) for HS256/384/512"
    )
    auth_transport: Literal["bearer", "cookie"] = "bearer"
    cookie_secure: bool = True
    auth_limits_per_ip: str = Field(
        default="60/minute;600/hour",
        description="requests per client IP to /auth/login, /refresh, /logout (the lockout "
        "guards each account on top)",
    )
    account_limits_per_ip: str = Field(
        default="30/minute;300/hour",
        description="requests per client IP to registration, verification and reset routes",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="base of the links in mails; never taken from the request's Host",
    )
    email_outbox_dir: str | None = Field(
        default=None, description="folder where mail is written as JSON files; memory when unset"
    )
    require_verified_email: bool = Field(
        default=False, description="refuse logins (403) until the email address is verified"
    )
    dpop_required: bool = Field(
        default=False,
        description="require DPoP (RFC 9449): login and refresh need a DPoP proof and get "
        "key-bound tokens; every route that takes a token wants 'Authorization: DPoP' and a "
        "proof signed for PUBLIC_BASE_URL; bearer transport only",
    )
    password_change_limits_per_user: str = "5/minute;20/hour"
    mfa_encryption_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Fernet keys (a JSON list, newest first) that encrypt TOTP secrets at "
        "rest; when unset, one is derived from SECRET_KEY (or made up per process: dev only)",
    )
    mfa_issuer_name: str = Field(
        default="Reference API", description="the service's name in authenticator apps"
    )
    webauthn_rp_id: str = Field(
        default="localhost", description="passkeys' relying-party id: your registrable domain"
    )
    webauthn_rp_name: str = "Reference API"
    webauthn_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8000"],
        description="exact origins (a JSON list) of the pages that use passkeys",
    )
    mfa_step_up_max_age: int = Field(
        default=300,
        description="seconds a login stays recent enough for sensitive routes (password "
        "change, removing a factor, API keys)",
    )
    oidc_providers: SecretStr | None = Field(
        default=None,
        description="sign-in with OpenID providers, JSON: name -> {issuer, client_id, "
        "client_secret, scopes, allow_link_by_email}; nothing OIDC is mounted when unset",
    )
    max_body_bytes: int = 64 * 1024
    admin_email: str | None = None
    admin_username: str = "admin"
    admin_password: SecretStr | None = None

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if (
            self.signing_key_pem is None
            and self.signing_key_file is None
            and self.signing_key_secret is None
        ):
            problems.append("SIGNING_KEY_PEM, SIGNING_KEY_FILE or SIGNING_KEY_SECRET is not set")
        if self.password_hash_profile == "test_only_fast":
            problems.append("PASSWORD_HASH_PROFILE=test_only_fast is for tests only")
        if not self.cookie_secure:
            problems.append("COOKIE_SECURE is false")
        for provider in self.providers():
            if provider.allow_insecure_loopback:
                problems.append(f"OIDC provider {provider.name!r} allows plain http")
        return problems

    def providers(self) -> list[ProviderSettings]:
        """The OIDC providers of ``OIDC_PROVIDERS`` (none when unset)."""
        if self.oidc_providers is None:
            return []
        return parse_oidc_providers(self.oidc_providers.get_secret_value())

    @model_validator(mode="after")
    def _check_example(self) -> AppSettings:
        algorithm = self.signing_key_algorithm
        if algorithm is not None and algorithm not in SUPPORTED_ALGORITHMS:
            known = ", ".join(SUPPORTED_ALGORITHMS)
            raise ConfigurationError(f"SIGNING_KEY_ALGORITHM {algorithm!r} is not one of {known}")
        if (algorithm in SYMMETRIC_ALGORITHMS) != (self.signing_key_secret is not None):
            raise ConfigurationError(
                "SIGNING_KEY_SECRET goes with SIGNING_KEY_ALGORITHM=HS256/HS384/HS512, and only"
            )
        self.providers()  # refuse malformed OIDC_PROVIDERS at startup
        if self.dpop_required and self.auth_transport == "cookie":
            raise ConfigurationError(
                "DPOP_REQUIRED=true needs AUTH_TRANSPORT=bearer: a DPoP-bound token travels in "
                "the Authorization header, never in a cookie"
            )
        if self.environment == "production":
            problems = self.production_problems()
            if problems:
                raise ConfigurationError("unsafe production settings: " + "; ".join(problems))
        return self
