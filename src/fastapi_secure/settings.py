"""Settings model for applications built on fastapi-secure.

The library never reads settings by itself: every component takes plain
constructor arguments, and some offer ``from_settings(settings)``. An
application creates one :class:`SecuritySettings` (from the environment, a
``.env`` file or code) and hands it to those constructors.

Environment variables carry the prefix ``FASTAPI_SECURE_``; lists are JSON
(``FASTAPI_SECURE_CORS_ALLOW_ORIGINS='["https://app.example.com"]'``).
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fastapi_secure.errors import ConfigurationError

__all__ = ["MIN_SECRET_BYTES", "SecuritySettings"]

MIN_SECRET_BYTES = 32
"""Shortest HMAC secret accepted in production (the HS256 output size)."""

_WEAK_SECRETS = frozenset(
    {"secret", "changeme", "change-me", "password", "dev", "development", "test", "insecure"}
)


class SecuritySettings(BaseSettings):
    """Configuration shared by the blocks of one application.

    In ``environment="production"`` construction fails with
    :class:`~fastapi_secure.errors.ConfigurationError` (wrapped by pydantic in a
    ``ValidationError``) when a setting is unsafe: a missing or weak secret, a
    wildcard CORS origin, or API docs left exposed. Call
    :meth:`production_problems` to list them without raising.
    """

    model_config = SettingsConfigDict(
        env_prefix="FASTAPI_SECURE_",
        env_file=None,
        extra="ignore",
        frozen=True,
    )

    environment: Literal["development", "production"] = "development"

    secret_key: SecretStr | None = Field(
        default=None,
        description="HMAC signing secret for tokens (at least 32 bytes in production).",
    )
    token_issuer: str = "fastapi-secure"
    token_audience: str = "fastapi-secure"
    access_ttl_seconds: int = Field(default=15 * 60, gt=0)
    refresh_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    max_session_age_seconds: int | None = Field(
        default=30 * 24 * 3600,
        gt=0,
        description="a login session ends this long after sign-in, however often it "
        "refreshes; None: no cap",
    )

    password_profile: Literal["rfc9106_low_memory", "owasp_minimum"] = "rfc9106_low_memory"

    redis_url: SecretStr | None = None
    database_url: SecretStr | None = None

    cors_allow_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    trusted_proxies: list[str] = Field(default_factory=list)
    docs_enabled: bool = True

    @field_validator("trusted_proxies")
    @classmethod
    def _parse_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ConfigurationError(f"trusted_proxies: {item!r} is not an IP network") from exc
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> SecuritySettings:
        if self.access_ttl_seconds >= self.refresh_ttl_seconds:
            raise ConfigurationError("access_ttl_seconds must be shorter than refresh_ttl_seconds")
        if (
            self.max_session_age_seconds is not None
            and self.max_session_age_seconds <= self.access_ttl_seconds
        ):
            raise ConfigurationError("max_session_age_seconds must be longer than access_ttl")
        if "*" in self.cors_allow_origins and self.cors_allow_credentials:
            raise ConfigurationError(
                "cors_allow_origins=['*'] with cors_allow_credentials=True lets any site "
                "make credentialed requests; list the allowed origins instead"
            )
        if self.environment == "production":
            problems = self.production_problems()
            if problems:
                raise ConfigurationError("unsafe production settings: " + "; ".join(problems))
        return self

    def production_problems(self) -> list[str]:
        """Return what would make these settings unsafe in production (empty when fine)."""
        problems: list[str] = []
        secret = self.secret_key.get_secret_value() if self.secret_key else ""
        if not secret:
            problems.append("secret_key is not set")
        elif len(secret.encode()) < MIN_SECRET_BYTES:
            problems.append(f"secret_key is shorter than {MIN_SECRET_BYTES} bytes")
        elif secret.lower() in _WEAK_SECRETS or len(set(secret)) < 8:
            problems.append("secret_key is a well-known or low-variety value")
        if "*" in self.cors_allow_origins:
            problems.append("cors_allow_origins contains '*'")
        if self.docs_enabled:
            problems.append("docs_enabled is true (API docs exposed)")
        return problems
