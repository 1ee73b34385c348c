"""Lazy imports of optional backends, with an error naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from fastapi_secure.errors import MissingDependencyError


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(feature, extra, module) from exc
