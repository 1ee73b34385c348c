"""The README's curl journey, run exactly as printed against the example on a real uvicorn.

Every ``# ...`` line of the block is what the command before it prints; the test
runs the block with bash and compares the output, line by line.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]


def journey() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split("a test runs this block exactly as printed", 1)[1]
    match = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert match is not None, "the README journey block is gone"
    return match.group(1)


def expected_lines(block: str) -> list[str]:
    # A comment line right after a command is its output; comments before a command
    # (after a blank line) are prose.
    lines = block.splitlines()
    out = []
    for before, line in zip(["", *lines], lines, strict=False):
        if line.startswith("# ") and before.strip() and not before.startswith("#"):
            out.append(line[2:])
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_readme_journey_runs_as_printed(tmp_path: Path) -> None:
    for tool in ("bash", "curl", "python3"):
        if shutil.which(tool) is None:
            message = f"{tool} is needed to run the README journey"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
    block = journey()
    wanted = expected_lines(block)
    assert wanted, "no expected output lines found"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}",
        "EMAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
        "PASSWORD_HASH_PROFILE": "test_only_fast",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "examples.reference_api", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "the example did not start"
            assert time.monotonic() < deadline, "the example did not answer in 60 s"
            time.sleep(0.2)
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block],
            cwd=tmp_path,
            env={**env, "B": base},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == wanted
