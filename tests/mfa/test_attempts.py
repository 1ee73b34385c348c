"""AttemptLimit: configuration and the per-account window."""

from __future__ import annotations

from typing import Any

import pytest

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.mfa import AttemptLimit, TooManyAttemptsError

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "options", [{"max_failures": 0}, {"max_failures": 1.5}, {"window": 0}, {"window": "5"}]
)
async def test_bad_configuration_is_refused(fast_store: Any, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AttemptLimit(fast_store, **options)


async def test_limit_counts_per_account_in_every_backend(fast_store: Any) -> None:
    limit = AttemptLimit(fast_store, max_failures=2, window=60)
    assert repr(limit) == "AttemptLimit(max_failures=2, window=60.0)"
    await limit.check("u")
    await limit.failed("u", "totp")
    await limit.check("u")
    await limit.failed("u", "recovery_code")
    with pytest.raises(TooManyAttemptsError) as caught:
        await limit.check("u")
    retry_after = caught.value.retry_after
    assert retry_after is not None
    assert 1 <= retry_after <= 60
    await limit.check("other")
    await limit.succeeded("u")
    await limit.check("u")
