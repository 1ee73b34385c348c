"""Two worker processes of the reference API share rate limits and token state.

Two separate ``python -m examples.reference_api serve`` processes on two
loopback ports share one fresh PostgreSQL database, the real Redis (under this
test's unique key prefix) and one signing key. Every request below is sent to a
chosen process, so each assertion says exactly which worker saw what.

Why two processes and not ``serve --workers 2``: uvicorn's workers share one
listening socket and the kernel picks the worker for each connection, so a test
cannot aim a request at "the other worker"; it could pass with every request
served by the same process and prove nothing. Two processes on two ports are the
same code path (each worker builds its own limiter and token store from the same
settings) with deterministic routing, so a ``--workers`` test would add run time
and flakiness without adding proof.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from examples.reference_api.bootstrap import bootstrap_admin
from examples.reference_api.deps import build_components
from examples.reference_api.migrate import aupgrade_to_head
from examples.reference_api.models import User
from examples.reference_api.settings import AppSettings
from pydantic import SecretStr
from sqlalchemy import select

from fastapi_secure.accounts.lockout import LockoutPolicy
from fastapi_secure.tokens.keys import Key
from tests.conftest import fresh_postgres_database

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "admin-Passphrase-for-tests-4821"
USER_PASSWORD = "violet-kettle-harbour-17"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


@dataclass
class Worker:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} log (last 3000 chars) ---\n{text[-3000:]}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(name: str, env: dict[str, str], tmp_path: Path) -> Worker:
    port = _free_port()
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "examples.reference_api", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Worker(name, port, process, log)


def _stop(worker: Worker) -> None:
    if worker.process.poll() is None:
        worker.process.terminate()
        try:
            worker.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait(timeout=STOP_TIMEOUT)


def _wait_healthy(workers: list[Worker]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    pending = list(workers)
    # trust_env=False: no proxy from the environment may see loopback traffic.
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while pending:
            worker = pending[0]
            if worker.process.poll() is not None:
                pytest.fail(
                    f"{worker.name} exited with {worker.process.returncode}\n" + worker.log_tail()
                )
            try:
                if client.get(f"{worker.base_url}/health").status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{worker.name} not healthy after {STARTUP_TIMEOUT}s\n" + worker.log_tail()
                )
            time.sleep(0.1)  # polling interval of a readiness probe, not an assertion


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards.

    Migrating here (once) keeps the two ``serve`` commands from racing each
    other through the same Alembic upgrade; theirs then finds nothing to do.
    """
    portal_cm = anyio.from_thread.start_blocking_portal()
    with portal_cm as portal:
        cm = fresh_postgres_database()
        url = portal.call(cm.__aenter__)
        try:
            portal.call(aupgrade_to_head, url)
            yield url
        finally:
            portal.call(cm.__aexit__, None, None, None)


@pytest.fixture
def workers(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[tuple[Worker, Worker]]:
    env = {
        key: value
        for key, value in os.environ.items()
        # Only this test's settings reach the workers, whatever the shell exports.
        if key.upper() not in {"DATABASE_URL", "REDIS_URL", "ENVIRONMENT", "SIGNING_KEY_FILE"}
    }
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=redis_prefix,
        SIGNING_KEY_PEM=Key.generate("EdDSA").private_pem().decode(),
        PASSWORD_HASH_PROFILE="test_only_fast",
        # Both workers race to bootstrap the same first admin at startup.
        ADMIN_EMAIL="admin@example.com",
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        PYTHONUNBUFFERED="1",
    )
    started: list[Worker] = []
    try:
        started.append(_start("worker-a", env, tmp_path))
        started.append(_start("worker-b", env, tmp_path))
        _wait_healthy(started)
        yield started[0], started[1]
    finally:
        for worker in started:
            _stop(worker)


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _register_and_login(client: httpx.Client, worker: Worker, username: str) -> dict[str, Any]:
    created = client.post(
        f"{worker.base_url}/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": USER_PASSWORD},
    )
    assert created.status_code == 201, created.text
    login = client.post(
        f"{worker.base_url}/auth/login", data={"username": username, "password": USER_PASSWORD}
    )
    assert login.status_code == 200, login.text
    tokens: dict[str, Any] = login.json()
    return tokens


