"""Every ```python block in README.md and docs/ runs, so the docs cannot drift.

Blocks fenced as ```py (not ```python) are shown but not run: use that only
for snippets that need a running server or a user's own code.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for index, match in enumerate(FENCE.finditer(text)):
            found.append((str(page.relative_to(ROOT)), index, match.group(1)))
    return found


BLOCKS = _blocks()


@pytest.mark.parametrize(
    ("page", "index", "code"), BLOCKS, ids=[f"{page}#{index}" for page, index, _ in BLOCKS]
)
def test_doc_block_runs(page: str, index: int, code: str) -> None:
    # A real module in sys.modules: libraries that resolve annotations by module
    # name (SQLAlchemy's Mapped[...], pydantic) need to find it there.
    module = types.ModuleType(f"docs_block_{abs(hash((page, index)))}")
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, f"{page}#block{index}", "exec"), module.__dict__)  # noqa: S102
    finally:
        del sys.modules[module.__name__]


def test_docs_have_runnable_blocks() -> None:
    assert BLOCKS, "no ```python blocks found; the docs test would check nothing"


def test_doc_blocks_pass_mypy_strict(tmp_path: Path) -> None:
    """The blocks are what users copy: they type-check as strictly as our own code."""
    from mypy import api

    files = []
    for page, index, code in BLOCKS:
        name = re.sub(r"\W", "_", f"{page}_{index}")
        path = tmp_path / f"{name}.py"
        path.write_text(code, encoding="utf-8")
        files.append(str(path))
    out, err, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *files,
        ]
    )
    assert status == 0, out + err
