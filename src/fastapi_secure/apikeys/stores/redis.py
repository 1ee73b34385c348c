"""Redis API key store: shared by every process and host.

A key is one Redis hash (``<prefix>k:<id>``) and each subject has a set of its
key ids (``<prefix>s:<digest of subject>``). Every write is one Lua script, so
it is atomic: the next lookup from any client after :meth:`revoke` returns
sees the key revoked. Any Redis failure becomes
:class:`~fastapi_secure.errors.StoreUnavailableError` (503), never a key
accepted and never a 500.

Standalone Redis and Sentinel-managed masters only: the scripts touch a key's
hash and its subject's set, which a Redis Cluster would place in different
slots.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from fastapi_secure._redis import RedisStore
from fastapi_secure.apikeys.stores.base import APIKey, StoredAPIKey
from fastapi_secure.tokens.stores.base import digest

if TYPE_CHECKING:
    from collections.abc import Sequence

    import redis.asyncio
    from redis.commands.core import AsyncScript

__all__ = ["RedisAPIKeyStore"]

logger = logging.getLogger("fastapi_secure.apikeys")

DEFAULT_PREFIX = "fastapi-secure:apikeys:"
_FIELDS = ("sub", "name", "scopes", "roles", "created", "exp", "used", "rev", "rot", "dig")

# KEYS: key hash, subject set. ARGV: id, then _FIELDS values in order.
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'sub', ARGV[2], 'name', ARGV[3], 'scopes', ARGV[4],
           'roles', ARGV[5], 'created', ARGV[6], 'exp', ARGV[7], 'used', ARGV[8],
           'rev', ARGV[9], 'rot', ARGV[10], 'dig', ARGV[11])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: key hash. ARGV: subject.
_REVOKE = """
if redis.call('HGET', KEYS[1], 'sub') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rev', '1')
return 1
"""

# KEYS: old hash, successor hash, subject set. ARGV: subject, retire_at, now,
# successor id, then the successor's _FIELDS values.
_ROTATE = """
local f = redis.call('HMGET', KEYS[1], 'sub', 'exp', 'rev', 'rot')
if f[1] ~= ARGV[1] or f[3] ~= '0' or f[4] ~= '' then return 0 end
local now = tonumber(ARGV[3])
local retire = ARGV[2]
if f[2] ~= '' then
  if tonumber(f[2]) <= now then return 0 end
  if tonumber(f[2]) < tonumber(retire) then retire = f[2] end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'exp', retire, 'rot', ARGV[4])
redis.call('HSET', KEYS[2], 'sub', ARGV[5], 'name', ARGV[6], 'scopes', ARGV[7],
           'roles', ARGV[8], 'created', ARGV[9], 'exp', ARGV[10], 'used', ARGV[11],
           'rev', ARGV[12], 'rot', ARGV[13], 'dig', ARGV[14])
redis.call('SADD', KEYS[3], ARGV[4])
return 1
"""

# KEYS: key hash. ARGV: now, min_interval.
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local used = redis.call('HGET', KEYS[1], 'used')
if used and used ~= '' and tonumber(ARGV[1]) - tonumber(used) < tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'used', ARGV[1])
return 1
"""


def _number(value: float | None) -> str:
    # repr() round-trips a float exactly, and Lua's tonumber reads it back.
    return "" if value is None else repr(float(value))


