"""The dpop package: its core imports no HTTP layer and no Redis client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize("module", ["proofs", "replay", "__init__"])
def test_the_core_modules_import_no_web_framework(module: str) -> None:
    source = Path(fastapi_secure.dpop.__file__).with_name(f"{module}.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"fastapi", "starlette"}
