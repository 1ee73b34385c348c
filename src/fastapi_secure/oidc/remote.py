"""Key sets fetched from an identity provider: discovery, caching, bounded refresh.

A :class:`RemoteKeySet` turns an issuer URL into the provider's signing keys:

1. OpenID discovery (``{issuer}/.well-known/openid-configuration``); the
   document's ``issuer`` must equal the configured one exactly (OpenID
   Connect Discovery 1.0, section 4.3), else a look-alike provider could
   hand us its keys;
2. the ``jwks_uri`` is fetched with ``httpx``, over HTTPS only (plain http
   only for a loopback address, and only with ``allow_insecure_loopback=True``),
   without following redirects, within ``timeout`` seconds for the whole
   exchange and ``max_bytes`` of body (streamed: a 50 MB answer costs
   ``max_bytes``, not 50 MB);
3. each key becomes a :class:`~fastapi_secure.tokens.keys.Key` with one pinned
   algorithm (``alg`` of the JWK, or ``rsa_algorithm`` for RSA keys that name
   none, as Entra ID publishes them). A JWK Set holding a symmetric (``oct``)
   key is refused as a whole: a shared secret published is no secret, and
   accepting it would let anyone sign. Encryption keys are skipped.

The set is cached for the ``Cache-Control: max-age`` the provider sends,
clamped to ``[min_ttl, max_ttl]`` (``default_ttl`` without one). A token
naming a ``kid`` not in the set triggers a refresh (a rotation at the
provider), but fetches of any kind happen at most once per
``min_refresh_interval``: a flood of tokens with random kids costs one fetch,
and concurrent misses wait for the one fetch in flight. When a refresh fails,
the last good set keeps serving; only when none was ever fetched is
:class:`~fastapi_secure.oidc.errors.ProviderUnavailableError` (503) raised.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import anyio
import jwt

from fastapi_secure._optional import require
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError, InvalidTokenError
from fastapi_secure.oidc.errors import ProviderUnavailableError
from fastapi_secure.tokens.keys import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_MAX_TOKEN_BYTES,
    Key,
    KeySet,
    VerifiedJWS,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["FetchError", "HTTPClientOwner", "RemoteKeySet", "check_provider_url", "fetch_json"]

logger = logging.getLogger("fastapi_secure.oidc")

DISCOVERY_PATH = "/.well-known/openid-configuration"
DEFAULT_MAX_BYTES = 256 * 1024
"""Largest discovery or JWK Set document read (bytes); real ones are a few KB."""

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)
_LOOPBACK_NAMES = frozenset({"localhost"})


class FetchError(Exception):
    """A document could not be fetched or was unacceptable (message: the reason).

    Raised by :func:`fetch_json`; the key set, the verifiers and the login turn it
    into their own refusals, so it never reaches a client as such.
    """


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_provider_url(url: str, *, allow_insecure_loopback: bool = False) -> str:
    """``url`` if it may be fetched: ``https://``, or ``http://`` to loopback when allowed.

    Raises :class:`ConfigurationError` otherwise (also for credentials or a
    fragment in the URL).
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError("a provider URL must be a non-empty string")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ConfigurationError(f"not a URL: {url!r}") from None
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None or parts.fragment:
        raise ConfigurationError(f"{url!r} must name a host, without credentials or fragment")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise ConfigurationError(f"{url!r} contains spaces or control characters")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and _is_loopback(host):
        if allow_insecure_loopback:
            return url
        raise ConfigurationError(
            f"{url!r} is plain http: pass allow_insecure_loopback=True (local tests only)"
        )
    raise ConfigurationError(f"{url!r} must use https")


def _ttl_from(cache_control: str | None, *, default: float, low: float, high: float) -> float:
    if cache_control:
        if _NO_CACHE.search(cache_control):
            return low
        match = _MAX_AGE.search(cache_control)
        if match:
            return min(max(float(match.group(1)), low), high)
    return default