def test_login_lockout_is_shared_between_workers(
    workers: tuple[Worker, Worker],
) -> None:
    a, b = workers
    allowed = LockoutPolicy().threshold  # the example uses the accounts lockout's defaults
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        created = client.post(
            f"{a.base_url}/auth/register",
            json={"email": "hank@example.com", "username": "hank", "password": USER_PASSWORD},
        )
        assert created.status_code == 201, created.text
        statuses: list[tuple[str, int]] = []
        for attempt in range(allowed + 2):
            worker = (a, b)[attempt % 2]
            response = client.post(
                f"{worker.base_url}/auth/login",
                data={"username": "hank", "password": "wrong-wrong"},
            )
            statuses.append((worker.name, response.status_code))
        # Neither worker alone saw `allowed` attempts; only a shared counter says 429.
        assert [code for _, code in statuses] == [401] * allowed + [429, 429], statuses
        assert {name for name, code in statuses if code == 429} == {"worker-a", "worker-b"}
        assert response.json()["detail"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) > 0
        # Even the right password is refused now, on either worker: the lock comes first.
        right = client.post(
            f"{b.base_url}/auth/login", data={"username": "hank", "password": USER_PASSWORD}
        )
        assert right.status_code == 429
        # The lock is per name: another account on the same workers still logs in.
        other = _register_and_login(client, b, "ivy")
        assert other["access_token"]


def test_refresh_reuse_is_caught_across_workers(workers: tuple[Worker, Worker]) -> None:
    a, b = workers
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        tokens = _register_and_login(client, a, "alice")
        for worker in (a, b):
            assert (
                client.get(f"{worker.base_url}/users/me", headers=_bearer(tokens)).status_code
                == 200
            )

        rotated = client.post(
            f"{a.base_url}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()
        assert client.get(f"{b.base_url}/users/me", headers=_bearer(new)).status_code == 200

        # The attacker replays the already rotated token at the other worker.
        replay = client.post(
            f"{b.base_url}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert replay.status_code == 401, replay.text
        assert replay.headers["www-authenticate"].startswith("Bearer")

        # Reuse killed the whole family, as seen by both workers.
        for worker in (a, b):
            me = client.get(f"{worker.base_url}/users/me", headers=_bearer(new))
            assert me.status_code == 401, (worker.name, me.text)
        again = client.post(
            f"{a.base_url}/auth/refresh", json={"refresh_token": new["refresh_token"]}
        )
        assert again.status_code == 401, again.text


def test_one_admin_is_bootstrapped_by_two_workers(workers: tuple[Worker, Worker]) -> None:
    a, b = workers
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        login = client.post(
            f"{b.base_url}/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        listed = client.get(f"{a.base_url}/admin/users", headers=_bearer(login.json()))
        assert listed.status_code == 200, listed.text
        admins = [user for user in listed.json()["items"] if "admin" in user["roles"]]
        assert [user["username"] for user in admins] == ["admin"]


@pytest.mark.anyio
async def test_concurrent_admin_bootstrap_creates_one_admin_and_neither_fails(
    postgres_url: str,
) -> None:
    """The race the two workers above run at startup, made tight: both pass the
    "no admin yet" check before either commits, and the loser must not crash."""
    await aupgrade_to_head(postgres_url)
    settings = AppSettings(
        database_url=SecretStr(postgres_url),
        password_hash_profile="test_only_fast",
        signing_key_pem=SecretStr(Key.generate("EdDSA").private_pem().decode()),
        admin_email="admin@example.com",
        admin_password=SecretStr(ADMIN_PASSWORD),
    )
    components = [build_components(settings) for _ in range(2)]
    try:
        results = await asyncio.gather(*(bootstrap_admin(c) for c in components))
        assert sorted(results) == [False, True]
        async with components[0].db.transaction() as session:
            names = (await session.execute(select(User.username))).scalars().all()
        assert names == ["admin"]
    finally:
        for c in components:
            await c.db.dispose()
