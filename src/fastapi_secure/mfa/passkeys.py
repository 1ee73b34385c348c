"""Passkeys (WebAuthn) on ``webauthn`` (py_webauthn): as a second factor or a passwordless login.

py_webauthn does the protocol work (options, attestation and assertion
checks); this module adds what an application must get right around it:

- **Challenges** are random (64 bytes), single use and short-lived: each
  is kept in a :class:`~fastapi_secure.mfa.stores.ChallengeStore` (memory or
  Redis) with a TTL and *taken* (atomically read and deleted) when a response
  comes back, so a response is verified against at most one ceremony. The
  stored entry says which ceremony (registration or authentication) and
  which account it was made for: a challenge swapped between ceremonies or
  accounts is refused.
- **RP ID and origins** come from configuration, never from a request's
  ``Host`` header.
- **User verification** is required for passwordless login (and, by
  default, at registration, since a passkey may serve as a first factor).
- **Sign counter**: a counter that does not grow (when either side is
  non-zero) is refused *after* the signature has been verified, and
  reported to the ``on_sign_count_regression`` hook (a cloned credential).
- Any malformed response gives :class:`~fastapi_secure.mfa.errors.PasskeyError`
  (a 401), never another exception.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi_secure._optional import require
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.mfa.errors import ChallengeError, PasskeyError, SignCountError
from fastapi_secure.mfa.stores.base import ChallengeStore, store_key

__all__ = [
    "CredentialLookup",
    "PasskeyAssertion",
    "PasskeyCredential",
    "PasskeyOptions",
    "Passkeys",
    "SignCountHook",
]

logger = logging.getLogger("fastapi_secure.mfa")

_MAX_RESPONSE_BYTES = 64 * 1024
_MAX_CREDENTIAL_ID = 1023  # WebAuthn Level 3, section 7.1, step 23
_REGISTER = "register"
_AUTHENTICATE = "authenticate"


def _describe(exc: Exception) -> str:
    # For debug logs only (``reason``): py_webauthn says which check failed.
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PasskeyCredential:
    """A registered passkey, as the application stores it (one per authenticator).

    ``id`` is the WebAuthn credential id; ``user_handle`` the opaque WebAuthn
    user id given at registration (random, not the account id);
    ``public_key`` the COSE public key; ``name`` the user's label for it.
    """

    id: bytes
    user_id: str
    user_handle: bytes
    public_key: bytes = field(repr=False)
    sign_count: int
    transports: tuple[str, ...] = ()
    created_at: float = 0.0
    last_used_at: float | None = None
    aaguid: str = ""
    backed_up: bool = False
    device_type: str = "single_device"
    name: str = ""
    """A label the user chose ("work laptop"); empty by default."""

    @property
    def id_b64(self) -> str:
        """The credential id in base64url (what the browser calls ``id``)."""
        return _b64url(self.id)


@dataclass(frozen=True)
class PasskeyOptions:
    """Options to pass to ``navigator.credentials.create()`` / ``.get()``.

    ``public_key`` is JSON-ready (binary fields in base64url), the shape
    ``PublicKeyCredential.parseCreationOptionsFromJSON`` /
    ``parseRequestOptionsFromJSON`` take.
    """

    public_key: dict[str, Any]
    expires_in: float

    @property
    def challenge(self) -> str:
        """The challenge, base64url."""
        return str(self.public_key["challenge"])


@dataclass(frozen=True)
class PasskeyAssertion:
    """A verified authentication: who signed in, with which (updated) credential."""

    user_id: str
    credential: PasskeyCredential
    user_verified: bool


SignCountHook = Callable[[PasskeyCredential, int], Awaitable[None]]
"""``async def hook(stored_credential, presented_count)``: a counter went backwards."""

CredentialLookup = Callable[[bytes], Awaitable[PasskeyCredential | None]]
"""``async def find(credential_id) -> PasskeyCredential | None``: the app's credential lookup."""


