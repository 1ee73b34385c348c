"""Second factors: TOTP, recovery codes, passkeys, and secrets encrypted at rest.

Core code (no FastAPI). One module per factor, each working on a record the
application stores (django-allauth's "authenticator" per user and factor):

- :mod:`~fastapi_secure.mfa.totp`: :class:`TOTP`, :class:`TOTPAuthenticator`
- :mod:`~fastapi_secure.mfa.recovery`: :class:`RecoveryCodes`
- :mod:`~fastapi_secure.mfa.passkeys`: :class:`Passkeys`, :class:`PasskeyCredential`
- :mod:`~fastapi_secure.mfa.secretbox`: :class:`SecretBox`
- :mod:`~fastapi_secure.mfa.attempts`: :class:`AttemptLimit`
- :mod:`~fastapi_secure.mfa.challenge`: :class:`MFAChallenges` (the MFA step of a login, no HTTP)
- :mod:`~fastapi_secure.mfa.stores`: store protocols, memory and Redis backends

The optional libraries (``pyotp``, ``segno``, ``webauthn``, ``cryptography``)
are imported when a factor is constructed; without them it raises
:class:`~fastapi_secure.errors.MissingDependencyError` naming
``pip install "fastapi-secure[mfa]"``.
"""

from fastapi_secure.mfa.attempts import AttemptLimit
from fastapi_secure.mfa.challenge import MFAChallenge, MFAChallenges, MFATokenError, PendingMFA
from fastapi_secure.mfa.errors import (
    ChallengeError,
    InvalidOTPError,
    OTPReplayError,
    PasskeyError,
    SecretDecryptionError,
    SignCountError,
    TooManyAttemptsError,
)
from fastapi_secure.mfa.passkeys import (
    PasskeyAssertion,
    PasskeyCredential,
    PasskeyOptions,
    Passkeys,
)
from fastapi_secure.mfa.recovery import RecoveryCodes
from fastapi_secure.mfa.secretbox import SecretBox
from fastapi_secure.mfa.totp import TOTP, TOTPAuthenticator, TOTPEnrolment

__all__ = [
    "TOTP",
    "AttemptLimit",
    "ChallengeError",
    "InvalidOTPError",
    "MFAChallenge",
    "MFAChallenges",
    "MFATokenError",
    "OTPReplayError",
    "PasskeyAssertion",
    "PasskeyCredential",
    "PasskeyError",
    "PasskeyOptions",
    "Passkeys",
    "PendingMFA",
    "RecoveryCodes",
    "SecretBox",
    "SecretDecryptionError",
    "SignCountError",
    "TOTPAuthenticator",
    "TOTPEnrolment",
    "TooManyAttemptsError",
]
