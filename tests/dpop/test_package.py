"""The dpop package: its core imports no HTTP layer and no Redis client."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fastapi_secure.dpop
from fastapi_secure.dpop import http


def test_importing_the_core_loads_neither_the_http_side_nor_redis() -> None:
    code = (
        "import sys, fastapi_secure.dpop\n"
        "print(sorted(m for m in sys.modules if m == 'fastapi_secure.dpop.http' or m == 'redis'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_dpop_auth_is_loaded_on_first_use() -> None:
    assert fastapi_secure.dpop.DPoPAuth is http.DPoPAuth
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = fastapi_secure.dpop.no_such_name


def test_all_is_sorted_and_complete() -> None:
    names = fastapi_secure.dpop.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(fastapi_secure.dpop, name) is not None


@pytest.mark.parametrize(
    "module", ["fastapi_secure.dpop", "fastapi_secure.dpop.proofs", "fastapi_secure.dpop.replay"]
)
def test_the_core_imports_neither_fastapi_nor_starlette(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
