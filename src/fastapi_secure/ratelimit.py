"""Rate limits as FastAPI dependencies, on the ``limits`` library.

```python
from fastapi import Depends, FastAPI

from fastapi_secure import RateLimiter

limiter = RateLimiter("memory://")
app = FastAPI()


@app.get("/search", dependencies=[Depends(limiter.limit("5/minute;100/hour"))])
async def search() -> dict[str, str]:
    return {"result": "..."}
```

The counting itself (fixed window, moving window, sliding-window counter) and
the storages (memory, Redis, Redis Cluster, Redis Sentinel) are those of
``limits.aio``; this module decides *who* is counted (the key), answers with
429 and the IETF ``RateLimit`` headers, and applies the storage failure
policy so that a Redis outage never becomes a 500.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import math
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

import anyio
import limits
import limits.errors
from fastapi import Depends, Request, Response
from limits.aio.storage import (
    MemoryStorage,
    RedisClusterStorage,
    RedisSentinelStorage,
    RedisStorage,
)
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import STRATEGIES
from limits.aio.strategies import RateLimiter as LimitsStrategy
from limits.storage import Storage as SyncStorage
from limits.storage import storage_from_string
from limits.util import WindowStats
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_secure._optional import require
from fastapi_secure._redis import READ_AHEAD_SCOPE_KEY, PiggybackRead, deadline, same_server
from fastapi_secure.audit import AUDIT_ATTRIBUTE, AuditInfo
from fastapi_secure.clientip import IPAddress, TrustedProxies
from fastapi_secure.errors import (
    ConfigurationError,
    RateLimitExceededError,
    StoreUnavailableError,
)
from fastapi_secure.events import EventSink, EventType, emit_event
from fastapi_secure.http_errors import http_exception
from fastapi_secure.settings import SecuritySettings
from fastapi_secure.tokens.claims import AccessClaims

if TYPE_CHECKING:
    from fastapi_secure._ratelimit_redis import RedisBatch

__all__ = [
    "LimitDecision",
    "RateLimitHeadersMiddleware",
    "RateLimitKey",
    "RateLimiter",
    "StorageErrorPolicy",
    "Strategy",
    "by_form_field",
    "by_subject",
    "parse_limit",
]

logger = logging.getLogger("fastapi_secure.ratelimit")

Strategy = Literal["sliding-window-counter", "fixed-window", "moving-window"]
StorageErrorPolicy = Literal["closed", "open", "memory"]
KeyCallable = Callable[[Request], "str | Awaitable[str | None] | None"]
CostCallable = Callable[[Request], "int | Awaitable[int]"]

_STATE_KEY = "fastapi_secure.ratelimit"
# Client-IP keys remembered per limiter (emptied when full: a flood of peers costs
# only the parsing it would have cost anyway).
_PEER_CACHE_SIZE = 4096
# Bound at import: tests replace this module's ``time`` to drive limits' windows only.
_monotonic = time.monotonic
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix", "redis+cluster", "redis+sentinel")


@dataclass(frozen=True)
class RateLimitKey:
    """Who a limit counts: a FastAPI dependency returning the key, or None to exempt.

    ``name`` namespaces the counters, so two key functions never share one.
    Build one with :func:`by_subject`, :func:`by_form_field`, or directly from
    any dependency (it may itself depend on anything FastAPI can inject).
    """

    name: str
    dependency: Callable[..., Awaitable[str | None]]


def by_subject(auth: Callable[..., Any]) -> RateLimitKey:
    """Key by the authenticated subject (``sub``) of the claims ``auth`` returns.

    ``auth`` is any FastAPI dependency returning
    :class:`~fastapi_secure.tokens.claims.AccessClaims` (such as ``BearerAuth``);
    it runs first, so an unauthenticated request gets its 401 before being
    counted. When ``auth`` returns None (``auto_error=False``) the request is
    not counted by this limit: pair it with a per-IP limit.
    """

    async def subject_key(claims: AccessClaims | None = Depends(auth)) -> str | None:  # noqa: B008
        return None if claims is None else claims.sub

    return RateLimitKey("subject", subject_key)


def _normalize_identifier(value: str) -> str:
    # Stricter grouping is never looser protection: "Alice" and "alice " count as one.
    return unicodedata.normalize("NFKC", value).casefold().strip()


def by_form_field(
    field_name: str,
    *,
    max_length: int = 256,
    normalize: Callable[[str], str] | None = _normalize_identifier,
) -> RateLimitKey:
    """Key by one field of the request's form body, such as the login ``username``.

    The body is read and cached on the request, so the endpoint (``Form(...)``,
    ``OAuth2PasswordRequestForm``, ``await request.body()``) still sees it. The
    value is cut to ``max_length`` characters and normalized (NFKC, casefold,
    strip) before it is hashed into the key; a missing or non-text field
    exempts the request from this limit (the endpoint rejects it anyway).
    """
    if not field_name:
        raise ConfigurationError("field_name must not be empty")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ConfigurationError("max_length must be a positive integer")

    async def form_field_key(request: Request) -> str | None:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() not in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            return None
        # Caching the raw body first keeps it readable by the endpoint afterwards. A
        # consumed stream means FastAPI parsed (and cached) the form itself.
        with contextlib.suppress(RuntimeError):
            await request.body()
        try:
            form = await request.form()
        except RuntimeError:
            return None  # The body was read raw by someone else; there is no form to see.
        value = form.get(field_name)
        if not isinstance(value, str):
            return None
        value = value[:max_length]
        return normalize(value) if normalize is not None else value

    return RateLimitKey(f"form:{field_name}", form_field_key)


def _callable_key(function: KeyCallable) -> RateLimitKey:
    async def callable_key(request: Request) -> str | None:
        value = function(request)
        if inspect.isawaitable(value):
            value = await value
        if value is not None and not isinstance(value, str):
            raise ConfigurationError("a rate-limit key function must return a str or None")
        return value

    module = getattr(function, "__module__", "") or ""
    qualname = getattr(function, "__qualname__", type(function).__qualname__)
    return RateLimitKey(f"callable:{module}.{qualname}", callable_key)


@dataclass
class _Quota:
    quota: int
    window: int
    remaining: int
    reset_in: int


@dataclass
class _RequestQuotas:
    """Quotas seen so far by every limit of one request, kept in the ASGI scope."""

    quotas: dict[str, _Quota] = field(default_factory=dict)
    legacy: bool = False
    # The response whose headers already carry these quotas (to replace, not add).
    response: Response | None = None

    def headers(self) -> dict[str, str]:
        if not self.quotas:
            return {}
        policy = ", ".join(_policy_text(name, q.quota, q.window) for name, q in self.quotas.items())
        state = ", ".join(
            f'"{name}";r={q.remaining};t={q.reset_in}' for name, q in self.quotas.items()
        )
        headers = {"RateLimit-Policy": policy, "RateLimit": state}
        if self.legacy:
            tightest = min(self.quotas.values(), key=lambda q: (q.remaining, -q.reset_in))
            headers["X-RateLimit-Limit"] = str(tightest.quota)
            headers["X-RateLimit-Remaining"] = str(tightest.remaining)
            headers["X-RateLimit-Reset"] = str(int(time.time()) + tightest.reset_in)
        return headers


@functools.lru_cache(maxsize=1024)
def _policy_text(name: str, quota: int, window: int) -> str:
    # A handful of configured policies, formatted once each.
    return f'"{name}";q={quota};w={window}'


def _request_quotas(scope: Scope) -> _RequestQuotas | None:
    state = scope.get("state")
    if not isinstance(state, dict):
        return None
    found = state.get(_STATE_KEY)
    return found if isinstance(found, _RequestQuotas) else None


def _with_headers(exc: HTTPException, headers: Mapping[str, str]) -> HTTPException:
    """A copy of ``exc`` carrying ``headers`` too.

    A copy, because applications may raise one shared exception instance: adding
    one client's quota to it would leak into other clients' answers.
    """
    clone = BaseException.__new__(type(exc))
    clone.__dict__.update(exc.__dict__)
    clone.args = exc.args
    clone.headers = {**(exc.headers or {}), **headers}
    return clone


def _error_with_quotas(request: Request, exc: HTTPException) -> HTTPException | None:
    """A copy of ``exc`` carrying this request's quota headers; None when it has none."""
    quotas = _request_quotas(request.scope)
    if quotas is None or not quotas.quotas:
        return None
    return _with_headers(exc, quotas.headers())


