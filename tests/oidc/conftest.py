"""Fixtures of the OIDC tests: one real oidc-provider per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.oidc_provider import LocalProvider, running_provider


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProvider]:
    """panva's oidc-provider on 127.0.0.1 (installed with npm ci when missing)."""
    with running_provider(tmp_path_factory.mktemp("oidc-provider") / "provider.log") as provider:
        yield provider
