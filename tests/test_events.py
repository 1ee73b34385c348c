"""Security events: the model, the redaction step, the logging sink and the app hook."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.events import (
    EVENTS_LOGGER,
    EventSink,
    EventType,
    SecurityEvent,
    SecurityEvents,
    coarsen_address,
    emit_event,
    pseudonymize_login_name,
    pseudonymize_session,
    redact_text,
)
from fastapi_secure.testing import FakeClock

pytestmark = pytest.mark.anyio

JWT = (
    "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9"
    ".eyJzdWIiOiIxIiwianRpIjoiYWJjIn0"
    ".c2lnbmF0dXJlLW9mLXRoZS10b2tlbi1ub3QtcmVhbA"
)
OPAQUE = "rt_9fK2mQ7xLp4Zs8Vb1Nc6Hd3Jw0Ty5Ra"
PASSWORD = "Tr0ub4dor-horse#3"
SPACED = "correct horse battery staple"


def scope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "http",
        "client": ("203.0.113.77", 51000),
        "headers": [(b"user-agent", b"curl/8.5.0"), (b"x-forwarded-for", b"198.51.100.9")],
    }
    base.update(overrides)
    return base


def field(record: logging.LogRecord, name: str) -> Any:
    """A field the sink put on the record with ``extra=``."""
    return record.__dict__[name]


class Collector:
    def __init__(self) -> None:
        self.events: list[SecurityEvent] = []

    async def __call__(self, event: SecurityEvent) -> None:
        self.events.append(event)


# --- the model ----------------------------------------------------------------------------


def test_create_reads_client_and_user_agent_from_the_scope(fake_clock: FakeClock) -> None:
    event = SecurityEvent.create(
        "login_failed", scope=scope(), clock=fake_clock, subject="42", reason="bad password"
    )
    assert event.type is EventType.LOGIN_FAILED
    assert event.time == fake_clock()
    assert event.client == "203.0.113.77"
    assert event.user_agent == "curl/8.5.0"


def test_create_believes_forwarding_headers_only_from_trusted_proxies() -> None:
    untrusted = SecurityEvent.create(EventType.RATE_LIMITED, scope=scope())
    assert untrusted.client == "203.0.113.77"
    proxies = TrustedProxies(["203.0.113.0/24"])
    trusted = SecurityEvent.create(EventType.RATE_LIMITED, scope=scope(), trusted_proxies=proxies)
    assert trusted.client == "198.51.100.9"
    no_peer = SecurityEvent.create(EventType.RATE_LIMITED, scope=scope(client=None, headers=[]))
    assert no_peer.client is None
    assert no_peer.user_agent is None


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="not_an_event"):
        SecurityEvent.create("not_an_event")


def test_to_dict_is_json_ready() -> None:
    event = SecurityEvent(EventType.LOGOUT, time=1_800_000_000.5, subject="7", extra={"n": 1})
    data = event.to_dict()
    assert data["type"] == "logout"
    assert data["time"] == "2027-01-15T08:00:00.500000Z"
    json.dumps(data)


# --- redaction: attempts to smuggle secrets --------------------------------------------------


async def test_no_secret_reaches_the_log_or_the_hook(caplog: pytest.LogCaptureFixture) -> None:
    hook = Collector()
    sink = SecurityEvents(hook=hook)
    event = SecurityEvent.create(
        EventType.LOGIN_FAILED,
        scope=scope(headers=[(b"user-agent", f"evil Bearer {OPAQUE}".encode())]),
        subject="alice",
        session_id="family-123",
        reason=f"bad password {SPACED!r} for token {JWT} password={PASSWORD}",
        extra={
            "password": PASSWORD,
            "refresh_token": OPAQUE,
            "Authorization": f"Bearer {JWT}",
            "api_key": "sk_live_abcdef",
            "otp": "123456",
            "nested": {"client_secret": "s3cr3t", "list": [JWT, SecretStr(PASSWORD)]},
            "raw": PASSWORD.encode(),
            "note": f"header was Authorization: Basic {OPAQUE}",
            "key_id": "k1",
            "api_key_prefix": "fsk_1a2b",
        },
    )
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        await sink.emit(event)
    [record] = caplog.records
    rendered = json.dumps(field(record, "security_event")) + record.getMessage() + repr(hook.events)
    rendered += json.dumps({k: v for k, v in vars(record).items() if k.startswith("event_")})
    for secret in (
        PASSWORD,
        SPACED,
        JWT,
        OPAQUE,
        "sk_live_abcdef",
        "123456",
        "s3cr3t",
        "family-123",
    ):
        assert secret not in rendered
    assert "203.0.113.77" not in rendered
    extra = field(record, "security_event")["extra"]
    assert extra["password"] == "[redacted]"
    assert extra["nested"]["list"] == ["[redacted]", "[SecretStr]"]
    # Identifiers next to secrets stay useful.
    assert extra["key_id"] == "k1"
    assert extra["api_key_prefix"] == "fsk_1a2b"
    assert field(record, "event_subject") == "alice"
    assert field(record, "event_client") == "203.0.113.0/24"
    assert field(record, "event_session_id") == pseudonymize_session("family-123")
    assert hook.events[0].extra == extra


def test_control_characters_cannot_forge_log_lines() -> None:
    forged = "ok\nsecurity event login_succeeded subject=admin\r\x1b[2J\u2028"
    assert "\n" not in redact_text(forged)
    assert "\r" not in redact_text(forged)
    assert "\x1b" not in redact_text(forged)
    assert "\u2028" not in redact_text(forged)


def test_texts_and_extras_are_bounded() -> None:
    sink = SecurityEvents()
    huge = {f"k{i}": "v" * 10_000 for i in range(100)}
    deep: dict[str, Any] = {"a": {"b": {"c": {"d": {"e": 1}}}}}
    event = SecurityEvent(
        EventType.RATE_LIMITED, time=0, reason="x " * 10_000, extra={**huge, "deep": deep}
    )
    clean = sink.redact(event)
    assert clean.reason is not None
    assert len(clean.reason) <= 256
    assert len(clean.extra) <= 33
    assert all(len(v) <= 256 for v in clean.extra.values() if isinstance(v, str))


def test_deep_values_and_odd_types_are_flattened() -> None:
    sink = SecurityEvents()
    event = SecurityEvent(
        EventType.RATE_LIMITED,
        time=0,
        extra={
            "deep": {"a": {"b": {"c": {"d": 1}}}},
            "ratio": float("nan"),
            "kind": EventType.LOGOUT,
            "ok": True,
            "set": {"b", "a"},
            "obj": object(),
        },
    )
    extra = sink.redact(event).extra
    assert extra["deep"] == {"a": {"b": {"c": "[nested]"}}}
    assert extra["ratio"] == "nan"
    assert extra["kind"] == "logout"
    assert extra["ok"] is True
    assert extra["set"] == ["a", "b"]
    assert extra["obj"] == "[object]"


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_redact_text_never_grows_unbounded_nor_keeps_control_characters(text: str) -> None:
    clean = redact_text(text)
    assert len(clean) <= 256
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in clean)


@given(st.from_regex(r"[A-Za-z0-9_-]{20,60}", fullmatch=True))
@settings(max_examples=200, deadline=None)
def test_a_jwt_shaped_value_is_always_redacted(segment: str) -> None:
    token = f"eyJ{segment}.{segment}.{segment}"
    assert token not in redact_text(f"token was {token} here")


# --- client addresses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "mode", "expected"),
    [
        ("203.0.113.77", "network", "203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", "network", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.77", "network", "203.0.113.0/24"),
        ("[2001:db8::1]", "full", "2001:db8::1"),
        ("203.0.113.77", "full", "203.0.113.77"),
        ("203.0.113.77", "omit", None),
        ("not-an-ip", "full", None),
        (None, "network", None),
    ],
)
def test_client_address_modes(address: str | None, mode: Any, expected: str | None) -> None:
    assert coarsen_address(address, mode) == expected


async def test_client_address_can_be_omitted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        await SecurityEvents(client_address="omit").emit(
            SecurityEvent.create(EventType.LOGOUT, scope=scope())
        )
    assert field(caplog.records[0], "event_client") is None
    assert "203.0.113" not in caplog.text


async def test_session_ids_kept_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        await SecurityEvents(pseudonymize_sessions=False).emit(
            SecurityEvent(EventType.LOGOUT, time=0, session_id="fam-1")
        )
    assert field(caplog.records[0], "event_session_id") == "fam-1"


# --- the sink ------------------------------------------------------------------------------


async def test_levels_follow_the_event_kind(caplog: pytest.LogCaptureFixture) -> None:
    sink = SecurityEvents(levels={EventType.RATE_LIMITED: logging.DEBUG})
    with caplog.at_level(logging.DEBUG, logger=EVENTS_LOGGER):
        for kind in (
            EventType.LOGIN_SUCCEEDED,
            EventType.LOGIN_FAILED,
            EventType.REFRESH_REUSE_DETECTED,
            EventType.RATE_LIMITED,
        ):
            await sink.emit(SecurityEvent(kind, time=0))
    assert [r.levelno for r in caplog.records] == [
        logging.INFO,
        logging.WARNING,
        logging.ERROR,
        logging.DEBUG,
    ]
    assert caplog.records[0].getMessage() == "security event login_succeeded"


async def test_a_failing_hook_never_breaks_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(event: SecurityEvent) -> None:
        raise RuntimeError("sink down: token eyJsecret.leaked")

    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        await SecurityEvents(hook=broken).emit(SecurityEvent(EventType.LOGOUT, time=0))
    assert "hook failed on logout: RuntimeError" in caplog.text
    # The class only: a hook's message, or a traceback's, may hold what it was sending.
    assert "eyJsecret" not in caplog.text
    assert all(record.exc_info is None for record in caplog.records)


async def test_a_hanging_hook_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    async def hangs(event: SecurityEvent) -> None:
        await anyio.sleep_forever()

    sink = SecurityEvents(hook=hangs, hook_timeout=0.01, log=False)
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        await sink.emit(SecurityEvent(EventType.LOGOUT, time=0))
    assert "timed out" in caplog.text
    assert "security event logout" not in caplog.text


async def test_an_unredactable_event_is_dropped_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = SecurityEvent(EventType.LOGOUT, time=0, extra=None)  # type: ignore[arg-type]
    await SecurityEvents().emit(bad)
    assert "could not be redacted" in caplog.text


async def test_emit_event_guards_any_sink(caplog: pytest.LogCaptureFixture) -> None:
    class Exploding:
        async def emit(self, event: SecurityEvent) -> None:
            raise RuntimeError("boom")

    assert isinstance(Exploding(), EventSink)
    await emit_event(None, EventType.LOGOUT)
    await emit_event(Exploding(), EventType.LOGOUT, subject="1")
    assert "could not be emitted: RuntimeError" in caplog.text
    assert "boom" not in caplog.text
    hook = Collector()
    await emit_event(SecurityEvents(hook=hook, log=False), EventType.LOGOUT, subject="1")
    assert [e.subject for e in hook.events] == ["1"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_address": "partial"},
        {"ipv4_prefix": 33},
        {"ipv6_prefix": -1},
        {"hook": "not callable"},
        {"hook_timeout": 0},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        SecurityEvents(**kwargs)


def test_repr_shows_no_hook_internals() -> None:
    assert repr(SecurityEvents()) == (
        "SecurityEvents(logger='fastapi_secure.events', hook=False, client_address='network')"
    )


@pytest.mark.parametrize(
    "reason",
    [
        "refresh token reused; token family revoked",
        "Origin or Referer not in allowed_origins",
        "CSRF header does not match the CSRF cookie",
        "limit 5-per-60s exceeded",
        "rate-limit storage redis unavailable",
        "bearer token expired",
    ],
)
def test_ordinary_reasons_are_kept_as_written(reason: str) -> None:
    assert redact_text(reason) == reason


def test_the_events_module_is_core() -> None:
    """Importing it (as the token issuer does) pulls in neither FastAPI nor Starlette."""
    import subprocess
    import sys

    code = (
        "import sys, fastapi_secure.events; "
        "print(','.join(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('fastapi', 'starlette'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_identifiers_are_kept_even_when_long() -> None:
    user = "3f2b9c1e-8a47-4d2e-9b1f-0c6e5a7d8f90"
    request = "9b1f0c6e5a7d8f903f2b9c1e8a474d2e"
    sink = SecurityEvents(pseudonymize_sessions=False)
    event = SecurityEvent(
        EventType.LOGOUT,
        time=0,
        subject=user,
        session_id=f"{user}.{request}",
        extra={"request_id": request, "note": request, "token_id": request},
    )
    clean = sink.redact(event)
    assert clean.subject == user
    assert clean.session_id == f"{user}.{request}"
    assert clean.extra == {"request_id": request, "note": "[redacted]", "token_id": request}


def test_a_jwt_is_redacted_even_as_a_subject() -> None:
    clean = SecurityEvents().redact(SecurityEvent(EventType.LOGOUT, time=0, subject=JWT))
    assert clean.subject == "[redacted]"


def test_a_login_name_becomes_a_stable_digest_that_is_not_a_session_digest() -> None:
    name = "alice@example.io"
    digest = pseudonymize_login_name(name)
    assert digest == pseudonymize_login_name(name)
    assert len(digest) == 16
    assert set(digest) <= set("0123456789abcdef")
    assert name not in digest
    assert digest != pseudonymize_login_name("bob@example.io")
    assert digest != pseudonymize_session(name)  # a separate domain
    assert pseudonymize_login_name("\ud800")  # a lone surrogate from JSON does not raise
