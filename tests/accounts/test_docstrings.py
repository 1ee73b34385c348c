"""The examples in the accounts modules' docstrings run."""

from __future__ import annotations

import importlib
import re

import pytest

FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
MODULES = [
    "fastapi_secure.accounts.hooks",
    "fastapi_secure.accounts.mail",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    blocks = FENCE.findall(module.__doc__ or "")
    assert blocks, f"{name} has no example"
    for block in blocks:
        exec(compile(block, f"{name}.__doc__", "exec"), {})  # noqa: S102