def _digest_prefix(*parts: str) -> Any:
    """A hasher fed with ``parts``: finish it per request with :func:`_digest_finish`."""
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        encoded = part.encode("utf-8", "surrogatepass")
        hasher.update(len(encoded).to_bytes(8, "big"))
        hasher.update(encoded)
    return hasher


def _digest_finish(prefix: Any, last: str) -> str:
    """``_digest(*parts, last)`` from the hasher ``_digest_prefix(*parts)`` returned."""
    hasher = prefix.copy()
    encoded = last.encode("utf-8", "surrogatepass")
    hasher.update(len(encoded).to_bytes(8, "big"))
    hasher.update(encoded)
    return str(hasher.hexdigest())


def _digest(*parts: str) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        encoded = part.encode("utf-8", "surrogatepass")
        hasher.update(len(encoded).to_bytes(8, "big"))
        hasher.update(encoded)
    return hasher.hexdigest()


class RateLimiter:
    """Creates rate-limit dependencies sharing one storage and one policy.

    Args:
        storage: a ``limits`` storage URI (``memory://``, ``redis://host:6379/0``,
            ``rediss://...``, ``redis+cluster://h1:7000,h2:7000``,
            ``redis+sentinel://h1:26379/service``), always opened in its async
            form; or an already built ``limits.aio`` storage. A synchronous
            storage is refused.
        strategy: ``"sliding-window-counter"`` (default), ``"fixed-window"`` or
            ``"moving-window"`` (exact, the costliest).
        trusted_proxies: reverse proxies whose forwarding headers are believed,
            as a :class:`~fastapi_secure.clientip.TrustedProxies` or CIDRs.
            Empty (default): the client is the socket peer.
        on_storage_error: what a storage failure or timeout does: ``"closed"``
            (default) answers 503 with ``Retry-After``; ``"open"`` lets the
            request through and logs a warning; ``"memory"`` counts in a
            per-process memory storage until the storage is back.
        storage_timeout: seconds one request may wait on the storage in total;
            also the Redis connect and socket timeouts, so a hung Redis trips
            the failure policy instead of holding requests.
        storage_backoff: after a storage failure, seconds during which requests
            get the failure policy at once, without waiting on the storage again
            (and without another log line); then one request probes it. 0 turns
            this off. Also the ``Retry-After`` of the fail-closed 503.
        storage_options: extra keyword arguments for the ``limits`` storage
            (for Redis: the ``redis.asyncio`` client), over our defaults.
        headers: send ``RateLimit-Policy`` / ``RateLimit`` (IETF draft 10).
        legacy_headers: also send ``X-RateLimit-Limit/Remaining/Reset``
            (reset as a Unix time) for the tightest limit.
        headers_on_errors: the limit dependency wraps the rest of the request
            (a ``yield``) to put its headers on an ``HTTPException`` raised
            after it (a 401, a 404). False makes it a plain dependency, cheaper
            by what FastAPI spends on a ``yield`` dependency (about a bare
            route's cost): then add :class:`RateLimitHeadersMiddleware`, which
            puts the headers on every answer, errors included.
        key_prefix: prefix of every storage key (the Redis key prefix).
        ipv6_prefix: IPv6 clients are counted per network of this length
            (default /64: one subscriber usually owns a whole /64).
        events: where ``rate_limited`` (each refusal) and ``store_unavailable``
            (each storage failure, once per backoff) security events go.
    """

    def __init__(
        self,
        storage: str | AsyncStorage = "memory://",
        *,
        strategy: Strategy = "sliding-window-counter",
        trusted_proxies: TrustedProxies | Iterable[str] = (),
        on_storage_error: StorageErrorPolicy = "closed",
        storage_timeout: float = 1.0,
        storage_backoff: float = 5.0,
        storage_options: Mapping[str, Any] | None = None,
        headers: bool = True,
        legacy_headers: bool = False,
        headers_on_errors: bool = True,
        key_prefix: str = "fastapi-secure",
        ipv6_prefix: int = 64,
        events: EventSink | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                f"unknown strategy {strategy!r}; use one of {sorted(STRATEGIES)}"
            )
        if on_storage_error not in ("closed", "open", "memory"):
            raise ConfigurationError("on_storage_error must be 'closed', 'open' or 'memory'")
        if (
            isinstance(storage_timeout, bool)
            or not isinstance(storage_timeout, (int, float))
            or not math.isfinite(storage_timeout)
            or storage_timeout <= 0
        ):
            raise ConfigurationError("storage_timeout must be a positive number of seconds")
        if (
            isinstance(storage_backoff, bool)
            or not isinstance(storage_backoff, (int, float))
            or not math.isfinite(storage_backoff)
            or storage_backoff < 0
        ):
            raise ConfigurationError("storage_backoff must be a number of seconds >= 0")
        if isinstance(ipv6_prefix, bool) or not isinstance(ipv6_prefix, int):
            raise ConfigurationError("ipv6_prefix must be an integer")
        if not 1 <= ipv6_prefix <= 128:
            raise ConfigurationError("ipv6_prefix must be between 1 and 128")
        if not key_prefix or not _NAME.fullmatch(key_prefix.replace(":", "-")):
            raise ConfigurationError("key_prefix must be 1-64 letters, digits, '.', '_', '-', ':'")
        self.trusted_proxies = (
            trusted_proxies
            if isinstance(trusted_proxies, TrustedProxies)
            else TrustedProxies(trusted_proxies)
        )
        self.strategy_name: Strategy = strategy
        self.on_storage_error: StorageErrorPolicy = on_storage_error
        self.storage_timeout = float(storage_timeout)
        self.storage_backoff = float(storage_backoff)
        self._storage_down_until = 0.0
        self.headers = headers
        self.legacy_headers = legacy_headers
        self.headers_on_errors = bool(headers_on_errors)
        self.key_prefix = key_prefix
        self.ipv6_prefix = ipv6_prefix
        self.events = events
        self.storage = _open_storage(
            storage, storage_options or {}, self.storage_timeout, key_prefix
        )
        # Only the scheme ever reaches logs and messages: the URI may hold a password.
        self._scheme = (
            urlsplit(storage).scheme if isinstance(storage, str) else type(storage).__name__
        )
        try:
            self._strategy = _strategy_class(strategy)(self.storage)
        except NotImplementedError as exc:
            raise ConfigurationError(
                f"the {self._scheme} storage does not support the {strategy} strategy"
            ) from exc
        from fastapi_secure._ratelimit_memory import PacedMemoryStorage

        self._fallback = _strategy_class(strategy)(PacedMemoryStorage())
        self._in_process = isinstance(self.storage, MemoryStorage)
        # limits' Redis storages run on redis.asyncio, hence on asyncio: its own
        # deadline is the cheaper one. Other storages keep anyio's.
        self._on_asyncio = isinstance(
            self.storage, (RedisStorage, RedisClusterStorage, RedisSentinelStorage)
        )
        proxies = self.trusted_proxies
        self._peer_keys: dict[str, str] | None = (
            None if proxies.networks or proxies.trust_unix_socket else {}
        )
        self._batch: RedisBatch | None = None
        if type(self.storage).__name__ in ("RedisStorage", "RedisSentinelStorage"):
            from fastapi_secure._ratelimit_redis import RedisBatch

            if RedisBatch.supports(self.storage):
                self._batch = RedisBatch(cast("Any", self.storage), strategy)
        # Per route: the dependencies offering store reads (see _store_reads); per
        # client of theirs: whether it talks to our Redis. Both hold the object
        # they are keyed by id of, so an id is never reused while cached.
        self._route_readers: dict[int, tuple[object, tuple[Any, ...]]] = {}
        self._shared_clients: dict[int, tuple[object, bool]] = {}
        self._storage_ready = False
        self._warmup_lock = anyio.Lock()

    @classmethod
    def from_settings(cls, settings: SecuritySettings, **options: Any) -> RateLimiter:
        """A limiter on ``settings.redis_url`` (``memory://`` when unset) behind
        ``settings.trusted_proxies``; ``options`` add the other arguments and win."""
        storage = settings.redis_url.get_secret_value() if settings.redis_url else "memory://"
        defaults: dict[str, Any] = {"trusted_proxies": settings.trusted_proxies}
        return cls(storage, **{**defaults, **options})

    def __repr__(self) -> str:
        return (
            f"RateLimiter({self._scheme!r}, strategy={self.strategy_name!r}, "
            f"on_storage_error={self.on_storage_error!r})"
        )

    async def aclose(self) -> None:
        """Close the storage's connections (call it from the app's lifespan shutdown)."""
        bridge = getattr(self.storage, "bridge", None)
        for name in ("storage", "storage_replica"):
            client = getattr(bridge, name, None)
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()

    def client_key(self, request: HTTPConnection) -> str:
        """The client-IP key: the address behind trusted proxies, IPv6 per network."""
        if self._peer_keys is None:
            return self._client_key(request.scope)
        # No proxy is trusted: the key depends on the socket peer alone, whose
        # parsing and formatting is remembered for the recent peers.
        client = request.scope.get("client")
        peer = str(client[0]) if client else ""
        key = self._peer_keys.get(peer)
        if key is None:
            if len(self._peer_keys) >= _PEER_CACHE_SIZE:
                self._peer_keys.clear()
            key = self._peer_keys[peer] = self._client_key(request.scope)
        return key

    def _client_key(self, scope: Scope) -> str:
        address: IPAddress | None = self.trusted_proxies.client_ip(scope)
        if address is None:
            # No usable peer address: every such request shares one counter.
            return "unknown"
        if address.version == 6 and self.ipv6_prefix < 128:
            mask = (1 << 128) - (1 << (128 - self.ipv6_prefix))
            network = int(address) & mask
            return f"{type(address)(network)}/{self.ipv6_prefix}"
        return str(address)

    def limit(
        self,
        rates: str,
        *,
        key: RateLimitKey | KeyCallable | None = None,
        cost: int | CostCallable = 1,
        name: str | None = None,
    ) -> Callable[..., Any]:
        """A dependency enforcing ``rates`` (``"5/minute;100/hour"``) per key.

        Use it as ``Depends(limiter.limit(...))`` on a route, in a router's or
        the app's ``dependencies=[...]``. All rates must admit the request;
        they are hit in the order given and a refusal stops there.

        Args:
            rates: one or more ``limits`` rate strings separated by ``;`` or ``,``.
            key: who is counted: None (default) is the client IP; a
                :class:`RateLimitKey` (:func:`by_subject`, :func:`by_form_field`);
                or any callable taking the ``Request`` and returning a str
                (or None to exempt the request), sync or async.
            cost: units each request spends: an int, or a callable of the
                ``Request`` returning one (sync or async); 0 spends nothing.
            name: names the counter and the header policy. Without it every
                route has its own counter; routes sharing one ``name`` share
                one counter.
        """
        items = parse_limit(rates, name)
        if callable(cost):
            cost_function: CostCallable | None = cost
            fixed_cost = 1
        else:
            cost_function = None
            fixed_cost = _check_cost(cost)
        policies = [
            (_policy_id(name, item, len(items)), item, int(item.get_expiry())) for item in items
        ]
        key_dependency: Callable[..., Awaitable[str | None]] | None
        if key is None:
            # The client IP needs no dependency of its own: one fewer for FastAPI to solve.
            key_name, key_dependency = "ip", None
        elif isinstance(key, RateLimitKey):
            key_name, key_dependency = key.name, key.dependency
        elif callable(key):
            resolved = _callable_key(key)
            key_name, key_dependency = resolved.name, resolved.dependency
        else:
            raise ConfigurationError("key must be a RateLimitKey, a callable or None")
        # Per route (and mount), the hasher already fed with its namespace and key
        # name. Routes are not hashable: keyed by id, holding the route so the id
        # cannot be reused by another object.
        prefixes: dict[tuple[int, str], tuple[object, Any]] = {}
        named = _digest_prefix(name, key_name) if name is not None else None

        def counter_id(request: Request, key_value: str) -> str:
            if named is not None:
                return _digest_finish(named, key_value)
            route = request.scope.get("route")
            if route is None:
                return _digest(_route_namespace(request), key_name, key_value)
            cache_key = (id(route), request.scope.get("root_path", ""))
            entry = prefixes.get(cache_key)
            if entry is None or entry[0] is not route:
                entry = prefixes[cache_key] = (
                    route,
                    _digest_prefix(_route_namespace(request), key_name),
                )
            return _digest_finish(entry[1], key_value)

        async def enforce(request: Request, response: Response, key_value: str | None) -> None:
            if key_value is None:
                return
            spent = fixed_cost
            if cost_function is not None:
                value = cost_function(request)
                spent = _check_cost(await value if inspect.isawaitable(value) else value)
            await self._enforce(request, response, policies, counter_id(request, key_value), spent)

        rate_limit = _dependency(
            enforce, self.client_key, key_dependency, self.headers and self.headers_on_errors
        )

        # What fastapi_secure.audit reports for the routes this limit guards.
        key_label = key_name.rsplit(".", 1)[-1].removeprefix("callable:")
        audit_info = AuditInfo(rate_limits=tuple(f"{item} by {key_label}" for item in items))
        setattr(rate_limit, AUDIT_ATTRIBUTE, audit_info)
        return rate_limit

    async def _enforce(
        self,
        request: Request,
        response: Response,
        policies: list[tuple[str, limits.RateLimitItem, int]],
        identifier: str,
        cost: int,
    ) -> None:
        reads = self._store_reads(request) if self._batch is not None else []
        try:
            counted = await self._count(policies, identifier, cost, reads)
        except StoreUnavailableError as exc:
            raise http_exception(exc) from None
        if counted is None:
            return
        outcome = counted
        if outcome.answers:
            request.scope.setdefault(READ_AHEAD_SCOPE_KEY, {}).update(outcome.answers)
        quotas = _request_quotas(request.scope)
        if quotas is None and self.headers:
            quotas = _RequestQuotas()
            request.scope.setdefault("state", {})[_STATE_KEY] = quotas
        if quotas is not None and self.headers:
            quotas.legacy = quotas.legacy or self.legacy_headers
            for policy_id, quota in outcome.quotas:
                quotas.quotas[policy_id] = quota
            headers = quotas.headers()
            if quotas.response is response:
                response.headers.update(headers)
            else:
                # First limit of this request on this response: nothing to replace.
                quotas.response = response
                response.raw_headers.extend(
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in headers.items()
                )
        if outcome.refused_for is not None:
            await emit_event(
                self.events,
                EventType.RATE_LIMITED,
                scope=request.scope,
                trusted_proxies=self.trusted_proxies,
                reason=f"limit {outcome.quotas[-1][0] if outcome.quotas else '?'} exceeded",
                extra={"retry_after": outcome.refused_for},
            )
            headers = {"Retry-After": str(outcome.refused_for)}
            if quotas is not None and self.headers:
                headers.update(quotas.headers())
            raise http_exception(
                RateLimitExceededError(retry_after=outcome.refused_for), headers=headers
            )

    def _store_reads(self, request: Request) -> list[PiggybackRead]:
        """The store reads later dependencies of this route offer to run ahead
        (a bearer's revocation check) that our Redis can answer in the call
        counting the request: one round trip for both."""
        route = request.scope.get("route")
        if route is None:
            return []
        entry = self._route_readers.get(id(route))
        if entry is None or entry[0] is not route:
            if len(self._route_readers) >= _PEER_CACHE_SIZE:
                self._route_readers.clear()
            entry = self._route_readers[id(route)] = (route, _store_readers(route))
        reads: list[PiggybackRead] = []
        for reader in entry[1]:
            for read in reader.store_reads(request):
                if self._shares_client(read.client):
                    reads.append(read)
        return reads

    def _shares_client(self, client: object) -> bool:
        entry = self._shared_clients.get(id(client))
        if entry is None or entry[0] is not client:
            assert self._batch is not None
            if len(self._shared_clients) >= _PEER_CACHE_SIZE:
                self._shared_clients.clear()
            entry = self._shared_clients[id(client)] = (
                client,
                same_server(client, self._batch.client),
            )
        return entry[1]

    async def _count(
        self,
        policies: list[tuple[str, limits.RateLimitItem, int]],
        identifier: str,
        cost: int,
        reads: list[PiggybackRead] | None = None,
    ) -> _Outcome | None:
        """Hit every policy; None when the storage failed and the policy is to fail open.

        Raises StoreUnavailableError when the storage failed and the policy is
        to fail closed.
        """
        if _monotonic() < self._storage_down_until:
            return await self._storage_failed(None, policies, identifier, cost)
        try:
            if self._in_process:
                # Nothing to wait for in process memory: no deadline to arm.
                return await self._hit(self._strategy, policies, identifier, cost)
            if self._on_asyncio:
                async with deadline(self.storage_timeout):
                    if self._storage_ready:
                        return await self._hit(self._strategy, policies, identifier, cost, reads)
                    return await self._first_hit(policies, identifier, cost, reads)
            with anyio.fail_after(self.storage_timeout):
                if self._storage_ready:
                    return await self._hit(self._strategy, policies, identifier, cost, reads)
                return await self._first_hit(policies, identifier, cost, reads)
        # Any exception, not only the storage's base_exceptions: a client's own
        # bug (redis-py's cluster client raised AttributeError under concurrent
        # first use) must meet the failure policy too, never a 500.
        except Exception as exc:
            self._storage_down_until = _monotonic() + self.storage_backoff
            return await self._storage_failed(exc, policies, identifier, cost)

    async def hit(
        self,
        rates: str,
        key: str,
        *,
        name: str,
        key_name: str = "ip",
        cost: int = 1,
        scope: Scope | None = None,
    ) -> LimitDecision:
        """Spend ``cost`` of ``rates`` for ``key`` outside a FastAPI dependency
        (a WebSocket receive loop, a background job); the decision is truthy when
        allowed.

        Counts in the same storage, under the same failure policy, as the
        route limits. The counter is the one of
        ``limit(rates, name=name, key=...)`` whose key is named ``key_name``
        (``"ip"`` for the client IP of :meth:`client_key`, ``"subject"`` for
        :func:`by_subject`), so a WebSocket and an HTTP route may share one
        budget. A storage failure refuses (``on_storage_error="closed"``),
        allows (``"open"``) or counts in memory (``"memory"``). ``scope``, when
        given, goes into the ``rate_limited`` event.
        """
        items = parse_limit(rates, name)
        spent = _check_cost(cost)
        policies = [
            (_policy_id(name, item, len(items)), item, int(item.get_expiry())) for item in items
        ]
        try:
            outcome = await self._count(policies, _digest(name, key_name, key), spent)
        except StoreUnavailableError as exc:
            return LimitDecision(False, exc.retry_after or 1)
        if outcome is None or outcome.refused_for is None:
            return LimitDecision(True, None)
        await emit_event(
            self.events,
            EventType.RATE_LIMITED,
            scope=scope,
            trusted_proxies=self.trusted_proxies,
            reason=f"limit {outcome.quotas[-1][0] if outcome.quotas else '?'} exceeded",
            extra={"retry_after": outcome.refused_for},
        )
        return LimitDecision(False, outcome.refused_for)

    async def _first_hit(
        self,
        policies: list[tuple[str, limits.RateLimitItem, int]],
        identifier: str,
        cost: int,
        reads: list[PiggybackRead] | None = None,
    ) -> _Outcome:
        # redis-py's async cluster client discovers its slots on first use, and
        # concurrent first uses race (seen as AttributeError on a closed writer):
        # the first request at the storage goes alone.
        async with self._warmup_lock:
            outcome = await self._hit(self._strategy, policies, identifier, cost, reads)
            self._storage_ready = True
            return outcome

    async def _storage_failed(
        self,
        exc: BaseException | None,
        policies: list[tuple[str, limits.RateLimitItem, int]],
        identifier: str,
        cost: int,
    ) -> _Outcome | None:
        """Apply the failure policy; ``exc`` is None while backing off (already logged)."""
        if exc is not None:
            # The exception text may hold a host name or URI: log its type only.
            outcome = {
                "open": "request allowed (fail open)",
                "memory": "counting in process memory",
                "closed": "request refused (fail closed)",
            }[self.on_storage_error]
            logger.warning(
                "rate-limit storage %s unavailable (%s.%s); %s; next attempt in %ss",
                self._scheme,
                type(exc).__module__,
                type(exc).__qualname__,
                outcome,
                self.storage_backoff,
            )
            await emit_event(
                self.events,
                EventType.STORE_UNAVAILABLE,
                reason=f"rate-limit storage {self._scheme} unavailable",
                extra={
                    "store": "rate_limit",
                    "error": type(exc).__qualname__,
                    "policy": self.on_storage_error,
                },
            )
        if self.on_storage_error == "open":
            return None
        if self.on_storage_error == "memory":
            return await self._hit(self._fallback, policies, identifier, cost)
        retry_after = max(1, math.ceil(self._storage_down_until - _monotonic()))
        raise StoreUnavailableError(
            retry_after=retry_after,
            reason=None if exc is None else type(exc).__qualname__,
        )

    async def _hit(
        self,
        strategy: LimitsStrategy,
        policies: list[tuple[str, limits.RateLimitItem, int]],
        identifier: str,
        cost: int,
        reads: list[PiggybackRead] | None = None,
    ) -> _Outcome:
        if self._batch is not None and strategy is self._strategy:
            return await self._batch_hit(policies, identifier, cost, reads or [])
        outcome = _Outcome()
        want_stats = self.headers
        for policy_id, item, window in policies:
            allowed = await strategy.hit(item, self.key_prefix, identifier, cost=cost)
            if allowed and not want_stats:
                continue
            stats = await strategy.get_window_stats(item, self.key_prefix, identifier)
            if self._add_quota(outcome, policy_id, item, window, stats, allowed):
                break
        return outcome

    async def _batch_hit(
        self,
        policies: list[tuple[str, limits.RateLimitItem, int]],
        identifier: str,
        cost: int,
        reads: list[PiggybackRead],
    ) -> _Outcome:
        # Every rate and its statistics in one round trip (see _ratelimit_redis),
        # with the store reads of later dependencies riding along.
        assert self._batch is not None
        outcome = _Outcome()
        results, replies = await self._batch.hit(
            [item for _, item, _ in policies],
            self.key_prefix,
            identifier,
            cost,
            self.headers,
            reads,
        )
        for read, reply in zip(reads, replies, strict=False):
            answer = read.parse(reply)
            if answer is not None:
                outcome.answers[read.key] = answer
        # Rates after a refusal were not hit: zip stops with the results.
        for (policy_id, item, window), (allowed, stats) in zip(policies, results, strict=False):
            # A refusing rate always comes with its window (Retry-After needs it).
            if stats is not None and self._add_quota(
                outcome, policy_id, item, window, stats, allowed
            ):
                break
        return outcome

    @staticmethod
    def _add_quota(
        outcome: _Outcome,
        policy_id: str,
        item: limits.RateLimitItem,
        window: int,
        stats: WindowStats,
        allowed: bool,
    ) -> bool:
        """Record one rate's quota; True when it refused the request."""
        remaining = max(0, int(stats.remaining))
        reset_in = max(0, math.ceil(stats.reset_time - time.time()))
        if remaining == 0:
            # limits may report a reset "now" for an exhausted window; 0 would invite a retry.
            reset_in = max(1, reset_in)
        outcome.quotas.append((policy_id, _Quota(item.amount, window, remaining, reset_in)))
        if not allowed:
            outcome.refused_for = max(1, reset_in)
            return True
        return False


