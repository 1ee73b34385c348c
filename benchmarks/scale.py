"""How cost grows with what the stores hold.

    python benchmarks/scale.py [--sizes 1 10000 100000] [--redis URL] [--limiter-keys 100000]

Token stores: for each size, that many live sessions (token families) are
created through the store's own API, then ``check_access`` (the revocation
check of every authenticated request) is timed on one of them; memory per
session is the growth of the Python heap (``tracemalloc``) for the memory
store, of Redis' ``used_memory`` for the Redis store, divided by the size.

Limiter: ``memory://`` with that many distinct client keys, each hit once on
a one-second rate; its memory per key; then, after the window, one more hit
lets ``limits``' expiry task run and the count of entries left is reported
(expired entries must go away).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
import uuid
from typing import Any

from fastapi_secure.tokens.stores.base import new_family_id
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

TTL = 3600.0


async def fill(store: Any, size: int, start: int) -> tuple[str, str]:
    """Create sessions ``start`` .. ``size - 1``; the subject and family of the last."""
    subject = family = ""
    batch: list[Any] = []
    for index in range(start, size):
        subject = f"user-{index}"
        family = new_family_id(subject)
        batch.append(store.create_family(subject, family, refresh_jti=f"r{index}", ttl=TTL))
        if len(batch) >= 64:
            await asyncio.gather(*batch)
            batch = []
    await asyncio.gather(*batch)
    return subject, family


async def time_check(store: Any, subject: str, family: str, number: int = 2000) -> float:
    """µs of one ``check_access``: the fastest of ten rounds spread over a few seconds.

    The fastest, as in ``run.py``: other load only ever adds time. Spread out,
    because right after a million writes Redis was seen busy for some seconds
    (checks 2-4x slower, then back to the 100k figure).
    """
    rounds = []
    for _ in range(10):
        started = time.perf_counter()
        for _ in range(number // 10):
            await store.check_access(subject, family, jti="access")
        rounds.append((time.perf_counter() - started) / (number // 10) * 1e6)
        await asyncio.sleep(0.5)
    return min(rounds)


async def memory_store(sizes: list[int]) -> list[tuple[int, float, float]]:
    store = MemoryTokenStore()
    tracemalloc.start()
    gc.collect()
    baseline = tracemalloc.get_traced_memory()[0]
    rows = []
    done = 0
    for size in sizes:
        subject, family = await fill(store, size, done)
        done = size
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
        tracemalloc.stop()  # tracing slows every allocation: time without it
        micros = await time_check(store, subject, family)
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0] - grown
        rows.append((size, micros, grown / size))
    tracemalloc.stop()
    return rows


async def redis_store(url: str, sizes: list[int]) -> list[tuple[int, float, float]]:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    prefix = f"fs-scale:{uuid.uuid4().hex}:"
    store = RedisTokenStore.from_url(url, prefix=prefix)
    client: Any = store.client
    rows = []
    try:
        baseline = int((await client.info("memory"))["used_memory"])
        done = 0
        for size in sizes:
            subject, family = await fill(store, size, done)
            done = size
            used = int((await client.info("memory"))["used_memory"]) - baseline
            micros = await time_check(store, subject, family)
            rows.append((size, micros, used / size))
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=5000)]
        for start in range(0, len(keys), 5000):
            await client.delete(*keys[start : start + 5000])
        await store.aclose()
    return rows


async def limiter_keys(count: int, seconds: float = 2.0) -> tuple[float, float, int, int, float]:
    """µs per hit at steady state, bytes per key, entries before and after the
    window, and the longest wait of one hit (ms).

    Hits are timed with the event loop turning between them, as in a server, so
    the storage's background expiry passes are paid for as they would be: for
    longer than one pacing interval, so a pass is amortized as it is in use, and
    the longest wait shows how long a pass holds the loop.
    """
    import limits
    from limits.aio.strategies import SlidingWindowCounterRateLimiter

    from fastapi_secure.ratelimit import RateLimiter

    storage: Any = RateLimiter("memory://").storage  # the storage the limiter opens
    strategy = SlidingWindowCounterRateLimiter(storage)
    item = limits.parse("5/second")
    tracemalloc.start()
    gc.collect()
    baseline = tracemalloc.get_traced_memory()[0]
    for index in range(count):
        await strategy.hit(item, "fastapi-secure", f"client-{index}")
    gc.collect()
    per_key = (tracemalloc.get_traced_memory()[0] - baseline) / count
    tracemalloc.stop()
    before = len(storage.storage)
    seconds = max(seconds, count / storage.KEYS_PER_SECOND + 1.0)
    hits = 0
    longest = 0.0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        one = time.perf_counter()
        await strategy.hit(item, "fastapi-secure", f"client-{hits % count}")
        await asyncio.sleep(0)
        longest = max(longest, time.perf_counter() - one)
        hits += 1
    per_hit = (time.perf_counter() - started) / hits * 1e6
    await asyncio.sleep(2.1)  # past both windows of the one-second rate
    storage._next_pass = 0.0  # let the next hit start a pass now
    await strategy.hit(item, "fastapi-secure", "late")
    if storage.timer is not None:
        await storage.timer
    after = len(storage.storage)
    return per_hit, per_key, before, after, longest * 1e3


def report(title: str, rows: list[tuple[int, float, float]]) -> list[str]:
    lines = [f"| {title}: live sessions | µs per check | bytes per session |", "|---:|---:|---:|"]
    lines += [f"| {size:,} | {micros:.1f} | {per:.0f} |" for size, micros, per in rows]
    return lines


async def run(sizes: list[int], redis_url: str | None, keys: int) -> list[str]:
    lines = report("memory store", await memory_store(sizes))
    if redis_url:
        lines += ["", *report("Redis store", await redis_store(redis_url, sizes))]
    if keys:
        lines += [
            "",
            "| limiter memory://: distinct keys | µs per hit | longest wait (ms) "
            "| bytes per key | entries | entries after the window |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for size in sorted({1, *(n for n in sizes if n <= keys), keys}):
            per_hit, per_key, before, after, longest = await limiter_keys(size)
            lines.append(
                f"| {size:,} | {per_hit:.1f} | {longest:.1f} | {per_key:.0f} "
                f"| {before:,} | {after:,} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10_000, 100_000])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--limiter-keys", type=int, default=100_000)
    args = parser.parse_args()
    lines = asyncio.run(
        run(sorted(args.sizes), None if args.no_redis else args.redis, args.limiter_keys)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
