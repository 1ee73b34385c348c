"""API keys report to the security log: created, revoked, rotated, refused; never a secret."""

# No `from __future__ import annotations`: FastAPI resolves the endpoint's annotations.

import logging
import re
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from fastapi_secure.apikeys.auth import APIKeyAuth
from fastapi_secure.apikeys.keys import APIKeyManager, CreatedAPIKey, InvalidAPIKeyError
from fastapi_secure.apikeys.stores.base import APIKey
from fastapi_secure.apikeys.stores.memory import MemoryAPIKeyStore
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.events import EventType, SecurityEvent, SecurityEvents
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import Grant

pytestmark = pytest.mark.anyio

PEPPER = "api-key-events-pepper-of-at-least-32-bytes"


class Recorder:
    def __init__(self) -> None:
        self.events: list[SecurityEvent] = []

    async def __call__(self, event: SecurityEvent) -> None:
        self.events.append(event)

    def take(self) -> list[SecurityEvent]:
        taken, self.events = self.events, []
        return taken


def one(events: list[SecurityEvent], kind: EventType) -> SecurityEvent:
    assert [event.type for event in events] == [kind], [event.type.value for event in events]
    return events[0]


def make(clock: FakeClock, recorder: Recorder, **options: object) -> APIKeyManager:
    events = SecurityEvents(hook=recorder, client_address="full")
    return APIKeyManager(
        MemoryAPIKeyStore(),
        pepper=PEPPER,
        events=events,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


def secret_of(created: CreatedAPIKey) -> str:
    return created.key.rsplit("_", 1)[1]


def assert_no_secret(keys: list[CreatedAPIKey], records: list[logging.LogRecord]) -> None:
    blob = "\n".join(f"{record.getMessage()} {record.__dict__!r}" for record in records)
    assert "security event" in blob
    for created in keys:
        for secret in (created.key, secret_of(created)):
            assert not re.search(re.escape(secret), blob), "an API key secret reached a log line"


async def test_the_key_lifecycle_reports_each_step_once(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    manager = make(fake_clock, recorder)
    created = await manager.create(
        "alice", name="ci deploy", scopes=["read"], roles=["bot"], expires_in=3600
    )
    event = one(recorder.take(), EventType.API_KEY_CREATED)
    assert event.subject == "alice"
    assert dict(event.extra) == {
        "key_id": created.record.id,
        "key_prefix": "fsk_",
        "key_name": "ci deploy",
        "scopes": ["read"],
        "roles": ["bot"],
        "expires_at": fake_clock() + 3600,
    }

    await manager.verify(created.key)
    assert recorder.take() == []  # a good key is no event (it is every request)

    successor = await manager.rotate(created.record.id, subject="alice", overlap=60)
    rotated = one(recorder.take(), EventType.API_KEY_ROTATED)
    assert rotated.subject == "alice"
    assert dict(rotated.extra) == {
        "key_id": created.record.id,
        "key_prefix": "fsk_",
        "successor_key_id": successor.record.id,
        "old_key_until": fake_clock() + 60,
        "expires_at": fake_clock() + 3600,
    }

    await manager.revoke(successor.record.id, subject="alice")
    revoked = one(recorder.take(), EventType.API_KEY_REVOKED)
    assert (revoked.subject, revoked.extra["key_id"]) == ("alice", successor.record.id)
    assert_no_secret([created, successor], caplog.records)


async def test_every_refused_well_formed_key_is_reported_by_its_id(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    manager = make(fake_clock, recorder)
    kept = await manager.create("alice", name="kept")
    revoked = await manager.create("alice", name="revoked")
    expiring = await manager.create("bob", name="short", expires_in=10)
    await manager.revoke(revoked.record.id, subject="alice")
    recorder.take()
    fake_clock.advance(11)
    wrong = kept.key[:-1] + ("A" if kept.key[-1] != "A" else "B")
    unknown = "fsk_" + "Z" * 12 + "_" + secret_of(kept)

    cases = [
        (wrong, "alice", kept.record.id, "wrong API key secret"),
        (revoked.key, "alice", revoked.record.id, "revoked API key"),
        (expiring.key, "bob", expiring.record.id, "expired API key"),
        (unknown, None, "Z" * 12, "unknown API key id"),
    ]
    for key, subject, key_id, reason in cases:
        with pytest.raises(InvalidAPIKeyError):
            await manager.verify(key, client="198.51.100.9", user_agent="curl/8")
        event = one(recorder.take(), EventType.API_KEY_REFUSED)
        assert (event.subject, event.reason, event.client, event.user_agent) == (
            subject,
            reason,
            "198.51.100.9",
            "curl/8",
        )
        assert dict(event.extra) == {"key_id": key_id, "key_prefix": "fsk_"}

    with pytest.raises(InvalidAPIKeyError):
        await manager.verify("fsk_not-a-key")
    assert recorder.take() == []  # a malformed key has no id to report
    assert_no_secret([kept, revoked, expiring], caplog.records)
    refusals = [r for r in caplog.records if "api_key_refused" in r.getMessage()]
    assert {r.levelno for r in refusals} == {logging.WARNING}
    for text in (wrong, unknown):
        assert text not in "\n".join(repr(r.__dict__) for r in caplog.records)


async def test_a_key_whose_owner_is_gone_is_refused_and_reported(fake_clock: FakeClock) -> None:
    async def nobody(record: APIKey) -> Grant | None:
        return None

    recorder = Recorder()
    manager = make(fake_clock, recorder, grant_loader=nobody)
    created = await manager.create("carol", name="orphan")
    recorder.take()
    with pytest.raises(InvalidAPIKeyError):
        await manager.authenticate(created.key, client="198.51.100.9")
    event = one(recorder.take(), EventType.API_KEY_REFUSED)
    assert (event.subject, event.reason, event.client) == (
        "carol",
        "the key's owner is gone or disabled",
        "198.51.100.9",
    )


async def test_a_failing_hook_never_refuses_a_good_key(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(event: SecurityEvent) -> None:
        raise RuntimeError("hook down")

    manager = APIKeyManager(
        MemoryAPIKeyStore(), pepper=PEPPER, events=SecurityEvents(hook=broken), clock=fake_clock
    )
    created = await manager.create("alice", name="ci")
    assert (await manager.authenticate(created.key)).sub == "alice"
    with pytest.raises(InvalidAPIKeyError):
        await manager.verify(created.key[:-1] + ("A" if created.key[-1] != "A" else "B"))
    assert [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("proxies", "expected"),
    [(None, "10.0.0.1"), (TrustedProxies(["10.0.0.0/8"]), "203.0.113.5")],
)
async def test_the_dependency_reports_the_client_behind_trusted_proxies(
    fake_clock: FakeClock, proxies: TrustedProxies | None, expected: str
) -> None:
    recorder = Recorder()
    manager = make(fake_clock, recorder)
    api_key = APIKeyAuth(manager, trusted_proxies=proxies)
    app = FastAPI()

    @app.get("/me")
    async def me(claims: Annotated[AccessClaims, Depends(api_key)]) -> str:
        return claims.sub

    created = await manager.create("alice", name="ci")
    recorder.take()
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        wrong = created.key[:-1] + ("A" if created.key[-1] != "A" else "B")
        answer = await http.get(
            "/me",
            headers={
                "X-API-Key": wrong,
                "X-Forwarded-For": "203.0.113.5",
                "User-Agent": "deploy-bot/3",
            },
        )
    assert answer.status_code == 401
    event = one(recorder.take(), EventType.API_KEY_REFUSED)
    assert (event.client, event.user_agent, event.subject) == (expected, "deploy-bot/3", "alice")