def _strict_json(data: bytes) -> dict[str, Any]:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(items)
        if len(result) != len(items):
            raise ValueError("duplicate member name")
        return result

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError) as exc:
        raise FetchError(f"not a JSON document ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise FetchError("not a JSON object")
    return value


async def fetch_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    time_limit: float,
    max_bytes: int,
    method: str = "GET",
    data: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], httpx.Headers]:
    """GET (or POST ``data`` as a form) ``url`` and parse a JSON object, bounded in time and size.

    ``time_limit`` (seconds) bounds the whole exchange (a server dripping one byte a second
    cannot hold it longer); the body is streamed and abandoned past
    ``max_bytes``. Redirects are not followed. Raises ``FetchError``.
    """
    httpx_module = require("httpx", extra="oidc", feature="Identity provider fetches")
    try:
        with anyio.fail_after(time_limit):
            async with client.stream(
                method,
                url,
                data=data,
                auth=auth,
                headers={"Accept": "application/json", **(headers or {})},
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise FetchError(f"HTTP {response.status_code} from {url}")
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(f"{url} declares {declared} bytes, over {max_bytes}")
                body = bytearray()
                # Decoded bytes are counted, so a compressed bomb stops at the bound too.
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchError(f"{url} sent more than {max_bytes} bytes")
                answer_headers = response.headers
    except TimeoutError:
        raise FetchError(f"{url} did not answer within {time_limit} s") from None
    except httpx_module.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__} fetching {url}") from None
    except OSError as exc:
        raise FetchError(f"{type(exc).__name__} fetching {url}") from None
    return _strict_json(bytes(body)), answer_headers


def _unverified_kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    return kid if isinstance(kid, str) else None


def _parse_jwks(
    document: Mapping[str, Any], *, rsa_algorithm: str, max_keys: int, max_token_bytes: int
) -> KeySet:
    members = document.get("keys")
    if not isinstance(members, list) or not members:
        raise FetchError('the JWK Set has no "keys" list')
    if len(members) > max_keys:
        raise FetchError(f"the JWK Set holds {len(members)} keys, over {max_keys}")
    keys: dict[str, Key] = {}
    for member in members:
        if not isinstance(member, Mapping):
            raise FetchError("a JWK Set member is not an object")
        if member.get("kty") == "oct":
            # A published shared secret: whoever reads the JWKS could sign.
            raise FetchError("the JWK Set publishes a symmetric (oct) key")
        kid = member.get("kid")
        use = member.get("use")
        ops = member.get("key_ops")
        if not isinstance(kid, str) or (use is not None and use != "sig"):
            continue
        if isinstance(ops, list) and "verify" not in ops:
            continue
        algorithm = member.get("alg")
        if algorithm is None and member.get("kty") == "RSA":
            algorithm = rsa_algorithm
        if algorithm is not None and algorithm not in ASYMMETRIC_ALGORITHMS:
            continue  # an encryption algorithm (RSA-OAEP...) or one we do not verify
        try:
            key = Key.from_jwk(member, algorithm=algorithm)
        except ConfigurationError as exc:
            logger.warning("skipping JWK %r from the provider: %s", kid, exc)
            continue
        if key.is_symmetric:  # pragma: no cover - kty oct is refused above
            raise FetchError("the JWK Set publishes a symmetric key")
        if key.kid in keys:
            raise FetchError(f"the JWK Set has two keys with kid {key.kid!r}")
        # A provider that publishes private members by mistake still only verifies here.
        keys[key.kid] = key.public_key() if key.can_sign else key
    if not keys:
        raise FetchError("the JWK Set has no usable signature key")
    return KeySet.verification_only(keys.values(), max_token_bytes=max_token_bytes)


_Owner = TypeVar("_Owner", bound="HTTPClientOwner")


