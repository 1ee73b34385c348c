"""The oidc package: exports, lazy imports and the missing-extra error."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fastapi_secure.oidc as oidc


def test_all_is_sorted_and_complete() -> None:
    assert oidc.__all__ == sorted(oidc.__all__)
    for name in oidc.__all__:
        assert getattr(oidc, name) is not None
    with pytest.raises(AttributeError):
        oidc.no_such_name  # noqa: B018


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_the_package_imports_neither_httpx_nor_authlib() -> None:
    done = run(
        "import sys, fastapi_secure.oidc, fastapi_secure.oidc.verifier;"
        "assert 'httpx' not in sys.modules, 'httpx';"
        "assert 'authlib' not in sys.modules, 'authlib';"
        "assert 'fastapi_secure.oidc.login' not in sys.modules, 'login'"
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("blocked", "code"),
    [
        ("httpx", "from fastapi_secure.oidc import RemoteKeySet; RemoteKeySet('https://a.test')"),
        (
            "authlib",
            "from fastapi_secure.oidc import OIDCLogin, OIDCProvider;"
            "p = OIDCProvider(name='a', issuer='https://a.test', client_id='c',"
            " redirect_uri='https://b.test/cb', keys=None);"
            "OIDCLogin([p], state_secret='x' * 32)",
        ),
    ],
)
def test_a_missing_extra_names_the_install_command(blocked: str, code: str) -> None:
    done = run(f"import sys; sys.modules[{blocked!r}] = None\n{code}")
    assert done.returncode != 0
    assert "MissingDependencyError" in done.stderr
    assert 'pip install "fastapi-secure[oidc]"' in done.stderr


@pytest.mark.parametrize("module", ["errors", "linking", "remote", "verifier"])
def test_the_core_modules_import_no_web_framework(module: str) -> None:
    path = Path(oidc.__file__).parent / f"{module}.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"fastapi", "starlette"}
