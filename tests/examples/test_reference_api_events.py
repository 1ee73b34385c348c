"""The reference API's security log: account and API key events, each once, never a secret."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from fastapi_secure.events import pseudonymize_login_name
from tests.support.reference_api import ALICE_PASSWORD, Api, bearer

pytestmark = pytest.mark.anyio


def security_events(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    return [
        record.__dict__["security_event"]
        for record in records
        if record.name == "fastapi_secure.events"
        and record.__dict__["security_event"]["type"] != "rate_limited"
    ]


async def test_logins_and_api_keys_reach_the_security_log_without_a_secret(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert (await api.register("alice@example.com", "alice", ALICE_PASSWORD)).status_code == 201
    wrong = "not-alices-password-31"
    refused = await api.client.post(
        "/auth/login",
        data={"username": "alice", "password": wrong},
        headers={"User-Agent": "journey/1"},
    )
    assert refused.status_code == 401
    tokens = await api.login("alice", ALICE_PASSWORD)
    made = await api.client.post(
        "/users/me/api-keys", headers=bearer(tokens), json={"name": "export", "scopes": []}
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert (await api.client.get("/users/me", headers={"X-API-Key": forged})).status_code == 401
    gone = await api.client.delete(
        f"/users/me/api-keys/{made.json()['id']}", headers=bearer(tokens)
    )
    assert gone.status_code == 204
    out = await api.client.post("/auth/logout", headers=bearer(tokens))
    assert out.status_code in (200, 204), out.text

    events = security_events(caplog.records)
    assert [event["type"] for event in events] == [
        "login_failed",
        "login_succeeded",
        "api_key_created",
        "api_key_refused",
        "api_key_revoked",
        "logout",
    ]
    me = (await api.client.get("/users/me", headers={"X-API-Key": key})).status_code
    assert me == 401  # revoked
    failed, succeeded, created, refusal, revoked, logout = events
    subject = succeeded["subject"]
    assert {failed["subject"], created["subject"], refusal["subject"], revoked["subject"]} == {
        subject
    }
    assert failed["reason"] == "bad credentials"
    assert failed["user_agent"] == "journey/1"
    assert failed["extra"] == {
        "cause": "wrong_password",
        "login_name_digest": pseudonymize_login_name("alice"),
    }
    assert failed["client"] is not None
    assert failed["client"].endswith(("/24", "/64"))  # the address cut to its network
    assert succeeded["extra"] == {"amr": ["pwd"]}
    assert succeeded["session_id"] == logout["session_id"]  # one session, pseudonymized
    assert refusal["reason"] == "wrong API key secret"
    assert refusal["extra"]["key_id"] == made.json()["id"]

    text = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    for secret in (
        ALICE_PASSWORD,
        wrong,
        key,
        key.rsplit("_", 1)[1],
        forged.rsplit("_", 1)[1],
        tokens["access_token"],
        tokens["refresh_token"],
    ):
        assert not re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text)
