"""Overhead of one rate limit beside the bare route, measured in the same run.

    python benchmarks/ratelimit.py [--requests 2000] [--redis redis://127.0.0.1:6379/0]

Requests go through the full ASGI stack in process (httpx.ASGITransport), one
at a time, so the figures are per-request latency without network noise
between client and app. Each variant runs several rounds; the best round
counts (the least disturbed by other load on the machine).
"""

from __future__ import annotations

import argparse
import socket
import time
import uuid
from urllib.parse import urlsplit

import anyio
import httpx
from fastapi import Depends, FastAPI

from fastapi_secure.ratelimit import RateLimiter


def build(limiter: RateLimiter | None) -> FastAPI:
    app = FastAPI()
    dependencies = [Depends(limiter.limit("1000000/hour"))] if limiter else []

    @app.get("/", dependencies=dependencies)
    async def index() -> dict[str, bool]:
        return {"ok": True}

    return app


async def one_round(http: httpx.AsyncClient, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        response = await http.get("/")
        if response.status_code != 200:
            raise RuntimeError(f"unexpected {response.status_code}")
    return (time.perf_counter() - started) / requests


async def measure(
    variants: list[tuple[str, RateLimiter | None]], requests: int, rounds: int
) -> dict[str, float]:
    """Best round per variant; variants interleave so background load hits them alike."""
    clients = {
        name: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build(limiter), client=("203.0.113.1", 4711)),
            base_url="http://bench",
        )
        for name, limiter in variants
    }
    best = dict.fromkeys(clients, float("inf"))
    try:
        for http in clients.values():
            await one_round(http, 50)  # warm-up: connection pools, caches
        for _ in range(rounds):
            for name, http in clients.items():
                best[name] = min(best[name], await one_round(http, requests))
    finally:
        for http in clients.values():
            await http.aclose()
    return best


def redis_up(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


async def main(requests: int, rounds: int, redis_url: str) -> None:
    variants: list[tuple[str, RateLimiter | None]] = [
        ("bare route", None),
        ("memory, sliding-window-counter", RateLimiter()),
        ("memory, moving-window", RateLimiter(strategy="moving-window")),
    ]
    if redis_up(redis_url):
        prefix = f"fs-bench:{uuid.uuid4().hex}:"
        variants += [
            ("redis, sliding-window-counter", RateLimiter(redis_url, key_prefix=prefix)),
            (
                "redis, moving-window",
                RateLimiter(redis_url, strategy="moving-window", key_prefix=prefix),
            ),
            ("redis, no headers", RateLimiter(redis_url, headers=False, key_prefix=prefix)),
        ]
    else:
        print(f"(Redis at {redis_url} unreachable: Redis variants skipped)")
    results = await measure(variants, requests, rounds)
    bare = results["bare route"]
    print(f"{requests} requests x {rounds} rounds, best round, per request:")
    for name, seconds in results.items():
        print(f"  {name:34s} {seconds * 1e6:9.1f} us   x{seconds / bare:5.2f} of bare")
    for _, limiter in variants:
        if limiter is not None:
            if limiter.storage.__class__.__name__ == "RedisStorage":
                await limiter.storage.reset()
            await limiter.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    arguments = parser.parse_args()
    anyio.run(main, arguments.requests, arguments.rounds, arguments.redis)