class HTTPClientOwner:
    """The ``httpx.AsyncClient`` of a block that fetches from a provider.

    A client given by the application is used as is and never closed here;
    without one, a client (no redirects followed, ``timeout`` seconds) is
    created on first use and closed by :meth:`aclose` (or ``async with``).
    """

    timeout: float

    def _init_http_client(self, http_client: httpx.AsyncClient | None, *, feature: str) -> None:
        self._httpx = require("httpx", extra="oidc", feature=feature)
        self._client = http_client
        self._owns_client = http_client is None

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient`` used for every fetch (created on first use)."""
        if self._client is None:
            self._client = self._httpx.AsyncClient(follow_redirects=False, timeout=self.timeout)
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self: _Owner) -> _Owner:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


@dataclass(frozen=True)
class _Snapshot:
    keys: KeySet
    expires_at: float


class RemoteKeySet(HTTPClientOwner):
    """The signing keys of one identity provider, fetched and kept fresh.

    ``issuer`` is the provider's issuer identifier, exactly as its tokens
    carry it in ``iss`` (e.g. ``https://login.example.com/realms/main``).
    Pass ``jwks_uri`` to skip discovery for providers that have none.

    Use :meth:`verify` to check a compact JWS against the provider's keys;
    :class:`~fastapi_secure.oidc.verifier.ProviderTokenVerifier` does that and
    validates the claims. Close with :meth:`aclose` (or ``async with``) when
    the client was created here.
    """

    def __init__(
        self,
        issuer: str,
        *,
        jwks_uri: str | None = None,
        allow_insecure_loopback: bool = False,
        rsa_algorithm: str = "RS256",
        min_refresh_interval: float = 30.0,
        default_ttl: float = 300.0,
        min_ttl: float = 60.0,
        max_ttl: float = 86_400.0,
        timeout: float = 5.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_keys: int = 64,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._init_http_client(http_client, feature="RemoteKeySet")
        self.allow_insecure_loopback = allow_insecure_loopback
        self.issuer = check_provider_url(issuer, allow_insecure_loopback=allow_insecure_loopback)
        self._jwks_uri = (
            check_provider_url(jwks_uri, allow_insecure_loopback=allow_insecure_loopback)
            if jwks_uri is not None
            else None
        )
        if rsa_algorithm not in ASYMMETRIC_ALGORITHMS or rsa_algorithm[:2] not in ("RS", "PS"):
            raise ConfigurationError("rsa_algorithm must be one of RS256..RS512, PS256..PS512")
        if not 0 < min_ttl <= default_ttl <= max_ttl:
            raise ConfigurationError("need 0 < min_ttl <= default_ttl <= max_ttl (seconds)")
        if min_refresh_interval <= 0 or timeout <= 0:
            raise ConfigurationError("min_refresh_interval and timeout must be positive seconds")
        if max_bytes < 1024 or max_keys < 1:
            raise ConfigurationError("max_bytes must be at least 1024 and max_keys at least 1")
        self.rsa_algorithm = rsa_algorithm
        self.min_refresh_interval = float(min_refresh_interval)
        self.default_ttl = float(default_ttl)
        self.min_ttl = float(min_ttl)
        self.max_ttl = float(max_ttl)
        self.timeout = float(timeout)
        self.max_bytes = max_bytes
        self.max_keys = max_keys
        self.max_token_bytes = max_token_bytes
        self.clock = clock
        self._metadata: dict[str, Any] | None = None
        self._snapshot: _Snapshot | None = None
        self._last_attempt: float | None = None
        self._last_failure: str | None = None
        self._lock = anyio.Lock()
        self.fetch_count = 0
        """JWK Set fetches attempted (successful or not), for tests and metrics."""

    def __repr__(self) -> str:
        return f"RemoteKeySet(issuer={self.issuer!r})"

    # -- fetching ------------------------------------------------------------

    async def _get(self, url: str) -> tuple[dict[str, Any], httpx.Headers]:
        return await fetch_json(
            self.http_client, url, time_limit=self.timeout, max_bytes=self.max_bytes
        )

    # -- discovery -----------------------------------------------------------

    async def _discover(self) -> dict[str, Any]:
        if self._metadata is not None:
            return self._metadata
        if self._jwks_uri is not None:
            self._metadata = {"issuer": self.issuer, "jwks_uri": self._jwks_uri}
            return self._metadata
        document, _ = await self._get(self.issuer.rstrip("/") + DISCOVERY_PATH)
        if document.get("issuer") != self.issuer:
            raise FetchError("the discovery document names another issuer")
        for name, value in document.items():
            if name.endswith(("_endpoint", "_uri")) and not isinstance(value, str):
                raise FetchError(f"discovery {name} is not a string")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise FetchError("the discovery document has no jwks_uri")
        try:
            check_provider_url(jwks_uri, allow_insecure_loopback=self.allow_insecure_loopback)
        except ConfigurationError as exc:
            raise FetchError(f"unacceptable jwks_uri: {exc}") from None
        self._metadata = document
        return document

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once, then kept).

        Raises :class:`ProviderUnavailableError` when it cannot be fetched or
        names another issuer.
        """
        if self._metadata is not None:
            return self._metadata
        async with self._lock:
            try:
                return dict(await self._discover())
            except FetchError as exc:
                logger.warning("OIDC discovery for %s failed: %s", self.issuer, exc)
                raise ProviderUnavailableError(reason=str(exc)) from None

    # -- keys ----------------------------------------------------------------

    async def _fetch(self) -> _Snapshot:
        metadata = await self._discover()
        self.fetch_count += 1
        document, headers = await self._get(metadata["jwks_uri"])
        keys = _parse_jwks(
            document,
            rsa_algorithm=self.rsa_algorithm,
            max_keys=self.max_keys,
            max_token_bytes=self.max_token_bytes,
        )
        ttl = _ttl_from(
            headers.get("cache-control"),
            default=self.default_ttl,
            low=self.min_ttl,
            high=self.max_ttl,
        )
        return _Snapshot(keys, self.clock() + ttl)

    async def _refresh(self, kid: str | None) -> KeySet:
        async with self._lock:
            now = self.clock()
            snapshot = self._snapshot
            if snapshot is not None and (
                kid in snapshot.keys if kid is not None else now < snapshot.expires_at
            ):
                return snapshot.keys  # refreshed by another task while we waited
            if (
                self._last_attempt is not None
                and now - self._last_attempt < self.min_refresh_interval
            ):
                if snapshot is not None:
                    return snapshot.keys
                raise ProviderUnavailableError(reason=self._last_failure or "refresh throttled")
            self._last_attempt = now
            try:
                fresh = await self._fetch()
            except FetchError as exc:
                self._last_failure = str(exc)
                if snapshot is not None:
                    logger.warning(
                        "refreshing the keys of %s failed, keeping the last good set: %s",
                        self.issuer,
                        exc,
                    )
                    return snapshot.keys
                logger.warning("fetching the keys of %s failed: %s", self.issuer, exc)
                raise ProviderUnavailableError(reason=str(exc)) from None
            self._last_failure = None
            self._snapshot = fresh
            return fresh.keys

    async def key_set(self) -> KeySet:
        """The current key set: cached, fetched when missing or past its TTL."""
        snapshot = self._snapshot
        if snapshot is not None and self.clock() < snapshot.expires_at:
            return snapshot.keys
        return await self._refresh(None)

    async def refresh(self) -> KeySet:
        """Fetch the key set now (still at most once per ``min_refresh_interval``)."""
        self._snapshot = (
            _Snapshot(self._snapshot.keys, float("-inf")) if self._snapshot is not None else None
        )
        return await self._refresh(None)

    async def verify(self, token: str) -> VerifiedJWS:
        """Check a compact JWS against the provider's keys (signature and header only).

        A ``kid`` missing from the cached set triggers one throttled refresh.
        Raises :class:`~fastapi_secure.errors.InvalidTokenError` for a bad
        token, :class:`ProviderUnavailableError` when no key set could ever be
        fetched.
        """
        if not isinstance(token, str) or len(token) > self.max_token_bytes:
            raise InvalidTokenError(reason="token too large or not a string")
        keys = await self.key_set()
        kid = _unverified_kid(token)
        if kid is not None and kid not in keys:
            keys = await self._refresh(kid)
        return keys.verify(token)
