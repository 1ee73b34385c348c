"""Security events: one model for what a security team wants to see (OWASP A09).

A :class:`SecurityEvent` says what happened (an :class:`EventType`), when, to
whom (``subject``, ``session_id``), from where (``client``, ``user_agent``)
and why (``reason``, ``extra``). Blocks that take ``events=`` (the rate
limiter, the token issuer, the cookie transport) emit them to an
:class:`EventSink`; :class:`SecurityEvents` is the default sink: one record
per event on the standard ``logging`` module (logger
``fastapi_secure.events``, every field as ``extra=``) and an optional async
hook for the application's own sink (a SIEM, a table, a queue).

Every event passes a redaction step before anything sees it:

* the client address is coarsened to its /24 (IPv4) or /64 (IPv6) network by
  default, or kept, or omitted (``client_address=``);
* session ids are replaced by a short digest: events of one session still
  correlate, but a log line is not a handle on the session;
* values under a key that names a secret (``password``, ``token``,
  ``secret``, ``api_key``, ``cookie``, ``otp``, ...) are replaced, and so is
  anything shaped like a JWT, ``Bearer``/``Basic`` credentials, ``name=value``
  secrets or a long opaque string, wherever it appears (reason, extra, user
  agent);
* control characters are replaced (no forged log lines) and every text is
  cut to a bounded length.

A sink never breaks the caller: an exception or a hang in the hook is logged
and swallowed (see :func:`emit_event`).

This module is core: it imports neither FastAPI nor Starlette.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

import anyio

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError

if TYPE_CHECKING:
    from fastapi_secure.clientip import TrustedProxies

__all__ = [
    "EVENTS_LOGGER",
    "SECRET_FIELD_MARKERS",
    "ClientAddressMode",
    "EventHook",
    "EventSink",
    "EventType",
    "SecurityEvent",
    "SecurityEvents",
    "emit_event",
    "pseudonymize_login_name",
]

EVENTS_LOGGER = "fastapi_secure.events"
"""Name of the logger :class:`SecurityEvents` writes to by default."""

logger = logging.getLogger(EVENTS_LOGGER)

ClientAddressMode = Literal["network", "full", "omit"]


class EventType(str, enum.Enum):
    """What happened. The values are stable: alert rules and dashboards match them."""

    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOCKOUT_STARTED = "lockout_started"
    LOGOUT = "logout"
    LOGOUT_EVERYWHERE = "logout_everywhere"
    SESSION_REVOKED = "session_revoked"
    REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"
    PASSWORD_RESET = "password_reset"
    EMAIL_VERIFIED = "email_verified"
    MFA_ADDED = "mfa_added"
    MFA_REMOVED = "mfa_removed"
    MFA_FAILED = "mfa_failed"
    MFA_SUCCEEDED = "mfa_succeeded"
    MFA_TOKEN_REFUSED = "mfa_token_refused"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    RECOVERY_CODE_USED = "recovery_code_used"
    PASSKEY_CLONE_SUSPECTED = "passkey_clone_suspected"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    API_KEY_ROTATED = "api_key_rotated"
    API_KEY_REFUSED = "api_key_refused"
    CSRF_REFUSED = "csrf_refused"
    ORIGIN_REFUSED = "origin_refused"
    RATE_LIMITED = "rate_limited"
    STORE_UNAVAILABLE = "store_unavailable"


_WARNING_EVENTS = frozenset(
    {
        EventType.LOGIN_FAILED,
        EventType.LOCKOUT_STARTED,
        EventType.MFA_FAILED,
        EventType.MFA_TOKEN_REFUSED,
        EventType.API_KEY_REFUSED,
        EventType.CSRF_REFUSED,
        EventType.ORIGIN_REFUSED,
        EventType.RATE_LIMITED,
        EventType.STORE_UNAVAILABLE,
    }
)

DEFAULT_LEVELS: Mapping[EventType, int] = {
    kind: (
        logging.ERROR
        if kind in (EventType.REFRESH_REUSE_DETECTED, EventType.PASSKEY_CLONE_SUSPECTED)
        else logging.WARNING
        if kind in _WARNING_EVENTS
        else logging.INFO
    )
    for kind in EventType
}
"""Log level of each event type: refusals WARNING, token theft and a cloned passkey
ERROR, the rest INFO."""


@dataclass(frozen=True)
class SecurityEvent:
    """One security-relevant fact.

    ``time`` is Unix seconds. ``client`` is the client's address as seen by
    the emitter; sinks coarsen or drop it. ``extra`` holds type-specific
    details (a rate-limit policy, a second factor's kind); never put a
    credential in it, though :class:`SecurityEvents` redacts one if you do.
    """

    type: EventType
    time: float
    subject: str | None = None
    session_id: str | None = None
    client: str | None = None
    user_agent: str | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        type: EventType | str,
        *,
        scope: Mapping[str, Any] | None = None,
        trusted_proxies: TrustedProxies | None = None,
        clock: Clock = system_clock,
        subject: str | None = None,
        session_id: str | None = None,
        client: str | None = None,
        user_agent: str | None = None,
        reason: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> SecurityEvent:
        """An event stamped with ``clock()``; client and user agent read from
        an ASGI ``scope`` when given (the client behind ``trusted_proxies``
        only when those are given, else the socket peer)."""
        if scope is not None:
            if client is None:
                client = _client_of(scope, trusted_proxies)
            if user_agent is None:
                user_agent = _header(scope, b"user-agent")
        return cls(
            type=EventType(type),
            time=float(clock()),
            subject=subject,
            session_id=session_id,
            client=client,
            user_agent=user_agent,
            reason=reason,
            extra=dict(extra or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data: ``type`` as its value, ``time`` as ISO 8601 UTC."""
        when = (
            datetime.fromtimestamp(self.time, tz=timezone.utc) if math.isfinite(self.time) else None
        )
        return {
            "type": self.type.value,
            "time": when.isoformat().replace("+00:00", "Z") if when else None,
            "subject": self.subject,
            "session_id": self.session_id,
            "client": self.client,
            "user_agent": self.user_agent,
            "reason": self.reason,
            "extra": dict(self.extra),
        }


@runtime_checkable
class EventSink(Protocol):
    """Where events go. :meth:`emit` should not raise; :func:`emit_event` guards it anyway."""

    async def emit(self, event: SecurityEvent) -> None: ...


EventHook = Callable[[SecurityEvent], Awaitable[None]]
"""The application's own sink: an async callable receiving each redacted event."""


async def emit_event(
    sink: EventSink | None,
    type: EventType,
    **fields: Any,
) -> None:
    """Build an event (:meth:`SecurityEvent.create` ``fields``) and hand it to ``sink``.

    The call every emitting block makes: nothing happens when ``sink`` is
    None, and no exception of building or emitting the event reaches the
    caller (it is logged), so reporting a refusal never changes the answer.
    """
    if sink is None:
        return
    try:
        await sink.emit(SecurityEvent.create(type, **fields))
    except Exception as exc:
        # Its class only: the message (and a traceback's) may hold what was being reported.
        logger.error(
            "security event %s could not be emitted: %s",
            EventType(type).value,
            _failure_name(exc),
        )


def _failure_name(exc: BaseException) -> str:
    """What a failure is logged as here: its class, never its message."""
    return type(exc).__name__


# --- redaction -------------------------------------------------------------------------

REDACTED = "[redacted]"

SECRET_FIELD_MARKERS: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
    "otp",
)
"""Field names holding one of these hold a secret: an event redacts their values, and a
422 answer (:mod:`fastapi_secure.http_errors`) never repeats their messages."""

