"""Shared fixtures: fake clock, and isolated real Redis and PostgreSQL.

Backends are tested against the real servers named by
``FASTAPI_SECURE_TEST_REDIS_URL`` and ``FASTAPI_SECURE_TEST_POSTGRES_URL``
(loopback defaults). Without ``CI=true`` a test whose server is unreachable
is skipped with instructions to start it; with ``CI=true`` it fails.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from fastapi_secure.testing import FakeClock

if TYPE_CHECKING:
    import redis.asyncio

REDIS_URL = os.environ.get("FASTAPI_SECURE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "FASTAPI_SECURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

REDIS_START_HINT = (
    "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)
POSTGRES_START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@cache
def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0
        ):
            return True
    except OSError:
        return False


def require_server(name: str, url: str, default_port: int, hint: str) -> None:
    """Skip (locally) or fail (CI=true) when the server behind ``url`` is down."""
    if _reachable(url, default_port):
        return
    message = f"{name} is not reachable at {url}; start it with: {hint}"
    if IN_CI:
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def redis_url() -> str:
    """URL of the real Redis; skips or fails (CI) when it is unreachable."""
    require_server("Redis", REDIS_URL, 6379, REDIS_START_HINT)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    import redis as sync_redis

    prefix = f"fs-test:{uuid.uuid4().hex}:"
    yield prefix
    client = sync_redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- a local Redis Cluster -----------------------------------------------------
# Three redis-server processes on free loopback ports, started once per session
# in a temporary directory and stopped afterwards. Without redis-server the
# cluster cases are skipped (they fail under CI=true).


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(count: int) -> list[int]:
    # Each node also listens on port + 10000 (the cluster bus).
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(20000, 29000)
        if port not in ports and _port_free(port) and _port_free(port + 10000):
            ports.append(port)
    return ports


def _redis_cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout


def _wait_for(condition: object, what: str, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _require_redis_binaries(what: str) -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        message = f"redis-server/redis-cli not installed: cannot start {what}"
        if IN_CI:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis+cluster://`` URL of a fresh three-master local Redis Cluster."""
    _require_redis_binaries("a local Redis Cluster")
    ports = _cluster_ports(3)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            directory: Path = tmp_path_factory.mktemp(f"redis-cluster-{port}")
            processes.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--bind", "127.0.0.1",
                        "--port", str(port),
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "5000",
                        "--dir", str(directory),
                        "--save", "",
                        "--appendonly", "no",
                        "--logfile", str(directory / "redis.log"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        for port in ports:
            _wait_for(lambda port=port: _redis_cli(port, "ping").strip() == "PONG", "redis")
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        for port in ports:
            _wait_for(
                lambda port=port: "cluster_state:ok" in _redis_cli(port, "cluster", "info"),
                "cluster_state:ok",
            )
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        _stop(processes)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An async client of the real Redis, closed after the test."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """Create a uniquely named database; yield its URL; drop it (even when in use)."""
    require_server("PostgreSQL", POSTGRES_URL, 5432, POSTGRES_START_HINT)
    import asyncpg

    name = f"fs_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlsplit(POSTGRES_URL)._replace(path=f"/{name}").geturl()
    finally:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """URL (``postgresql://...``) of a fresh database, dropped after the test."""
    async with fresh_postgres_database() as url:
        yield url


# -- a local Redis Sentinel ----------------------------------------------------
# One private master and one sentinel watching it (``redis-server --sentinel``),
# on free loopback ports in a temporary directory, stopped afterwards.

SENTINEL_SERVICE = "mymaster"


@contextmanager
def local_redis_sentinel(
    directory: Path, master_port: int, password: str | None = None
) -> Iterator[int]:
    """Run a sentinel for the master on ``master_port``; yield the sentinel's port.

    With ``password`` the sentinel both requires it and uses it on the master, so a
    ``redis+sentinel://:password@...`` URI authenticates against both.
    """
    _require_redis_binaries("a local Redis Sentinel")
    port = _cluster_ports(1)[0]
    auth = [] if password is None else ["-a", password, "--no-auth-warning"]
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f"dir {directory}",
        f"logfile {directory / 'sentinel.log'}",
        f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {master_port} 1",
        f"sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000",
        f"sentinel failover-timeout {SENTINEL_SERVICE} 5000",
    ]
    if password is not None:
        lines += [f"requirepass {password}", f"sentinel auth-pass {SENTINEL_SERVICE} {password}"]
    config = directory / "sentinel.conf"
    config.write_text("\n".join(lines) + "\n")
    sentinel = subprocess.Popen(
        ["redis-server", str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(
            lambda: (
                _redis_cli(
                    port, *auth, "sentinel", "get-master-addr-by-name", SENTINEL_SERVICE
                ).split()
                == ["127.0.0.1", str(master_port)]
            ),
            "the sentinel to report its master",
        )
        yield port
    finally:
        _stop([sentinel])


@pytest.fixture(scope="session")
def redis_sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis+sentinel://`` URL of a fresh local master watched by one sentinel."""
    _require_redis_binaries("a local Redis Sentinel")
    directory = tmp_path_factory.mktemp("redis-sentinel")
    master_port = _cluster_ports(1)[0]
    master = subprocess.Popen(
        [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(master_port),
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(directory / "master.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(lambda: _redis_cli(master_port, "ping").strip() == "PONG", "redis master")
        with local_redis_sentinel(directory, master_port) as sentinel_port:
            yield f"redis+sentinel://127.0.0.1:{sentinel_port}/{SENTINEL_SERVICE}"
    finally:
        _stop([master])