def _encode(key: StoredAPIKey) -> list[str]:
    record = key.record
    return [
        record.subject,
        record.name,
        " ".join(sorted(record.scopes)),
        json.dumps(list(record.roles)),
        _number(record.created_at),
        _number(record.expires_at),
        _number(record.last_used_at),
        "1" if record.revoked else "0",
        record.rotated_to or "",
        key.secret_digest,
    ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional_float(value: str) -> float | None:
    return float(value) if value else None


def _decode(key_id: str, values: Sequence[Any]) -> StoredAPIKey:
    (sub, name, scopes, roles, created, exp, used, rev, rot, dig) = (_text(v) for v in values)
    record = APIKey(
        id=key_id,
        subject=sub,
        name=name,
        scopes=frozenset(scopes.split()),
        roles=tuple(json.loads(roles)),
        created_at=float(created),
        expires_at=_optional_float(exp),
        last_used_at=_optional_float(used),
        revoked=rev == "1",
        rotated_to=rot or None,
    )
    return StoredAPIKey(record=record, secret_digest=dig)


class RedisAPIKeyStore(RedisStore):
    """An :class:`~fastapi_secure.apikeys.stores.base.APIKeyStore` in Redis.

    Give it a ``redis.asyncio.Redis`` you own (with socket timeouts) or use
    :meth:`from_url`. ``operation_timeout`` bounds every call on top of the
    socket timeouts. Keys live under ``prefix``.
    """

    _feature = "RedisAPIKeyStore"
    _label = "API key store"
    _logger = logger

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        operation_timeout: float = 2.0,
        owns_client: bool = False,
    ) -> None:
        super().__init__(
            client,
            prefix=prefix,
            operation_timeout=operation_timeout,
            owns_client=owns_client,
            # Standalone and Sentinel only (see the module): no cluster to warm up.
            warm_up=False,
            fail_closed_on_any_error=False,
        )
        self._client = client
        self._add = self._redis.register(_ADD)
        self._revoke = self._redis.register(_REVOKE)
        self._rotate = self._redis.register(_ROTATE)
        self._touch = self._redis.register(_TOUCH)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        operation_timeout: float = 2.0,
        **client_options: Any,
    ) -> RedisAPIKeyStore:
        """Connect to ``redis://``, ``rediss://`` or ``unix://``; the store owns the client."""
        # cluster=False: the URL never names a cluster, so the client is a Redis.
        return cls._connect(
            url,
            prefix=prefix,
            operation_timeout=operation_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            cluster=False,
            **client_options,
        )

    @property
    def client(self) -> redis.asyncio.Redis:
        """The underlying ``redis.asyncio`` client."""
        return self._client

    def _key(self, key_id: str) -> str:
        return f"{self._prefix}k:{key_id}"

    def _subject_key(self, subject: str) -> str:
        return f"{self._prefix}s:{digest('sub', subject)}"

    async def _script(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> bool:
        result = await self._redis.run(script, keys, args)
        return int(result) == 1

    async def add(self, key: StoredAPIKey) -> bool:
        return await self._script(
            self._add,
            [self._key(key.id), self._subject_key(key.record.subject)],
            [key.id, *_encode(key)],
        )

    async def get(self, key_id: str) -> StoredAPIKey | None:
        values = await self._redis.call(self._client.hmget(self._key(key_id), list(_FIELDS)))
        if values[0] is None:
            return None
        return _decode(key_id, values)

    async def list_for(self, subject: str) -> list[StoredAPIKey]:
        ids = sorted(
            _text(i)
            for i in await self._redis.call(self._client.smembers(self._subject_key(subject)))
        )
        found = []
        for key_id in ids:
            stored = await self.get(key_id)
            if stored is not None and stored.record.subject == subject:
                found.append(stored)
        return sorted(found, key=lambda key: (key.record.created_at, key.id))

    async def revoke(self, key_id: str, subject: str) -> bool:
        return await self._script(self._revoke, [self._key(key_id)], [subject])

    async def rotate(
        self, key_id: str, subject: str, successor: StoredAPIKey, *, retire_at: float, now: float
    ) -> bool:
        return await self._script(
            self._rotate,
            [self._key(key_id), self._key(successor.id), self._subject_key(subject)],
            [subject, _number(retire_at), _number(now), successor.id, *_encode(successor)],
        )

    async def touch(self, key_id: str, *, now: float, min_interval: float) -> bool:
        return await self._script(
            self._touch, [self._key(key_id)], [_number(now), _number(min_interval)]
        )