@dataclass(frozen=True)
class LimitDecision:
    """What :meth:`RateLimiter.hit` decided: truthy when allowed;
    ``retry_after`` (seconds) when refused."""

    allowed: bool
    retry_after: int | None

    def __bool__(self) -> bool:
        return self.allowed


@dataclass
class _Outcome:
    quotas: list[tuple[str, _Quota]] = field(default_factory=list)
    refused_for: int | None = None
    # Answers of the store reads that rode along, by their key.
    answers: dict[Any, Any] = field(default_factory=dict)


def _dependency(
    enforce: Callable[[Request, Response, str | None], Awaitable[None]],
    client_key: Callable[[HTTPConnection], str],
    key_dependency: Callable[..., Awaitable[str | None]] | None,
    wraps_errors: bool,
) -> Callable[..., Any]:
    """The function FastAPI calls for one limit: with a ``yield`` when it puts its
    headers on errors raised after it, else a plain (cheaper) dependency."""
    if key_dependency is None:
        if not wraps_errors:

            async def limit_by_ip(request: Request, response: Response) -> None:
                await enforce(request, response, client_key(request))

            return limit_by_ip

        async def rate_limit(request: Request, response: Response) -> AsyncIterator[None]:
            await enforce(request, response, client_key(request))
            try:
                yield
            except HTTPException as exc:
                with_quotas = _error_with_quotas(request, exc)
                if with_quotas is None:
                    raise
                raise with_quotas from exc

        return rate_limit

    if not wraps_errors:

        async def limit_by_key(
            request: Request,
            response: Response,
            key_value: str | None = Depends(key_dependency),
        ) -> None:
            await enforce(request, response, key_value)

        return limit_by_key

    async def rate_limit_by_key(
        request: Request,
        response: Response,
        key_value: str | None = Depends(key_dependency),
    ) -> AsyncIterator[None]:
        await enforce(request, response, key_value)
        try:
            yield
        except HTTPException as exc:
            with_quotas = _error_with_quotas(request, exc)
            if with_quotas is None:
                raise
            raise with_quotas from exc

    return rate_limit_by_key


