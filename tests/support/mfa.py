"""Second factors for the tests: a SecondFactors over memory stores and a Redis/memory MFA store."""

from __future__ import annotations

from typing import Any

from fastapi_secure.events import EventSink
from fastapi_secure.mfa import TOTP, AttemptLimit, MFAChallenges, Passkeys, SecretBox
from fastapi_secure.mfa.authenticators import MemoryAuthenticatorStore
from fastapi_secure.mfa.factors import SecondFactors
from fastapi_secure.testing import FakeClock

ORIGIN = "https://example.com"


def make_factors(
    mfa_store: Any, clock: FakeClock, *, passkeys: bool = True, events: EventSink | None = None
) -> SecondFactors:
    attempts = AttemptLimit(mfa_store, max_failures=5, window=300)
    return SecondFactors(
        MemoryAuthenticatorStore(),
        totp=TOTP(
            box=SecretBox([SecretBox.generate_key()]),
            used_codes=mfa_store,
            issuer="Example",
            attempts=attempts,
            clock=clock,
        ),
        challenges=MFAChallenges(mfa_store, clock=clock),
        passkeys=Passkeys(
            rp_id="example.com",
            rp_name="Example",
            origins=[ORIGIN],
            challenges=mfa_store,
            clock=clock,
        )
        if passkeys
        else None,
        events=events,
        clock=clock,
    )
