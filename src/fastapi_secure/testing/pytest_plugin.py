"""pytest fixtures for testing an app built on fastapi-secure.

Opt in from the root ``conftest.py``::

    pytest_plugins = ["fastapi_secure.testing.pytest_plugin"]

It is not registered as a ``pytest11`` entry point on purpose: installed
plugins load in every pytest run of every project in the environment, and
fixture names such as ``fake_clock`` would then meet the project's own.

Fixtures:

* ``fake_clock``: a :class:`~fastapi_secure.testing.FakeClock`.
* ``token_factory``: a :class:`~fastapi_secure.testing.TokenFactory` over the
  ``token_issuer`` fixture, which the app's tests define (their issuer).
* ``reset_rate_limits``: an async function ``await reset_rate_limits(limiter)``
  (:func:`~fastapi_secure.testing.reset_limiter`).
* ``totp_code``: :func:`~fastapi_secure.testing.totp_code`.
* ``outbox``: a fresh :class:`~fastapi_secure.accounts.mail.MemoryOutbox`; give it
  to ``AccountManager(mail=outbox)`` and read the verification and reset mail,
  ``action_token(outbox.to(address)[-1])`` giving the token of its link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from fastapi_secure.accounts.mail import MemoryOutbox
from fastapi_secure.testing import FakeClock, TokenFactory, reset_limiter, totp_code
from fastapi_secure.tokens.issuer import TokenIssuer

__all__ = ["fake_clock", "outbox", "reset_rate_limits", "token_factory", "totp_code_fixture"]


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def token_factory(token_issuer: TokenIssuer) -> TokenFactory:
    """Real tokens from the app's issuer (define a ``token_issuer`` fixture returning it)."""
    return TokenFactory(token_issuer)


@pytest.fixture
def reset_rate_limits() -> Callable[..., Awaitable[None]]:
    """``await reset_rate_limits(limiter)``: every window of ``limiter`` over at once."""
    return reset_limiter


@pytest.fixture(name="totp_code")
def totp_code_fixture() -> Callable[..., str]:
    """``totp_code(secret)``: the current TOTP code of a base32 secret (needs pyotp)."""
    return totp_code


@pytest.fixture
def outbox() -> MemoryOutbox:
    """An in-memory mail sender, empty: ``outbox.to("ann@example.com")[-1].link``."""
    return MemoryOutbox()