def _store_readers(route: object) -> tuple[Any, ...]:
    """The objects among ``route``'s dependencies (and the auths guards wrap)
    that offer store reads (``store_reads(request)``), each once."""
    found: list[Any] = []
    dependant = getattr(route, "dependant", None)
    pending = [dependant] if dependant is not None else []
    seen = 0
    while pending and seen < 1000:
        current = pending.pop()
        seen += 1
        candidate = getattr(current, "call", None)
        for _ in range(16):  # guards wrap auths: RoleChecker(auth=require_fresh(bearer))
            if candidate is None:
                break
            if callable(getattr(candidate, "store_reads", None)) and not any(
                candidate is known for known in found
            ):
                found.append(candidate)
            candidate = getattr(candidate, "auth", None)
        pending.extend(getattr(current, "dependencies", ()))
    return tuple(found)


class RateLimitHeadersMiddleware:
    """Optional pure ASGI middleware: rate-limit headers on *every* answer.

    The limit dependency already puts its headers on normal responses and on
    any ``HTTPException`` raised after it (401, 404, ...). Two answers escape
    it: an endpoint that returns its own ``Response`` object, and errors that
    are not ``HTTPException`` (a 422 validation error, a custom exception
    handler). Add this middleware to cover those too; it adds the headers only
    where they are missing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                quotas = _request_quotas(scope)
                if quotas is not None and quotas.quotas:
                    headers = MutableHeaders(scope=message)
                    if "ratelimit" not in headers:
                        for header, value in quotas.headers().items():
                            headers.append(header, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def parse_limit(rates: str, name: str | None = None) -> list[limits.RateLimitItem]:
    """The rate items of ``rates`` (``"5/minute;100/hour"``), with ``name`` (a limit's
    counter name, when given) checked too; :class:`ConfigurationError` otherwise."""
    items = _parse_rates(rates)
    if name is not None and not _NAME.fullmatch(name):
        raise ConfigurationError("name must be 1-64 letters, digits, '.', '_' or '-'")
    return items


def _parse_rates(rates: str) -> list[limits.RateLimitItem]:
    if not isinstance(rates, str) or not rates.strip():
        raise ConfigurationError("rates must be a non-empty rate string such as '5/minute'")
    try:
        items = limits.parse_many(rates)
    except ValueError as exc:
        raise ConfigurationError(f"invalid rate string {rates!r}") from exc
    if not items:
        raise ConfigurationError(f"invalid rate string {rates!r}")
    for item in items:
        if item.amount < 1 or item.multiples < 1:
            raise ConfigurationError(f"invalid rate string {rates!r}: amounts must be positive")
    return items


def _check_cost(cost: object) -> int:
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        raise ConfigurationError("cost must be a non-negative integer")
    return cost


def _policy_id(name: str | None, item: limits.RateLimitItem, count: int) -> str:
    if name is not None and count == 1:
        return name
    base = f"{item.amount}-per-{int(item.get_expiry())}s"
    return f"{name}-{base}" if name is not None else base


def _strategy_class(strategy: str) -> Callable[[AsyncStorage], LimitsStrategy]:
    return cast("Callable[[AsyncStorage], LimitsStrategy]", STRATEGIES[strategy])


def _route_namespace(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if path is None:
        return f"path:{request.url.path}"
    methods = getattr(route, "methods", None) or ()
    # root_path tells apart same-looking routes of two mounted sub-applications.
    root = request.scope.get("root_path", "")
    return f"route:{','.join(sorted(methods))} {root}{path}"


def _open_storage(
    storage: str | AsyncStorage, options: Mapping[str, Any], timeout: float, key_prefix: str
) -> AsyncStorage:
    if isinstance(storage, AsyncStorage):
        return storage
    if isinstance(storage, SyncStorage):
        raise ConfigurationError(
            "a synchronous limits storage would block the event loop; pass an async "
            "storage (limits.aio.storage) or a storage URI"
        )
    if not isinstance(storage, str):
        raise ConfigurationError("storage must be a URI string or a limits.aio storage")
    scheme = urlsplit(storage).scheme.lower()
    if not scheme:
        raise ConfigurationError("storage URI has no scheme; use e.g. 'memory://'")
    base = scheme.removeprefix("async+")
    defaults: dict[str, Any] = {}
    if base in _REDIS_SCHEMES:
        require("redis", extra="redis", feature="RateLimiter with a Redis storage")
        defaults = {
            "implementation": "redispy",
            "key_prefix": key_prefix,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        if base == "redis+sentinel":
            defaults["sentinel_kwargs"] = {
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
            }
        if base != "redis+cluster":
            from fastapi_secure._redis import stale_connection_retry

            # A stale pooled connection (Redis restarted) is retried once on a fresh
            # one; a timeout is not: storage_timeout bounds the call, then the policy.
            defaults["retry"] = stale_connection_retry()
    if base == "memory" and not options:
        # limits' own memory storage, with its expiry scans paced (see the module).
        from fastapi_secure._ratelimit_memory import PacedMemoryStorage

        return PacedMemoryStorage()
    uri = f"async+{base}{storage[len(scheme) :]}"
    try:
        opened = storage_from_string(uri, **{**defaults, **options})
    except limits.errors.ConfigurationError:
        # Never echo the URI nor limits' message (which quotes it): it may carry a password.
        # Not chained either: a traceback would print the cause's message.
        raise ConfigurationError(f"cannot open a {base!r} rate-limit storage") from None
    if not isinstance(opened, AsyncStorage):
        raise ConfigurationError(f"the {base!r} storage has no async implementation")
    return opened
