"""Token store fixtures: one contract, three backends (memory, Redis, Redis Cluster).

The cluster is three ``redis-server`` processes on free loopback ports,
started once per session in a temporary directory and stopped afterwards.
Without ``redis-server`` the cluster cases are skipped (they fail under CI=true).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.stores.base import TokenStore
from fastapi_secure.tokens.stores.memory import MemoryTokenStore
from tests.conftest import IN_CI

STORE_KINDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
]


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


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis+cluster://`` URL of a fresh three-master local Redis Cluster."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        message = "redis-server/redis-cli not installed: cannot start a local Redis Cluster"
        if IN_CI:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
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
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, fake_clock: FakeClock) -> AsyncIterator[TokenStore]:
    """Each TokenStore backend in turn; memory runs on ``fake_clock``."""
    kind = request.param
    if kind == "memory":
        yield MemoryTokenStore(clock=fake_clock)
        return
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    else:
        url = request.getfixturevalue("redis_cluster_url")
        prefix = f"fs-test:{uuid.uuid4().hex}:"
    redis_store = RedisTokenStore.from_url(url, prefix=prefix)
    try:
        yield redis_store
    finally:
        await redis_store.aclose()
