"""Escalating lockout of failed logins, per account and per client address.

Each key (an account's normalized login name, or a client network) counts
failures within ``window``; at ``threshold`` failures a lock starts for
``base_delay`` seconds, and each further lock lasts ``factor`` times longer,
up to ``max_delay``. A lock always ends: an attacker can delay an account,
never close it. The escalation falls back to the first step after
``forget_after`` seconds without a failure, and a successful login clears the
account's key at once.

Accounts are keyed by :func:`~fastapi_secure.accounts.users.normalize_login_name`
of the name tried, whether an account exists or not, so a lock of an unknown
name looks exactly like a lock of a real one. Client addresses are counted per
``/32`` (IPv4) and ``/64`` (IPv6), with a higher threshold by default since
many users may share one address behind a NAT.

A lock answers :class:`~fastapi_secure.accounts.errors.AccountLockedError`
(429 with ``Retry-After``). Counters live in a :class:`LockoutStore`: memory for
one process, :class:`~fastapi_secure.accounts.redis.RedisLockoutStore` to share
them between workers. Each step is one atomic operation on either backend.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fastapi_secure.accounts.addresses import IPAddress, coarsen_address
from fastapi_secure.accounts.errors import AccountLockedError
from fastapi_secure.accounts.hooks import AccountEvent, AccountHooks
from fastapi_secure.accounts.users import login_name_digest, normalize_login_name
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.events import EventSink, EventType, emit_event
from fastapi_secure.tokens.stores.base import digest

__all__ = ["Lockout", "LockoutPolicy", "LockoutStore", "MemoryLockoutStore"]


@dataclass(frozen=True)
class LockoutPolicy:
    """When locks start and how long they last (seconds).

    The defaults: 5 failures within 15 minutes lock for 1 minute, then 2, 4,
    ... up to 1 hour; a day without failures starts over.
    """

    threshold: int = 5
    window: float = 900.0
    base_delay: float = 60.0
    factor: float = 2.0
    max_delay: float = 3600.0
    forget_after: float = 86400.0

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not (
            isinstance(self.threshold, int) and self.threshold >= 1
        ):
            raise ConfigurationError("threshold must be a positive integer")
        for name in ("window", "base_delay", "max_delay", "forget_after"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ConfigurationError(f"{name} must be a positive number of seconds")
        if not (isinstance(self.factor, (int, float)) and 1 <= self.factor <= 10):
            raise ConfigurationError("factor must be between 1 and 10")
        if self.max_delay < self.base_delay:
            raise ConfigurationError("max_delay must be at least base_delay")
        if self.max_delay > 7 * 86400:
            # A longer lock is a permanent one in practice, and an attacker can start it.
            raise ConfigurationError("max_delay may not exceed 7 days")

    def delay(self, level: int) -> float:
        """Length of the lock at escalation ``level`` (0 for the first)."""
        if level >= 64:
            return float(self.max_delay)
        return float(min(self.base_delay * self.factor**level, self.max_delay))


ADDRESS_POLICY = LockoutPolicy(threshold=20)
"""Default per-address policy: more tries before a lock (shared addresses)."""


@runtime_checkable
class LockoutStore(Protocol):
    """Failure counters and locks per key; each method is atomic."""

    async def locked_for(self, key: str, *, now: float) -> float:
        """Seconds until the lock of ``key`` ends; 0 when it is not locked."""
        ...

    async def record_failure(self, key: str, *, now: float, policy: LockoutPolicy) -> float:
        """Count a failure; returns the length of the lock it starts, else 0."""
        ...

    async def clear(self, key: str) -> None:
        """Forget ``key``'s failures and escalation (after a successful login)."""
        ...

    async def aclose(self) -> None:
        """Release connections owned by the store."""
        ...


@dataclass
class _Counter:
    failures: int = 0
    window_start: float = 0.0
    level: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0
    expires_at: float = 0.0


class MemoryLockoutStore:
    """A :class:`LockoutStore` in a dict, for one process (tests, single worker)."""

    def __init__(self, *, prune_every: int = 1000) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, _Counter] = {}
        self._prune_every = prune_every
        self._writes = 0

    def size(self) -> int:
        """Number of keys kept (for tests and metrics)."""
        with self._lock:
            return len(self._counters)

    def _live(self, key: str, now: float) -> _Counter | None:
        counter = self._counters.get(key)
        if counter is not None and counter.expires_at <= now:
            del self._counters[key]
            return None
        return counter

    async def locked_for(self, key: str, *, now: float) -> float:
        with self._lock:
            counter = self._live(key, now)
            return max(0.0, counter.locked_until - now) if counter else 0.0

    async def record_failure(self, key: str, *, now: float, policy: LockoutPolicy) -> float:
        with self._lock:
            self._writes += 1
            if self._writes % self._prune_every == 0:
                for stale in [k for k, c in self._counters.items() if c.expires_at <= now]:
                    del self._counters[stale]
            counter = self._live(key, now) or _Counter()
            self._counters[key] = counter
            return _count_failure(counter, now, policy)

    async def clear(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)

    async def aclose(self) -> None:
        """Nothing to release; present for the protocol."""


