"""One TOTP code, two worker processes sharing Redis, 20 concurrent uses: exactly one wins."""

from __future__ import annotations

import json
import subprocess
import sys

import pyotp
import pytest
import redis

from fastapi_secure.mfa import SecretBox

pytestmark = [pytest.mark.redis, pytest.mark.slow]

NOW = 1_800_000_000.0

WORKER = r"""
import json, sys
import anyio, redis
from fastapi_secure.mfa import TOTP, OTPReplayError, SecretBox, TOTPAuthenticator
from fastapi_secure.mfa.stores.redis import RedisMFAStore

url, prefix, key, encrypted, code, now = sys.argv[1:7]


async def main() -> None:
    store = RedisMFAStore.from_url(url, prefix=prefix)
    totp = TOTP(box=SecretBox([key]), used_codes=store, issuer="x", clock=lambda: float(now))
    record = TOTPAuthenticator("alice", encrypted, confirmed_at=float(now))
    outcomes = []

    async def attempt() -> None:
        try:
            await totp.verify(record, code)
            outcomes.append("accepted")
        except OTPReplayError:
            outcomes.append("replay")

    print("ready", flush=True)
    barrier = redis.Redis.from_url(url)
    barrier.blpop([prefix + "go"], timeout=30)  # every worker starts together
    barrier.close()
    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(attempt)
    await store.aclose()
    print(json.dumps(outcomes), flush=True)


anyio.run(main)
"""


def test_two_processes_one_code_exactly_one_accepted(redis_url: str, redis_prefix: str) -> None:
    key = SecretBox.generate_key()
    secret = pyotp.random_base32()
    encrypted = SecretBox([key]).encrypt(secret)
    code = pyotp.TOTP(secret).at(NOW)
    args = [redis_url, redis_prefix, key, encrypted, code, str(NOW)]
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        client = redis.Redis.from_url(redis_url)
        client.rpush(f"{redis_prefix}go", "1", "1")
        client.close()
        outcomes: list[str] = []
        for worker in workers:
            out, _ = worker.communicate(timeout=60)
            assert worker.returncode == 0
            outcomes += json.loads(out.strip().splitlines()[-1])
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert sorted(outcomes) == ["accepted"] + ["replay"] * 19
