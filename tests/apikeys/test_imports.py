"""The API key core imports no optional backend and no FastAPI; __all__ is complete."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import fastapi_secure.apikeys as apikeys

CORE = (
    "fastapi_secure.apikeys",
    "fastapi_secure.apikeys.keys",
    "fastapi_secure.apikeys.stores",
    "fastapi_secure.apikeys.stores.base",
    "fastapi_secure.apikeys.stores.memory",
    "fastapi_secure.apikeys.stores.redis",
    "fastapi_secure.apikeys.stores.sqlalchemy",
)


def _loaded_after(module: str, roots: tuple[str, ...]) -> list[str]:
    code = textwrap.dedent(
        f"""
        import sys
        import {module}
        roots = {roots!r}
        print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in roots)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return [name for name in result.stdout.strip().split(",") if name]


def test_the_core_imports_no_backend_driver() -> None:
    heavy = ("redis", "sqlalchemy", "asyncpg", "aiosqlite")
    assert _loaded_after("fastapi_secure.apikeys", heavy) == []


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_neither_fastapi_nor_starlette(module: str) -> None:
    assert _loaded_after(module, ("fastapi", "starlette")) == []


def test_every_exported_name_exists_once() -> None:
    # The order is ruff's (RUF022); this checks that nothing listed is missing.
    assert len(set(apikeys.__all__)) == len(apikeys.__all__)
    missing = [name for name in apikeys.__all__ if not hasattr(apikeys, name)]
    assert missing == []
