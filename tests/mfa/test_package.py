"""The mfa package: core without FastAPI, optional libraries imported lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fastapi_secure.mfa
from fastapi_secure.errors import MissingDependencyError
from fastapi_secure.mfa import TOTP, Passkeys, SecretBox
from fastapi_secure.mfa.stores import MemoryMFAStore

PACKAGE = Path(fastapi_secure.mfa.__file__).parent


MODULES = sorted(
    "fastapi_secure."
    + ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py")
    if path.name != "routers.py"  # the HTTP glue, in its own module
)


@pytest.mark.parametrize("module", MODULES)
def test_core_module_imports_neither_fastapi_nor_starlette(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "web = ('fastapi', 'starlette')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in web)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "", f"{module} imports {done.stdout.strip()}"


def test_importing_the_package_loads_no_optional_library() -> None:
    code = (
        "import sys, fastapi_secure.mfa, fastapi_secure.mfa.stores.redis\n"
        "loaded = {'pyotp', 'segno', 'webauthn', 'redis'} & set(sys.modules)\n"
        "print(sorted(loaded))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def _isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then the rest.
    if name.isupper():
        return (0, name)
    return (1, name) if name[0].isupper() else (2, name)


def test_all_is_sorted_and_complete() -> None:
    names = list(fastapi_secure.mfa.__all__)
    assert names == sorted(names, key=_isort_key)
    public = {
        name
        for name, value in vars(fastapi_secure.mfa).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("fastapi_secure")
    }
    assert public == set(names)


@pytest.mark.parametrize(
    ("module", "build"),
    [
        ("cryptography.fernet", lambda: SecretBox([SecretBox.generate_key()])),
        (
            "pyotp",
            lambda: TOTP(box=object(), used_codes=MemoryMFAStore(), issuer="x"),  # type: ignore[arg-type]
        ),
        (
            "webauthn",
            lambda: Passkeys(
                rp_id="example.com",
                rp_name="x",
                origins=["https://example.com"],
                challenges=MemoryMFAStore(),
            ),
        ),
    ],
)
def test_missing_extra_names_the_install_command(
    module: str, build: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert callable(build)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError) as caught:
        build()
    assert 'pip install "fastapi-secure[mfa]"' in str(caught.value)


def test_missing_segno_is_named_at_enrolment(monkeypatch: pytest.MonkeyPatch) -> None:
    totp = TOTP(box=SecretBox([SecretBox.generate_key()]), used_codes=MemoryMFAStore(), issuer="x")
    monkeypatch.setitem(sys.modules, "segno", None)
    with pytest.raises(MissingDependencyError) as caught:
        totp.begin_enrolment("u", "alice")
    assert caught.value.module == "segno"


def test_missing_redis_names_the_redis_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi_secure.mfa.stores.redis import RedisMFAStore

    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(MissingDependencyError) as caught:
        RedisMFAStore.from_url("redis://127.0.0.1:1/0")
    assert caught.value.extra == "redis"
