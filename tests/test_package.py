"""Package hygiene: public names, lazy optional imports, version, typing marker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastapi_secure
from fastapi_secure import MissingDependencyError
from fastapi_secure._optional import require

SRC = Path(fastapi_secure.__file__).parent


def _isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then the rest.
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted_and_unique() -> None:
    names = list(fastapi_secure.__all__)
    assert names == sorted(names, key=_isort_key)
    assert len(names) == len(set(names))


def test_all_is_complete() -> None:
    """Every public module attribute defined by the package is exported, and vice versa."""
    exported = set(fastapi_secure.__all__)
    for name in exported:
        assert hasattr(fastapi_secure, name), name
    public = {
        name
        for name, value in vars(fastapi_secure).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("fastapi_secure")
    }
    assert public <= exported, public - exported


def test_version_is_single_sourced() -> None:
    from importlib.metadata import version

    assert version("fastapi-secure") == fastapi_secure.__version__


def test_py_typed_is_shipped() -> None:
    assert (SRC / "py.typed").is_file()


def test_import_pulls_in_no_optional_backend() -> None:
    code = textwrap.dedent(
        """
        import sys
        import fastapi_secure
        import fastapi_secure.testing
        heavy = ("redis", "sqlalchemy", "asyncpg", "aiosqlite", "alembic", "psycopg", "psycopg2")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        print(",".join(loaded))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_missing_extra_names_the_install_command() -> None:
    with pytest.raises(MissingDependencyError) as caught:
        require("fastapi_secure_no_such_module", extra="redis", feature="RedisTokenStore")
    message = str(caught.value)
    assert 'pip install "fastapi-secure[redis]"' in message
    assert "RedisTokenStore" in message
    assert isinstance(caught.value, ImportError)


def test_require_returns_the_module() -> None:
    assert require("json", extra="x", feature="y").__name__ == "json"


CORE_MODULES = (
    "fastapi_secure.errors",
    "fastapi_secure.clock",
    "fastapi_secure.settings",
    "fastapi_secure.origins",
    "fastapi_secure.passwords",
    "fastapi_secure.passwords.hasher",
    "fastapi_secure.passwords.policy",
    "fastapi_secure.tokens",
    "fastapi_secure.tokens.keys",
    "fastapi_secure.tokens.claims",
    "fastapi_secure.tokens.issuer",
    "fastapi_secure.tokens.stores",
    "fastapi_secure.tokens.stores.memory",
    "fastapi_secure.tokens.stores.redis",
    "fastapi_secure.events",
    "fastapi_secure.apikeys",
    "fastapi_secure.apikeys.keys",
    "fastapi_secure.dpop",
    "fastapi_secure.dpop.proofs",
    "fastapi_secure.dpop.replay",
    "fastapi_secure.accounts.manager",
    "fastapi_secure.accounts.users",
    "fastapi_secure.mfa",
    "fastapi_secure.mfa.totp",
    "fastapi_secure.mfa.passkeys",
    "fastapi_secure.oidc.verifier",
)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_neither_fastapi_nor_starlette(module: str) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import {module}
        web = ("fastapi", "starlette")
        print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in web)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"{module} imports {result.stdout.strip()}"


def test_top_level_is_small() -> None:
    from fastapi_secure import errors

    error_names = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), Exception)
    } | {"ErrorCode"}
    blocks = [name for name in fastapi_secure.__all__ if name not in error_names]
    assert len(blocks) <= 30, blocks


def test_every_top_level_name_resolves_to_its_home_module() -> None:
    for name in fastapi_secure.__all__:
        value = getattr(fastapi_secure, name)
        if name == "StrongPassword":  # an Annotated alias, defined in passwords.policy
            from fastapi_secure.passwords import policy

            assert value is policy.StrongPassword
            continue
        home = getattr(value, "__module__", "")
        assert home.startswith("fastapi_secure."), (name, home)


def test_the_whole_error_tree_is_at_the_top_level() -> None:
    from fastapi_secure import errors

    assert set(errors.__all__) <= set(fastapi_secure.__all__)
