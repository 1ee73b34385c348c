"""The API key core imports no optional backend and no FastAPI; __all__ is complete."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import fastapi_secure
import fastapi_secure.apikeys as apikeys


def _loaded_after(statement: str, roots: tuple[str, ...]) -> list[str]:
    code = textwrap.dedent(
        f"""
        import sys
        {statement}
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
    assert _loaded_after("import fastapi_secure.apikeys", heavy) == []


def test_every_exported_name_exists_once() -> None:
    # The order is ruff's (RUF022); this checks that nothing listed is missing.
    assert len(set(apikeys.__all__)) == len(apikeys.__all__)
    missing = [name for name in apikeys.__all__ if not hasattr(apikeys, name)]
    assert missing == []


SRC = Path(fastapi_secure.__file__).resolve().parent
CORE = [
    "fastapi_secure.apikeys",
    "fastapi_secure.apikeys.keys",
    "fastapi_secure.apikeys.stores",
    "fastapi_secure.apikeys.stores.base",
    "fastapi_secure.apikeys.stores.memory",
    "fastapi_secure.apikeys.stores.redis",
    "fastapi_secure.apikeys.stores.sqlalchemy",
]


def _path_of(module: str) -> Path:
    relative = Path(*module.split(".")[1:])
    package = SRC / relative / "__init__.py"
    return package if package.is_file() else (SRC / relative).with_suffix(".py")


def _top_level_imports(module: str) -> set[str]:
    """Modules imported when ``module`` is imported (module level, not under TYPE_CHECKING)."""
    tree = ast.parse(_path_of(module).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If):
            continue  # `if TYPE_CHECKING:` blocks
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if not name.startswith("fastapi_secure.") or _exists(name)}


def _exists(module: str) -> bool:
    return _path_of(module).is_file()


def test_the_core_never_imports_fastapi_or_starlette() -> None:
    # The root package's __init__ re-exports the HTTP blocks; the core modules and
    # everything they import themselves must not need FastAPI.
    seen: set[str] = set()
    pending = list(CORE)
    offenders: list[str] = []
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _top_level_imports(module):
            root = name.split(".")[0]
            if root in {"fastapi", "starlette"}:
                offenders.append(f"{module} imports {name}")
            elif root == "fastapi_secure":
                parts = name.split(".")
                # Importing a submodule runs its parent packages' __init__ too.
                pending.extend(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    assert offenders == []
    assert "fastapi_secure.tokens.claims" in seen
