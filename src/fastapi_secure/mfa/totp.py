"""TOTP (RFC 6238) second factor on ``pyotp``: enrolment with a QR code, replay-safe checks.

```python
from fastapi_secure.mfa import TOTP, SecretBox
from fastapi_secure.mfa.stores import MemoryMFAStore

store = MemoryMFAStore()
totp = TOTP(box=SecretBox([SecretBox.generate_key()]), used_codes=store, issuer="Example")
enrolment = totp.begin_enrolment("user-42", "alice@example.com")
# Show enrolment.qr_svg (or enrolment.uri / enrolment.secret) once; keep
# enrolment.authenticator (its secret is encrypted) until the user confirms:
# authenticator = await totp.confirm_enrolment(enrolment.authenticator, code)
```

- The secret is encrypted at rest by a :class:`~fastapi_secure.mfa.SecretBox`;
  the record (:class:`TOTPAuthenticator`) never shows it in a ``repr``.
- Enrolment completes only after a first valid code (:meth:`TOTP.confirm_enrolment`).
- Codes are checked at the current step and ``window`` steps either side
  (±1 by default: 30 s of clock skew each way). Every step is computed, so
  the work does not depend on which one matched.
- A code accepted once is refused again: the matched time step is claimed
  per account in a :class:`~fastapi_secure.mfa.stores.UsedCodeStore`
  (atomic, shared through Redis), for as long as that step stays acceptable.
- An optional :class:`~fastapi_secure.mfa.AttemptLimit` stops guessing.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from fastapi_secure._optional import require
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.mfa.attempts import AttemptLimit
from fastapi_secure.mfa.errors import InvalidOTPError, OTPReplayError
from fastapi_secure.mfa.secretbox import SecretBox
from fastapi_secure.mfa.stores.base import UsedCodeStore, store_key

if TYPE_CHECKING:
    import pyotp

__all__ = ["TOTP", "TOTPAlgorithm", "TOTPAuthenticator", "TOTPEnrolment"]

TOTPAlgorithm = Literal["SHA1", "SHA256", "SHA512"]

# Seed length per hash: RFC 4226 asks for at least 128 bits, RFC 6238's
# vectors use the hash's output size; multiples of 5 bytes give base32 with no padding.
_SEED_CHARS = {"SHA1": 32, "SHA256": 56, "SHA512": 104}
_MAX_CODE_LENGTH = 64


@dataclass(frozen=True)
class TOTPAuthenticator:
    """One account's TOTP factor, as the application stores it.

    ``encrypted_secret`` is a :class:`~fastapi_secure.mfa.SecretBox` token;
    ``confirmed_at`` is None until the first valid code was entered.
    """

    user_id: str
    encrypted_secret: str = field(repr=False)
    digits: int = 6
    period: int = 30
    algorithm: TOTPAlgorithm = "SHA1"
    created_at: float = 0.0
    confirmed_at: float | None = None
    last_used_at: float | None = None

    @property
    def confirmed(self) -> bool:
        """Whether enrolment was completed with a valid code."""
        return self.confirmed_at is not None


@dataclass(frozen=True)
class TOTPEnrolment:
    """What a page needs to enrol an authenticator app; shown once, never stored as is.

    ``secret`` (base32, for typing by hand), ``uri`` (``otpauth://``) and
    ``qr_svg`` all carry the secret: none of them is in the ``repr``.
    """

    authenticator: TOTPAuthenticator
    secret: SecretStr = field(repr=False)
    uri: SecretStr = field(repr=False)
    qr_svg: str = field(repr=False)


class TOTP:
    """The TOTP factor: enrol, confirm, verify.

    ``issuer`` names your service in the authenticator app. ``used_codes`` is
    the replay guard (share a Redis store between workers). ``attempts``
    limits failures per account. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        box: SecretBox,
        used_codes: UsedCodeStore,
        issuer: str,
        attempts: AttemptLimit | None = None,
        digits: int = 6,
        period: int = 30,
        algorithm: TOTPAlgorithm = "SHA1",
        window: int = 1,
        clock: Clock = system_clock,
    ) -> None:
        self._pyotp: Any = require("pyotp", extra="mfa", feature="TOTP")
        self._strings_equal: Any = require("pyotp.utils", extra="mfa", feature="TOTP").strings_equal
        if not issuer or ":" in issuer:
            raise ConfigurationError("TOTP issuer must be non-empty and contain no ':'")
        if digits not in (6, 7, 8):
            raise ConfigurationError("TOTP digits must be 6, 7 or 8")
        if not (isinstance(period, int) and 15 <= period <= 120):
            raise ConfigurationError("TOTP period must be an integer from 15 to 120 seconds")
        if algorithm not in _SEED_CHARS:
            raise ConfigurationError("TOTP algorithm must be SHA1, SHA256 or SHA512")
        if not (isinstance(window, int) and 0 <= window <= 2):
            raise ConfigurationError("TOTP window must be 0, 1 or 2 steps")
        self._box = box
        self._used = used_codes
        self._attempts = attempts
        self.issuer = issuer
        self.digits = digits
        self.period = period
        self.algorithm: TOTPAlgorithm = algorithm
        self.window = window
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"TOTP(issuer={self.issuer!r}, digits={self.digits}, period={self.period}, "
            f"algorithm={self.algorithm!r}, window={self.window})"
        )

    def _otp(self, authenticator: TOTPAuthenticator, secret: str) -> pyotp.TOTP:
        import hashlib

        otp: pyotp.TOTP = self._pyotp.TOTP(
            secret,
            digits=authenticator.digits,
            digest=getattr(hashlib, authenticator.algorithm.lower()),
            interval=authenticator.period,
        )
        return otp

    def begin_enrolment(self, user_id: str, account_name: str) -> TOTPEnrolment:
        """A new secret for ``user_id``, with its ``otpauth://`` URI and QR code (SVG).

        ``account_name`` is the label shown in the app (an email or user name).
        The returned authenticator is unconfirmed: keep it (its secret is
        encrypted) and pass it to :meth:`confirm_enrolment` with the first code.
        """
        segno = require("segno", extra="mfa", feature="TOTP enrolment QR codes")
        secret: str = self._pyotp.random_base32(length=_SEED_CHARS[self.algorithm])
        authenticator = TOTPAuthenticator(
            user_id=user_id,
            encrypted_secret=self._box.encrypt(secret),
            digits=self.digits,
            period=self.period,
            algorithm=self.algorithm,
            created_at=self._clock(),
        )
        uri: str = self._otp(authenticator, secret).provisioning_uri(
            name=account_name, issuer_name=self.issuer
        )
        qr_svg: str = segno.make(uri, error="m").svg_inline(scale=4, title=self.issuer)
        return TOTPEnrolment(
            authenticator=authenticator,
            secret=SecretStr(secret),
            uri=SecretStr(uri),
            qr_svg=qr_svg,
        )

    async def confirm_enrolment(
        self, authenticator: TOTPAuthenticator, code: str
    ) -> TOTPAuthenticator:
        """Complete enrolment with a first valid code; returns the confirmed record.

        The code is claimed like any other, so it cannot be replayed at login.
        """
        await self._check(authenticator, code)
        now = self._clock()
        return dataclasses.replace(authenticator, confirmed_at=now, last_used_at=now)

    async def verify(self, authenticator: TOTPAuthenticator, code: str) -> TOTPAuthenticator:
        """Accept ``code`` once, or raise :class:`~fastapi_secure.mfa.errors.InvalidOTPError`.

        Returns the record with ``last_used_at`` updated (store it if you keep it).
        Raises :class:`~fastapi_secure.mfa.errors.TooManyAttemptsError` while
        the account is over its attempt limit.
        """
        if not authenticator.confirmed:
            raise InvalidOTPError(reason="TOTP enrolment was never confirmed")
        await self._check(authenticator, code)
        return dataclasses.replace(authenticator, last_used_at=self._clock())

    def _normalize(self, code: object, digits: int) -> str | None:
        if not isinstance(code, str) or len(code) > _MAX_CODE_LENGTH:
            return None
        # Apps show "123 456"; people type the space or a dash.
        cleaned = code.strip().replace(" ", "").replace("-", "")
        if len(cleaned) != digits or not (cleaned.isascii() and cleaned.isdigit()):
            return None
        return cleaned

    def _matching_step(self, authenticator: TOTPAuthenticator, code: str) -> int | None:
        secret = self._box.decrypt_text(authenticator.encrypted_secret)
        otp = self._otp(authenticator, secret)
        # An aware datetime: older pyotp releases (2.9) take only datetimes here.
        current = otp.timecode(
            datetime.datetime.fromtimestamp(self._clock(), datetime.timezone.utc)
        )
        matched: int | None = None
        # Every step is computed and compared, whichever matches.
        for step in range(current - self.window, current + self.window + 1):
            if step >= 0 and self._strings_equal(otp.generate_otp(step), code):
                matched = step
        return matched

    async def _check(self, authenticator: TOTPAuthenticator, code: str) -> None:
        user_id = authenticator.user_id
        if self._attempts is not None:
            await self._attempts.check(user_id)
        cleaned = self._normalize(code, authenticator.digits)
        step = None if cleaned is None else self._matching_step(authenticator, cleaned)
        if step is None:
            await self._failed(user_id)
            raise InvalidOTPError(reason="malformed code" if cleaned is None else "wrong code")
        # The step stays acceptable until the clock passes it by `window` steps.
        ttl = (2 * self.window + 2) * authenticator.period
        if not await self._used.claim(store_key("totp-used", user_id, str(step)), ttl):
            await self._failed(user_id)
            raise OTPReplayError(reason="code already used")
        if self._attempts is not None:
            await self._attempts.succeeded(user_id)

    async def _failed(self, user_id: str) -> None:
        if self._attempts is not None:
            await self._attempts.failed(user_id, "totp")
