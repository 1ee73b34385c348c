"""The account core imports neither FastAPI nor Starlette; only the routers do."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CORE = (
    "fastapi_secure.accounts",
    "fastapi_secure.accounts.action_tokens",
    "fastapi_secure.accounts.addresses",
    "fastapi_secure.accounts.errors",
    "fastapi_secure.accounts.hooks",
    "fastapi_secure.accounts.lockout",
    "fastapi_secure.accounts.mail",
    "fastapi_secure.accounts.manager",
    "fastapi_secure.accounts.redis",
    "fastapi_secure.accounts.sessions",
    "fastapi_secure.accounts.sqlalchemy",
    "fastapi_secure.accounts.users",
)


def _loaded(module: str, roots: tuple[str, ...]) -> str:
    code = textwrap.dedent(
        f"""
        import sys
        import {module}
        roots = {roots!r}
        print(",".join(sorted({{m.split(".")[0] for m in sys.modules}} & set(roots))))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_no_web_framework(module: str) -> None:
    assert _loaded(module, ("fastapi", "starlette")) == ""


def test_the_package_imports_no_optional_backend() -> None:
    assert _loaded("fastapi_secure.accounts.users", ("redis", "sqlalchemy")) == ""