def _count_failure(counter: _Counter, now: float, policy: LockoutPolicy) -> float:
    # The memory twin of the Redis script in accounts/redis.py (keep them alike).
    if counter.last_failure and now - counter.last_failure > policy.forget_after:
        counter.level = 0
    counter.last_failure = now
    if counter.locked_until > now:
        counter.expires_at = max(counter.expires_at, now + policy.forget_after)
        return 0.0
    if counter.failures == 0 or now - counter.window_start > policy.window:
        counter.failures = 0
        counter.window_start = now
    counter.failures += 1
    delay = 0.0
    if counter.failures >= policy.threshold:
        delay = policy.delay(counter.level)
        counter.level += 1
        counter.failures = 0
        counter.locked_until = now + delay
    counter.expires_at = now + policy.forget_after + delay
    return delay


class Lockout:
    """Escalating login lockout over a :class:`LockoutStore`.

    In a login route: ``await lockout.check(name, address)`` before checking
    the password (raises :class:`AccountLockedError`), then
    ``await lockout.failure(name, address)`` or ``await lockout.success(name)``.

    Args:
        store: counters (:class:`MemoryLockoutStore` by default).
        account: policy per normalized login name.
        address: policy per client network; ``None`` counts no addresses.
        hooks: ``AccountEvent.LOCKED`` is emitted when a lock starts.
        events: the security log: ``lockout_started`` when a lock starts (one per
            locked key, ``extra``: ``scope``, ``retry_after`` and, for an account,
            ``login_name_digest``; never the name). An :class:`AccountManager`
            gives its own ``events`` to a lockout that has none.
        clock: time source.
    """

    def __init__(
        self,
        store: LockoutStore | None = None,
        *,
        account: LockoutPolicy | None = None,
        address: LockoutPolicy | None = ADDRESS_POLICY,
        hooks: AccountHooks | None = None,
        events: EventSink | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store if store is not None else MemoryLockoutStore()
        self.events = events
        self._account = account if account is not None else LockoutPolicy()
        self._address = address
        self._hooks = hooks
        self._clock = clock

    def __repr__(self) -> str:
        return f"Lockout(account={self._account!r}, address={self._address!r})"

    @property
    def store(self) -> LockoutStore:
        return self._store

    @staticmethod
    def account_key(login_name: str) -> str:
        """The store key of a login name (normalized, then digested)."""
        return "a:" + digest("lockout-account", normalize_login_name(login_name))

    @staticmethod
    def address_key(network: str) -> str:
        """The store key of a coarsened client network."""
        return "i:" + digest("lockout-address", network)

    def _keys(
        self, login_name: str, client_address: str | IPAddress | None
    ) -> list[tuple[str, LockoutPolicy, str | None]]:
        keys: list[tuple[str, LockoutPolicy, str | None]] = [
            (self.account_key(login_name), self._account, None)
        ]
        network = coarsen_address(client_address, ipv4_prefix=32, ipv6_prefix=64)
        if self._address is not None and network is not None:
            keys.append((self.address_key(network), self._address, network))
        return keys

    async def check(self, login_name: str, client_address: str | IPAddress | None = None) -> None:
        """Raise :class:`AccountLockedError` while the name or the address is locked."""
        now = self._clock()
        longest, reason = 0.0, ""
        for key, _, network in self._keys(login_name, client_address):
            remaining = await self._store.locked_for(key, now=now)
            if remaining > longest:
                longest = remaining
                reason = "address locked" if network else "account locked"
        if longest > 0:
            raise AccountLockedError(longest, reason=reason)

    async def failure(
        self, login_name: str, client_address: str | IPAddress | None = None
    ) -> float:
        """Count a failed login; returns the length of a lock it started (else 0)."""
        now = self._clock()
        started = 0.0
        for key, policy, network in self._keys(login_name, client_address):
            delay = await self._store.record_failure(key, now=now, policy=policy)
            if delay > 0:
                started = max(started, delay)
                if self._hooks is not None:
                    await self._hooks.emit(
                        AccountEvent.LOCKED,
                        login_name=normalize_login_name(login_name),
                        client_address=network
                        or coarsen_address(client_address, ipv4_prefix=32, ipv6_prefix=64),
                        retry_after=delay,
                        data={"scope": "address" if network else "account"},
                    )
                await self._report(login_name, client_address, network, delay)
        return started

    async def _report(
        self,
        login_name: str,
        client_address: str | IPAddress | None,
        network: str | None,
        delay: float,
    ) -> None:
        extra: dict[str, object] = {
            "scope": "address" if network else "account",
            "retry_after": math.ceil(delay),
        }
        if network is None:
            extra["login_name_digest"] = login_name_digest(login_name)
        await emit_event(
            self.events,
            EventType.LOCKOUT_STARTED,
            clock=self._clock,
            client=None if client_address is None else str(client_address),
            reason="address locked" if network else "account locked",
            extra=extra,
        )

    async def success(self, login_name: str) -> None:
        """Clear the account's failures and escalation (not the address's: an
        attacker with one account of their own must not reset their address)."""
        await self._store.clear(self.account_key(login_name))
