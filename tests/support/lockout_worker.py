"""A worker process for the shared-lockout test.

``python -m tests.support.lockout_worker REDIS_URL PREFIX NAME NOW GO_FILE N`` waits
for ``GO_FILE``, records N failures of NAME at time NOW, and prints the lock
lengths it started, comma-separated.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio

from fastapi_secure.accounts.lockout import Lockout
from fastapi_secure.accounts.redis import RedisLockoutStore


async def main(redis_url: str, prefix: str, name: str, now: float, n: int) -> list[float]:
    store = RedisLockoutStore.from_url(redis_url, prefix=prefix)
    lockout = Lockout(store, address=None, clock=lambda: now)
    started: list[float] = []

    async def fail() -> None:
        started.append(await lockout.failure(name))

    async with anyio.create_task_group() as group:
        for _ in range(n):
            group.start_soon(fail)
    await store.aclose()
    return started


if __name__ == "__main__":
    redis_url, prefix, name, now, go, count = sys.argv[1:7]
    deadline = time.monotonic() + 30
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    result = anyio.run(main, redis_url, prefix, name, float(now), int(count))
    print(",".join(str(value) for value in result))
