"""Every block of fastapi-secure beside bare FastAPI and the anchors, in one run.

    pip install -r benchmarks/requirements.txt      # the anchors, never library deps
    python benchmarks/run.py [--quick] [--no-http] [--redis URL] [--write docs/performance.md]

In process: each app (see ``benchmarks/apps.py``) is called at the ASGI level,
one request at a time, no client in the loop; apps take turns in short rounds
so background load on a shared machine hits them alike, and the median round
counts. Over HTTP: each app runs alone under uvicorn (one worker) on loopback
and an httpx async client sends requests from a bounded number of concurrent
tasks for a bounded time; req/s and the 99th percentile latency are reported.

Ratios to bare FastAPI measured in the same run are the claims; the absolute
figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps import BUILDERS, REDIS_APPS, Built, available  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HTTP_APPS = (
    "bare FastAPI",
    "secure headers",
    "RateLimiter memory",
    "RateLimiter redis",
    "BearerAuth redis",
    "full stack memory",
    "full stack redis",
    "anchor: fastapi-users + slowapi + secure",
)


def redis_up(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


async def call(app: Any, headers: list[tuple[bytes, bytes]]) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), *headers],
        "server": ("bench", 80),
        "client": ("203.0.113.7", 40000),
    }
    await app(scope, receive, send)
    return status


async def one_round(built: Built, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        status = await call(built.app, built.headers)
        if status != 200:
            raise RuntimeError(f"unexpected status {status}")
    return (time.perf_counter() - started) / requests


async def in_process(
    names: list[str], redis_url: str, requests: int, rounds: int
) -> dict[str, float]:
    """Median seconds per request of each app."""
    built = {name: await BUILDERS[name](redis_url) for name in names}
    try:
        for app in built.values():
            await one_round(app, 100)  # warm-up: pools, caches, scripts loaded
        samples: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(rounds):
            for name, app in built.items():
                samples[name].append(await one_round(app, requests))
    finally:
        for app in built.values():
            for close in app.close:
                await close()
    return {name: statistics.median(values) for name, values in samples.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def load(port: int, headers: dict[str, str], seconds: float, tasks: int) -> tuple[float, float]:
    """req/s and p99 (seconds) of ``tasks`` concurrent clients for ``seconds``."""
    import httpx

    latencies: list[float] = []
    limits = httpx.Limits(max_connections=tasks, max_keepalive_connections=tasks)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=10
    ) as client:
        for _ in range(20):
            (await client.get("/")).raise_for_status()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get("/")
                if response.status_code != 200:
                    raise RuntimeError(f"unexpected status {response.status_code}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return len(latencies) / elapsed, latencies[int(len(latencies) * 0.99) - 1]


async def over_http(
    names: list[str], redis_url: str, seconds: float, tasks: int
) -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    for name in names:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "apps.py"), name, str(port),
             "--redis", redis_url],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            # The server prints the headers a valid request carries (its own token:
            # a memory store knows only the tokens its own process issued).
            assert server.stdout is not None
            headers = json.loads(server.stdout.readline())
            for _ in range(200):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                await asyncio.sleep(0.05)
            results[name] = await load(port, headers, seconds, tasks)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return results


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in (
        "fastapi-secure", "fastapi", "starlette", "pydantic", "limits", "redis", "pyjwt",
        "uvicorn", "httpx", "slowapi", "fastapi-limiter", "fastapi-users", "authx", "secure",
    ):  # fmt: skip
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def table(
    inproc: dict[str, float], http: dict[str, tuple[float, float]]
) -> list[str]:
    bare = inproc["bare FastAPI"]
    lines = [
        "| app | µs/request (in process) | x bare | req/s (HTTP) | x bare | p99 ms (HTTP) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    bare_rps = http.get("bare FastAPI", (0.0, 0.0))[0]
    for name, seconds in inproc.items():
        row = f"| {name} | {seconds * 1e6:.1f} | {seconds / bare:.2f}x |"
        if name in http and bare_rps:
            rps, p99 = http[name]
            row += f" {rps:.0f} | {bare_rps / rps:.2f}x | {p99 * 1e3:.1f} |"
        else:
            row += " | | |"
        lines.append(row)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--http-seconds", type=float, default=4.0)
    parser.add_argument("--http-tasks", type=int, default=8)
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter loads")
    parser.add_argument("--only", nargs="*", help="names of apps to run")
    parser.add_argument("--write", metavar="PATH", help="write the Markdown page here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests, args.http_seconds = 5, 200, 2.0
    names = [name for name in BUILDERS if available(name)]
    if args.only:
        names = [name for name in names if name in args.only or name == "bare FastAPI"]
    if not redis_up(args.redis):
        print(f"(Redis at {args.redis} unreachable: Redis apps skipped)")
        names = [name for name in names if name not in REDIS_APPS]
    inproc = asyncio.run(in_process(names, args.redis, args.requests, args.rounds))
    http: dict[str, tuple[float, float]] = {}
    if not args.no_http:
        http = asyncio.run(
            over_http(
                [name for name in HTTP_APPS if name in names],
                args.redis,
                args.http_seconds,
                args.http_tasks,
            )
        )
    lines = table(inproc, http)
    print("\n".join(lines))
    if args.write:
        write_page(Path(args.write), lines, args)


def write_page(path: Path, lines: list[str], args: argparse.Namespace) -> None:
    raise NotImplementedError


if __name__ == "__main__":
    main()