class Passkeys:
    """The passkey factor: registration and authentication ceremonies.

    ``rp_id``: your registrable domain (``example.com``); ``origins``: the
    exact origins your pages are served from (``https://example.com``),
    from configuration. ``challenges``: where pending challenges wait
    (``challenge_ttl`` seconds, 5 minutes by default).
    ``second_factor_user_verification``: whether a passkey used *after* a
    password must also verify the user (PIN, biometrics); passwordless login
    always requires it.
    """

    def __init__(
        self,
        *,
        rp_id: str,
        rp_name: str,
        origins: Sequence[str],
        challenges: ChallengeStore,
        challenge_ttl: float = 300.0,
        require_user_verification_at_registration: bool = True,
        second_factor_user_verification: bool = False,
        on_sign_count_regression: SignCountHook | None = None,
        clock: Clock = system_clock,
    ) -> None:
        require("webauthn", extra="mfa", feature="Passkeys")
        if not rp_id or "/" in rp_id or ":" in rp_id or rp_id != rp_id.lower():
            raise ConfigurationError("rp_id must be a lowercase domain name, like 'example.com'")
        if isinstance(origins, str) or not origins:
            raise ConfigurationError("origins must be a non-empty list of origins")
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.path:
                raise ConfigurationError(f"not an origin: {origin!r} (scheme://host[:port])")
            if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1"):
                raise ConfigurationError("an http:// origin is only allowed for localhost")
            host = parts.hostname
            if host != rp_id and not host.endswith(f".{rp_id}"):
                raise ConfigurationError(f"origin {origin!r} is not within rp_id {rp_id!r}")
        if not (isinstance(challenge_ttl, (int, float)) and 0 < challenge_ttl <= 3600):
            raise ConfigurationError("challenge_ttl must be from 0 to 3600 seconds")
        self.rp_id = rp_id
        self.rp_name = rp_name
        self.origins = tuple(origins)
        self.challenge_ttl = float(challenge_ttl)
        self._challenges = challenges
        self._uv_at_registration = require_user_verification_at_registration
        self._uv_second_factor = second_factor_user_verification
        self._on_regression = on_sign_count_regression
        self._clock = clock

    def __repr__(self) -> str:
        return f"Passkeys(rp_id={self.rp_id!r}, origins={list(self.origins)!r})"

    # -- challenges ------------------------------------------------------------

    async def _remember(self, challenge: bytes, entry: Mapping[str, Any]) -> None:
        key = store_key("webauthn", _b64url(challenge))
        await self._challenges.put(key, json.dumps(entry), self.challenge_ttl)

    async def _take(self, challenge: bytes, purpose: str) -> dict[str, Any]:
        value = await self._challenges.take(store_key("webauthn", _b64url(challenge)))
        if value is None:
            raise ChallengeError(reason="challenge unknown, expired or already used")
        entry: dict[str, Any] = json.loads(value)
        if entry.get("p") != purpose:
            raise ChallengeError(reason=f"challenge was made for {entry.get('p')!r}")
        return entry

    @staticmethod
    def _options_dict(options: Any) -> dict[str, Any]:
        from webauthn import options_to_json

        result: dict[str, Any] = json.loads(options_to_json(options))
        return result

    # -- registration ------------------------------------------------------------

    async def registration_options(
        self,
        user_id: str,
        user_name: str,
        *,
        display_name: str | None = None,
        existing: Sequence[PasskeyCredential] = (),
        user_handle: bytes | None = None,
    ) -> PasskeyOptions:
        """Options to register a new passkey for ``user_id``.

        ``existing``: the account's passkeys (excluded, so one authenticator
        is not registered twice; their user handle is reused). ``user_handle``:
        the account's WebAuthn user id; random when the account has none.
        """
        from webauthn import generate_registration_options
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            AuthenticatorTransport,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        handle = user_handle or (existing[0].user_handle if existing else secrets.token_bytes(32))
        known = {t.value for t in AuthenticatorTransport}
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_name=user_name,
            user_id=handle,
            user_display_name=display_name or user_name,
            timeout=int(self.challenge_ttl * 1000),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                require_resident_key=True,
                user_verification=UserVerificationRequirement.REQUIRED
                if self._uv_at_registration
                else UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(
                    id=credential.id,
                    transports=[
                        AuthenticatorTransport(t) for t in credential.transports if t in known
                    ],
                )
                for credential in existing
            ],
        )
        await self._remember(
            options.challenge, {"p": _REGISTER, "u": user_id, "h": _b64url(handle)}
        )
        return PasskeyOptions(self._options_dict(options), self.challenge_ttl)

    async def verify_registration(
        self,
        user_id: str,
        response: str | Mapping[str, Any],
        *,
        find_credential: CredentialLookup | None = None,
    ) -> PasskeyCredential:
        """Check the browser's ``navigator.credentials.create()`` answer; returns the record.

        ``find_credential``: your lookup by credential id; a credential id
        that is already registered (to anyone) is refused, as WebAuthn asks
        (section 7.1, step 26). Keep credential ids unique in your table too.

        Raises :class:`~fastapi_secure.mfa.errors.ChallengeError` for a
        challenge that is not a pending registration challenge of ``user_id``,
        :class:`~fastapi_secure.mfa.errors.PasskeyError` for anything else.
        """
        from webauthn import verify_registration_response
        from webauthn.helpers import parse_registration_credential_json

        credential = self._parse(response, parse_registration_credential_json)
        challenge = self._challenge_of(credential)
        entry = await self._take(challenge, _REGISTER)
        if entry.get("u") != user_id:
            raise ChallengeError(reason="challenge was made for another account")
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=list(self.origins),
                require_user_verification=self._uv_at_registration,
            )
        except Exception as exc:
            raise PasskeyError(reason=f"registration refused: {_describe(exc)}") from None
        if len(verified.credential_id) > _MAX_CREDENTIAL_ID:
            raise PasskeyError(reason="credential id longer than 1023 bytes")
        if find_credential is not None and await find_credential(verified.credential_id):
            raise PasskeyError(reason="credential id already registered")
        transports = tuple(t.value for t in credential.response.transports or ())
        return PasskeyCredential(
            id=verified.credential_id,
            user_id=user_id,
            user_handle=_unb64url(entry["h"]),
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=transports,
            created_at=self._clock(),
            aaguid=verified.aaguid,
            backed_up=verified.credential_backed_up,
            device_type=verified.credential_device_type.value,
        )

    # -- authentication ------------------------------------------------------------

    async def authentication_options(
        self, user_id: str | None = None, credentials: Sequence[PasskeyCredential] = ()
    ) -> PasskeyOptions:
        """Options to sign in with a passkey.

        With ``user_id`` (a second factor after a password): only that
        account's ``credentials`` are allowed. Without (passwordless): any
        discoverable credential, user verification required.
        """
        from webauthn import generate_authentication_options
        from webauthn.helpers.structs import (
            PublicKeyCredentialDescriptor,
            UserVerificationRequirement,
        )

        passwordless = user_id is None
        require_uv = passwordless or self._uv_second_factor
        options = generate_authentication_options(
            rp_id=self.rp_id,
            timeout=int(self.challenge_ttl * 1000),
            allow_credentials=[
                PublicKeyCredentialDescriptor(id=credential.id) for credential in credentials
            ]
            if not passwordless
            else [],
            user_verification=UserVerificationRequirement.REQUIRED
            if require_uv
            else UserVerificationRequirement.PREFERRED,
        )
        await self._remember(
            options.challenge, {"p": _AUTHENTICATE, "u": user_id, "uv": require_uv}
        )
        return PasskeyOptions(self._options_dict(options), self.challenge_ttl)

    async def verify_authentication(
        self,
        response: str | Mapping[str, Any],
        *,
        find_credential: CredentialLookup,
        user_id: str | None = None,
    ) -> PasskeyAssertion:
        """Check the browser's ``navigator.credentials.get()`` answer.

        ``find_credential`` loads a stored credential by id. ``user_id``: the
        account of this login attempt when the passkey is a second factor
        (the challenge must have been made for it). Returns the account and
        the credential with its new sign count and ``last_used_at``: store it.
        """
        from webauthn import verify_authentication_response
        from webauthn.helpers import parse_authentication_credential_json

        credential = self._parse(response, parse_authentication_credential_json)
        challenge = self._challenge_of(credential)
        entry = await self._take(challenge, _AUTHENTICATE)
        bound = entry.get("u")
        if bound != user_id:
            raise ChallengeError(reason="challenge was made for another login")
        stored = await find_credential(credential.raw_id)
        if stored is None:
            raise PasskeyError(reason="unknown credential")
        if bound is not None and stored.user_id != bound:
            raise PasskeyError(reason="credential belongs to another account")
        handle = credential.response.user_handle
        if bound is None and handle != stored.user_handle:
            raise PasskeyError(reason="user handle does not match the credential")
        try:
            # Sign count 0 here: the counter is checked below, after the
            # signature, so only a genuine assertion can report a clone.
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=list(self.origins),
                credential_public_key=stored.public_key,
                credential_current_sign_count=0,
                require_user_verification=bool(entry.get("uv")),
            )
        except Exception as exc:
            raise PasskeyError(reason=f"assertion refused: {_describe(exc)}") from None
        presented = verified.new_sign_count
        if (presented > 0 or stored.sign_count > 0) and presented <= stored.sign_count:
            await self._report_regression(stored, presented)
            raise SignCountError(
                reason=f"sign count {presented} <= {stored.sign_count}",
                user_id=stored.user_id,
                credential_id=stored.id_b64,
                stored_count=stored.sign_count,
                presented_count=presented,
            )
        updated = dataclasses.replace(
            stored,
            sign_count=presented,
            last_used_at=self._clock(),
            backed_up=verified.credential_backed_up,
        )
        return PasskeyAssertion(stored.user_id, updated, verified.user_verified)

    async def _report_regression(self, stored: PasskeyCredential, presented: int) -> None:
        logger.warning("passkey sign count went backwards for credential %s", stored.id_b64[:16])
        if self._on_regression is None:
            return
        try:
            await self._on_regression(stored, presented)
        except Exception as exc:
            logger.error("on_sign_count_regression hook raised %s", type(exc).__name__)

    # -- parsing ---------------------------------------------------------------------

    @staticmethod
    def _parse(response: str | Mapping[str, Any], parser: Callable[[Any], Any]) -> Any:
        try:
            text = response if isinstance(response, str) else json.dumps(dict(response))
        except (TypeError, ValueError):
            raise PasskeyError(reason="response is not JSON") from None
        if len(text.encode("utf-8", "surrogatepass")) > _MAX_RESPONSE_BYTES:
            raise PasskeyError(reason="response too large")
        try:
            return parser(text)
        except Exception as exc:
            raise PasskeyError(reason=f"malformed response: {type(exc).__name__}") from None

    @staticmethod
    def _challenge_of(credential: Any) -> bytes:
        from webauthn.helpers import parse_client_data_json

        try:
            challenge: bytes = parse_client_data_json(
                credential.response.client_data_json
            ).challenge
        except Exception as exc:
            raise PasskeyError(reason=f"malformed client data: {type(exc).__name__}") from None
        if not challenge:
            raise ChallengeError(reason="no challenge")
        return challenge