_SECRET_KEY_MARKERS = (*SECRET_FIELD_MARKERS, "code_verifier", "recovery_code", "signature")
# Names that contain a marker but hold an identifier, not the secret itself.
_SAFE_KEY_SUFFIXES = ("_id", "_prefix", "_kid", "_type", "_kind", "_count", "_name")

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
_AUTH_CREDENTIALS = re.compile(
    r"\b(Bearer|Basic|Digest|DPoP|ApiKey)\s+[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE
)
_NAMED_SECRET = re.compile(
    r"\b([A-Za-z_-]*(?:" + "|".join(_SECRET_KEY_MARKERS) + r")[A-Za-z_-]*)"
    r"(\s*[=:]\s*|\s+(?=[\"']))"
    r"(\"[^\"]*\"|'[^']*'|[^\s,;&]+)",
    re.IGNORECASE,
)
# An opaque credential (refresh token, API key, session cookie) is a long run of
# base64/base32/hex characters mixing letters and digits; words and paths are not.
_OPAQUE = re.compile(r"[A-Za-z0-9_\-+/=]{24,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

MAX_TEXT = 256
MAX_EXTRA_ITEMS = 32
MAX_DEPTH = 3


def _is_secret_key(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    if lowered in ("kid", "key_id", "token_type", "token_use"):
        return False
    if not any(marker in lowered for marker in _SECRET_KEY_MARKERS):
        return False
    return not lowered.endswith(_SAFE_KEY_SUFFIXES)


def _is_identifier_key(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    return lowered in ("id", "kid", "sub", "jti") or lowered.endswith("_id")


def _looks_opaque(match: re.Match[str]) -> str:
    text = match.group(0)
    has_letter = any(ch.isalpha() for ch in text)
    has_digit = any(ch.isdigit() for ch in text)
    return REDACTED if has_letter and has_digit else text


def redact_text(text: str, *, limit: int = MAX_TEXT, identifier: bool = False) -> str:
    """``text`` without credentials or control characters, at most ``limit`` characters.

    ``identifier=True`` (a subject, a ``*_id`` value) keeps long opaque strings:
    a UUID is an id, not a credential.
    """
    text = _CONTROL.sub("?", text)
    text = _JWT.sub(REDACTED, text)
    text = _AUTH_CREDENTIALS.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _NAMED_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    if not identifier:
        text = _OPAQUE.sub(_looks_opaque, text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _redact_value(value: Any, depth: int, *, identifier: bool = False) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return _redact_value(value.value, depth)
    if isinstance(value, str):
        return redact_text(value, identifier=identifier)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return REDACTED
    if depth >= MAX_DEPTH:
        return "[nested]"
    if isinstance(value, Mapping):
        return _redact_mapping(value, depth + 1)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else list(value)
        return [_redact_value(item, depth + 1) for item in items[:MAX_EXTRA_ITEMS]]
    # Anything else (SecretStr, a model, an exception) could render a secret: its type only.
    return f"[{type(value).__name__}]"


def _redact_mapping(data: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for index, (key, value) in enumerate(data.items()):
        if index >= MAX_EXTRA_ITEMS:
            result["..."] = f"{len(data) - MAX_EXTRA_ITEMS} more"
            break
        name = redact_text(str(key), limit=64)
        if _is_secret_key(name):
            result[name] = REDACTED
        else:
            result[name] = _redact_value(value, depth, identifier=_is_identifier_key(name))
    return result


def coarsen_address(
    address: str | None,
    mode: ClientAddressMode,
    *,
    ipv4_prefix: int = 24,
    ipv6_prefix: int = 64,
) -> str | None:
    """``address`` kept (``"full"``), cut to its network (``"network"``) or dropped.

    Anything that is not an IP address is dropped: it cannot be coarsened.
    """
    if address is None or mode == "omit":
        return None
    try:
        parsed = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    if mode == "full":
        return str(parsed)
    prefix = ipv4_prefix if parsed.version == 4 else ipv6_prefix
    network = ipaddress.ip_network(f"{parsed}/{prefix}", strict=False)
    return str(network)


def pseudonymize_session(session_id: str) -> str:
    """A short, stable digest of a session id: correlates events, grants nothing."""
    digest = hashlib.blake2b(
        session_id.encode("utf-8", "surrogatepass"), digest_size=8, person=b"fs-event-sid"
    )
    return digest.hexdigest()


def pseudonymize_login_name(login_name: str) -> str:
    """A short, stable digest of a login name as typed: failures of one name correlate.

    Events never carry a login name in clear: a user who types a password into
    the name field must not find it in the log. Callers normalize first
    (:func:`~fastapi_secure.accounts.users.normalize_login_name`). A pseudonym,
    not anonymity: whoever holds a candidate name can compute its digest, which
    is how an investigation finds that name's events.
    """
    digest = hashlib.blake2b(
        login_name.encode("utf-8", "surrogatepass"), digest_size=8, person=b"fs-event-name"
    )
    return digest.hexdigest()


class SecurityEvents:
    """The default :class:`EventSink`: a log record per event, plus an app hook.

    Args:
        logger: the logger (or its name) records go to; each record carries
            the event's fields as ``extra=`` (``event_type``, ``event_time``,
            ``event_subject``, ``event_session_id``, ``event_client``,
            ``event_user_agent``, ``event_reason``, ``event_extra``) and the
            whole event as ``security_event`` (a dict).
        hook: an async callable given each redacted event (the app's own
            sink). Its exceptions are logged, never raised; it may run at most
            ``hook_timeout`` seconds.
        client_address: ``"network"`` (default: the /24 or /64), ``"full"``
            or ``"omit"``.
        ipv4_prefix: the IPv4 network size of ``"network"``.
        ipv6_prefix: the IPv6 network size of ``"network"``.
        pseudonymize_sessions: log a digest of session ids (default) rather
            than the id itself.
        levels: log level per event type, over :data:`DEFAULT_LEVELS`.
        log: False sends events to the hook only.
    """

    def __init__(
        self,
        *,
        logger: logging.Logger | str = EVENTS_LOGGER,
        hook: EventHook | None = None,
        client_address: ClientAddressMode = "network",
        ipv4_prefix: int = 24,
        ipv6_prefix: int = 64,
        pseudonymize_sessions: bool = True,
        levels: Mapping[EventType, int] | None = None,
        hook_timeout: float = 5.0,
        log: bool = True,
    ) -> None:
        if client_address not in ("network", "full", "omit"):
            raise ConfigurationError("client_address must be 'network', 'full' or 'omit'")
        if not 0 <= ipv4_prefix <= 32 or not 0 <= ipv6_prefix <= 128:
            raise ConfigurationError("ipv4_prefix must be 0-32 and ipv6_prefix 0-128")
        if hook is not None and not callable(hook):
            raise ConfigurationError("hook must be an async callable")
        if not hook_timeout > 0:
            raise ConfigurationError("hook_timeout must be positive seconds")
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.hook = hook
        self.client_address: ClientAddressMode = client_address
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self.pseudonymize_sessions = pseudonymize_sessions
        self.levels = {**DEFAULT_LEVELS, **(levels or {})}
        self.hook_timeout = float(hook_timeout)
        self.log = log

    def __repr__(self) -> str:
        return (
            f"SecurityEvents(logger={self.logger.name!r}, hook={self.hook is not None}, "
            f"client_address={self.client_address!r})"
        )

    def redact(self, event: SecurityEvent) -> SecurityEvent:
        """``event`` as sinks may see it (see the module docs for what changes)."""
        session = event.session_id
        if session is not None:
            session = (
                pseudonymize_session(session)
                if self.pseudonymize_sessions
                else redact_text(session, limit=128, identifier=True)
            )
        return replace(
            event,
            type=EventType(event.type),
            subject=(
                None
                if event.subject is None
                else redact_text(event.subject, limit=128, identifier=True)
            ),
            session_id=session,
            client=coarsen_address(
                event.client,
                self.client_address,
                ipv4_prefix=self.ipv4_prefix,
                ipv6_prefix=self.ipv6_prefix,
            ),
            user_agent=None if event.user_agent is None else redact_text(event.user_agent),
            reason=None if event.reason is None else redact_text(event.reason),
            extra=_redact_mapping(event.extra, 0),
        )

    async def emit(self, event: SecurityEvent) -> None:
        """Redact, log, then call the hook. Never raises."""
        try:
            clean = self.redact(event)
        except Exception as exc:
            logger.error("security event dropped: it could not be redacted: %s", _failure_name(exc))
            return
        if self.log:
            self._log(clean)
        if self.hook is not None:
            await self._call_hook(clean)

    def _log(self, event: SecurityEvent) -> None:
        data = event.to_dict()
        fields = {f"event_{name}": value for name, value in data.items()}
        summary = " ".join(
            f"{name}={data[name]}"
            for name in ("subject", "client", "reason")
            if data[name] is not None
        )
        self.logger.log(
            self.levels.get(event.type, logging.INFO),
            "security event %s%s",
            event.type.value,
            f" {summary}" if summary else "",
            extra={"security_event": data, **fields},
        )

    async def _call_hook(self, event: SecurityEvent) -> None:
        assert self.hook is not None
        try:
            with anyio.fail_after(self.hook_timeout):
                await self.hook(event)
        except TimeoutError:
            logger.error(
                "security event hook timed out after %ss on %s", self.hook_timeout, event.type.value
            )
        except Exception as exc:
            logger.error(
                "security event hook failed on %s: %s", event.type.value, _failure_name(exc)
            )


# --- reading an ASGI scope without Starlette ------------------------------------------------


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers") or ()
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _client_of(scope: Mapping[str, Any], trusted_proxies: TrustedProxies | None) -> str | None:
    if trusted_proxies is not None:
        address = trusted_proxies.client_ip(scope)  # type: ignore[arg-type]
        return None if address is None else str(address)
    client = scope.get("client")
    if isinstance(client, (tuple, list)) and client:
        return str(client[0])
    return None
