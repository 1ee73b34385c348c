from __future__ import annotations

import pytest
from pydantic import ValidationError

from fastapi_secure import SecuritySettings

STRONG = "k3Y-9f2Q_zP7mX1wL8vB4nR6tY0uI5oA"


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTAPI_SECURE_SECRET_KEY", STRONG)
    monkeypatch.setenv("FASTAPI_SECURE_ACCESS_TTL_SECONDS", "120")
    monkeypatch.setenv("FASTAPI_SECURE_CORS_ALLOW_ORIGINS", '["https://app.example.com"]')
    settings = SecuritySettings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == STRONG
    assert settings.access_ttl_seconds == 120
    assert settings.cors_allow_origins == ["https://app.example.com"]


def test_secret_never_in_repr() -> None:
    settings = SecuritySettings(secret_key=STRONG)
    assert STRONG not in repr(settings)
    assert STRONG not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"secret_key": None}, "secret_key is not set"),
        ({"secret_key": "short"}, "shorter than 32 bytes"),
        ({"secret_key": "a" * 40}, "low-variety"),
        ({"cors_allow_origins": ["*"]}, "contains '*'"),
        ({"docs_enabled": True}, "docs_enabled"),
    ],
)
def test_production_refuses_unsafe_settings(overrides: dict[str, object], problem: str) -> None:
    values: dict[str, object] = {
        "environment": "production",
        "secret_key": STRONG,
        "docs_enabled": False,
    }
    values.update(overrides)
    with pytest.raises(ValidationError, match=problem):
        SecuritySettings(**values)  # type: ignore[arg-type]


def test_production_accepts_safe_settings() -> None:
    settings = SecuritySettings(environment="production", secret_key=STRONG, docs_enabled=False)
    assert settings.production_problems() == []


def test_development_lists_problems_without_raising() -> None:
    settings = SecuritySettings()
    assert "secret_key is not set" in settings.production_problems()


def test_wildcard_origin_with_credentials_refused_everywhere() -> None:
    with pytest.raises(ValidationError, match="any site"):
        SecuritySettings(cors_allow_origins=["*"], cors_allow_credentials=True)


def test_access_ttl_must_be_shorter_than_refresh_ttl() -> None:
    with pytest.raises(ValidationError, match="shorter than refresh"):
        SecuritySettings(access_ttl_seconds=600, refresh_ttl_seconds=600)


def test_trusted_proxies_must_be_networks() -> None:
    assert SecuritySettings(trusted_proxies=["10.0.0.0/8", "::1"]).trusted_proxies
    with pytest.raises(ValidationError, match="not an IP network"):
        SecuritySettings(trusted_proxies=["proxy.local"])


def test_max_session_age_defaults_to_thirty_days_and_must_exceed_access_ttl() -> None:
    assert SecuritySettings().max_session_age_seconds == 30 * 24 * 3600
    assert SecuritySettings(max_session_age_seconds=None).max_session_age_seconds is None
    with pytest.raises(ValidationError, match="max_session_age_seconds"):
        SecuritySettings(access_ttl_seconds=900, max_session_age_seconds=900)
