"""Redis token store: shared by every process and host, standalone or cluster.

Each operation is one Lua script over keys of one subject, which all share
the subject's hash tag (``{...}``): scripts are atomic and run unchanged on a
Redis Cluster. Any Redis failure (connection refused, timeout, cluster down,
out of memory) becomes :class:`~fastapi_secure.errors.StoreUnavailableError`:
a 503, never access granted, never a 500.
"""

from __future__ import annotations

import logging
import math
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fastapi_secure._redis import (
    PiggybackRead,
    RedisStore,
    stale_connection_retry,
)
from fastapi_secure.errors import ConfigurationError, StoreUnavailableError
from fastapi_secure.tokens.stores.base import (
    SessionInfo,
    TokenState,
    access_state_key,
    belongs_to,
    clean_user_agent,
    digest,
    family_tag,
    subject_tag,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import redis.asyncio
    import redis.asyncio.cluster
    from redis.commands.core import AsyncScript

    RedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

__all__ = ["RedisTokenStore"]

logger = logging.getLogger("fastapi_secure.tokens")

DEFAULT_PREFIX = "fastapi-secure:tokens:"

# Shared prologue: the state of family KEYS[1] for subject digest ARGV[1],
# whose revocation generation is in KEYS[2]. HMGET fields: sub st gen cur prev rot.
_FAMILY_STATE = """
local function family_state()
  local f = redis.call('HMGET', KEYS[1], 'sub', 'st', 'gen', 'cur', 'prev', 'rot')
  if not f[1] or f[1] ~= ARGV[1] then return nil, 'unknown' end
  if f[2] ~= 'a' then return f, 'family_revoked' end
  local generation = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tonumber(f[3]) < generation then return f, 'subject_revoked' end
  return f, nil
end
local function outlive(ttl)
  local pttl = redis.call('PTTL', KEYS[2])
  if pttl > 0 and pttl < tonumber(ttl) then redis.call('PEXPIRE', KEYS[2], ttl) end
end
"""

# KEYS: family, subject. ARGV: subject digest, refresh jti digest, ttl ms.
_CREATE = (
    _FAMILY_STATE
    + """
local generation = redis.call('GET', KEYS[2]) or '0'
redis.call('HSET', KEYS[1], 'sub', ARGV[1], 'st', 'a', 'gen', generation,
           'cur', ARGV[2], 'prev', '', 'rot', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
outlive(ARGV[3])
return 'active'
"""
)

# KEYS: family, subject, denied jti. ARGV: subject digest.
_CHECK_ACCESS = (
    _FAMILY_STATE
    + """
local f, state = family_state()
if state then return state end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'token_revoked' end
return 'active'
"""
)

# KEYS: family, subject. ARGV: subject digest, jti digest.
_CHECK_REFRESH = (
    _FAMILY_STATE
    + """
local f, state = family_state()
if state then return state end
if f[4] ~= ARGV[2] then return 'consumed' end
return 'active'
"""
)

# KEYS: family, subject. ARGV: subject digest, jti digest, successor digest,
# ttl ms, now ms, grace ms.
_ROTATE = (
    _FAMILY_STATE
    + """
local f, state = family_state()
if state then return state end
if f[4] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'cur', ARGV[3], 'prev', ARGV[2], 'rot', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  outlive(ARGV[4])
  return 'rotated'
end
local grace = tonumber(ARGV[6])
if grace > 0 and f[5] == ARGV[2] and f[4] == ARGV[3]
   and tonumber(ARGV[5]) - tonumber(f[6]) <= grace then
  return 'grace'
end
redis.call('HSET', KEYS[1], 'st', 'r')
return 'reused'
"""
)

# KEYS: family.
_REVOKE_FAMILY = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'st', 'r') end
return 'family_revoked'
"""

# KEYS: subject. ARGV: ttl ms.
_REVOKE_SUBJECT = """
redis.call('INCR', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
if pttl < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 'subject_revoked'
"""

# KEYS: denied jti. ARGV: ttl ms.
_DENY = """
local pttl = redis.call('PTTL', KEYS[1])
if pttl < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 'token_revoked'
"""

# -- sessions per device --------------------------------------------------------
# Per subject, a sorted set (score: creation ms) of family digests; per session,
# a hash of its metadata. Family, metadata and index keys share the subject's
# hash tag; ARGV[1] is their common "<prefix>{tag}:" base and ARGV[2] the
# subject digest. KEYS[1]: index, KEYS[2]: subject generation.
_SESSION_LIVE = """
local base, sub = ARGV[1], ARGV[2]
local function live(m)
  local f = redis.call('HMGET', base .. 'f:' .. m, 'sub', 'st', 'gen')
  if not f[1] or f[1] ~= sub or f[2] ~= 'a' then return false end
  local generation = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tonumber(f[3]) < generation then return false end
  return redis.call('EXISTS', base .. 'm:' .. m) == 1
end
local function sweep()
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if not live(m) then
      redis.call('ZREM', KEYS[1], m)
      redis.call('DEL', base .. 'm:' .. m)
    end
  end
end
local function extend(key, ttl)
  local pttl = redis.call('PTTL', key)
  if pttl < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
end
"""

# ARGV: base, sub, member, sid, now ms, user agent, address, ttl ms, max sessions.
_RECORD_SESSION = (
    _SESSION_LIVE
    + """
local m = ARGV[3]
redis.call('HSET', base .. 'm:' .. m, 'sid', ARGV[4], 'created', ARGV[5], 'last', ARGV[5],
           'ua', ARGV[6], 'addr', ARGV[7])
redis.call('PEXPIRE', base .. 'm:' .. m, ARGV[8])
redis.call('ZADD', KEYS[1], ARGV[5], m)
extend(KEYS[1], ARGV[8])
sweep()
local evicted = {}
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[9])
if excess > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do
    table.insert(evicted, redis.call('HGET', base .. 'm:' .. old, 'sid'))
    redis.call('HSET', base .. 'f:' .. old, 'st', 'r')
    redis.call('DEL', base .. 'm:' .. old)
    redis.call('ZREM', KEYS[1], old)
  end
end
return evicted
"""
)

# ARGV: base, sub, member, now ms, ttl ms.
_TOUCH_SESSION = (
    _SESSION_LIVE
    + """
local meta = base .. 'm:' .. ARGV[3]
if redis.call('EXISTS', meta) == 0 then return 0 end
local last = tonumber(redis.call('HGET', meta, 'last') or '0')
if tonumber(ARGV[4]) > last then redis.call('HSET', meta, 'last', ARGV[4]) end
extend(meta, ARGV[5])
extend(KEYS[1], ARGV[5])
return 1
"""
)

# ARGV: base, sub.
_LIST_SESSIONS = (
    _SESSION_LIVE
    + """
sweep()
local out = {}
for _, m in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', base .. 'm:' .. m, 'sid', 'created', 'last', 'ua', 'addr')
  table.insert(out, f)
end
return out
"""
)

# ARGV: base, sub, member.
_REVOKE_SESSION = (
    _SESSION_LIVE
    + """
local m = ARGV[3]
local was_live = redis.call('ZSCORE', KEYS[1], m) and live(m)
local family = base .. 'f:' .. m
if redis.call('HGET', family, 'sub') == sub then redis.call('HSET', family, 'st', 'r') end
redis.call('ZREM', KEYS[1], m)
redis.call('DEL', base .. 'm:' .. m)
if was_live then return 1 end
return 0
"""
)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisTokenStore(RedisStore):
    """A :class:`~fastapi_secure.tokens.stores.TokenStore` in Redis (``redis.asyncio``).

    Give it a client you own (``redis.asyncio.Redis`` or
    ``redis.asyncio.RedisCluster``; set its socket timeouts yourself) or use
    :meth:`from_url`, which sets them. ``operation_timeout`` bounds every
    call on top of the socket timeouts, so even a client configured without
    them cannot hang a request. Keys live under ``prefix``.
    """

    _feature = "RedisTokenStore"
    _label = "token store"
    _logger = logger

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = DEFAULT_PREFIX,
        operation_timeout: float = 2.0,
        owns_client: bool = False,
    ) -> None:
        super().__init__(
            client, prefix=prefix, operation_timeout=operation_timeout, owns_client=owns_client
        )
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                "RedisTokenStore prefix may not contain '{' or '}': they would change "
                "the Redis Cluster hash tag"
            )
        self._create = self._redis.register(_CREATE)
        self._check_access = self._redis.register(_CHECK_ACCESS)
        self._check_refresh = self._redis.register(_CHECK_REFRESH)
        self._rotate = self._redis.register(_ROTATE)
        self._revoke_family = self._redis.register(_REVOKE_FAMILY)
        self._revoke_subject = self._redis.register(_REVOKE_SUBJECT)
        self._deny = self._redis.register(_DENY)

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
    ) -> RedisTokenStore:
        """Connect to ``redis://``, ``rediss://``, ``unix://`` or, for a cluster,
        ``redis+cluster://`` / ``rediss+cluster://`` (any one node).

        The store owns this client and closes it in :meth:`aclose`. A command
        whose connection broke (a pooled connection gone stale when Redis
        restarted) is retried once, immediately, on a fresh connection; a
        timeout is not retried, so a hung Redis answers within the timeouts.
        """
        return cls._connect(
            url,
            prefix=prefix,
            operation_timeout=operation_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            **{"retry": stale_connection_retry(), **client_options},
        )

    def _subject_key(self, subject: str) -> str:
        return f"{self._prefix}{{{subject_tag(subject)}}}:s:{digest('sub', subject)}"

    def _family_key(self, tag: str, family_id: str) -> str:
        return f"{self._prefix}{{{tag}}}:f:{digest('sid', family_id)}"

    def _jti_key(self, tag: str, family_id: str, jti: str) -> str:
        # scoped by family, as in the memory store: jti values are only unique per issuer
        scoped = f"{family_id}\x00{jti}"
        return f"{self._prefix}{{{tag}}}:j:{digest('jti', scoped)}"

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> str:
        return _text(await self._redis.run(script, keys, args))

    async def _state(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
    ) -> TokenState:
        result = await self._run(script, keys, args)
        try:
            return TokenState(result)
        except ValueError:
            raise StoreUnavailableError(reason="unexpected store reply") from None

    async def create_family(
        self, subject: str, family_id: str, *, refresh_jti: str, ttl: float
    ) -> None:
        tag = family_tag(family_id)
        if tag is None or not belongs_to(subject, family_id):
            raise ValueError("family_id was not made for this subject (use new_family_id)")
        await self._run(
            self._create,
            [self._family_key(tag, family_id), self._subject_key(subject)],
            [digest("sub", subject), digest("jti", refresh_jti), _ms(ttl)],
        )

    async def check_access(self, subject: str, family_id: str, *, jti: str) -> TokenState:
        tag = family_tag(family_id)
        if tag is None or not belongs_to(subject, family_id):
            return TokenState.UNKNOWN
        return await self._state(
            self._check_access,
            [
                self._family_key(tag, family_id),
                self._subject_key(subject),
                self._jti_key(tag, family_id, jti),
            ],
            [digest("sub", subject)],
        )

    def check_access_read(self, subject: str, family_id: str, *, jti: str) -> PiggybackRead | None:
        """:meth:`check_access` as a read another Redis call may carry (see
        :class:`~fastapi_secure._redis.PiggybackRead`); None when it needs no
        Redis. Its answer is kept under :func:`access_state_key`."""
        tag = family_tag(family_id)
        if tag is None or not belongs_to(subject, family_id):
            return None
        return PiggybackRead(
            client=self._redis.client,
            source=_CHECK_ACCESS,
            keys=(
                self._family_key(tag, family_id),
                self._subject_key(subject),
                self._jti_key(tag, family_id, jti),
            ),
            args=(digest("sub", subject),),
            key=access_state_key(self, subject, family_id, jti),
            parse=_token_state,
        )

    async def check_refresh(self, subject: str, family_id: str, *, jti: str) -> TokenState:
        tag = family_tag(family_id)
        if tag is None or not belongs_to(subject, family_id):
            return TokenState.UNKNOWN
        return await self._state(
            self._check_refresh,
            [self._family_key(tag, family_id), self._subject_key(subject)],
            [digest("sub", subject), digest("jti", jti)],
        )

    async def rotate(
        self,
        subject: str,
        family_id: str,
        *,
        jti: str,
        successor_jti: str,
        ttl: float,
        now: float,
        grace: float = 0.0,
    ) -> TokenState:
        tag = family_tag(family_id)
        if tag is None or not belongs_to(subject, family_id):
            return TokenState.UNKNOWN
        return await self._state(
            self._rotate,
            [self._family_key(tag, family_id), self._subject_key(subject)],
            [
                digest("sub", subject),
                digest("jti", jti),
                digest("jti", successor_jti),
                _ms(ttl),
                math.floor(now * 1000),
                math.floor(grace * 1000) if grace > 0 else 0,
            ],
        )

    async def deny_token(self, subject: str, family_id: str, *, jti: str, ttl: float) -> None:
        tag = family_tag(family_id)
        if tag is None or not belongs_to(subject, family_id):
            # An access token of no family of ours cannot pass check_access anyway.
            return
        await self._run(self._deny, [self._jti_key(tag, family_id, jti)], [_ms(ttl)])

    async def revoke_family(self, family_id: str) -> None:
        tag = family_tag(family_id)
        if tag is None:
            return
        await self._run(self._revoke_family, [self._family_key(tag, family_id)], [])

    async def revoke_subject(self, subject: str, *, ttl: float) -> None:
        await self._run(self._revoke_subject, [self._subject_key(subject)], [_ms(ttl)])

    # -- sessions per device (SessionStore) ------------------------------------

    @cached_property
    def _session_scripts(self) -> dict[str, AsyncScript]:
        return {
            name: self._redis.register(source)
            for name, source in (
                ("record", _RECORD_SESSION),
                ("touch", _TOUCH_SESSION),
                ("list", _LIST_SESSIONS),
                ("revoke", _REVOKE_SESSION),
            )
        }

    def _session_keys(self, subject: str) -> tuple[list[str], list[Any]]:
        tag = subject_tag(subject)
        index = f"{self._prefix}{{{tag}}}:ss:{digest('sub', subject)}"
        return [index, self._subject_key(subject)], [
            f"{self._prefix}{{{tag}}}:",
            digest("sub", subject),
        ]

    async def _session_call(self, name: str, subject: str, *args: Any) -> Any:
        keys, base_args = self._session_keys(subject)
        return await self._redis.run(self._session_scripts[name], keys, [*base_args, *args])

    async def record_session(
        self,
        subject: str,
        family_id: str,
        *,
        now: float,
        ttl: float,
        max_sessions: int,
        user_agent: str | None = None,
        client_address: str | None = None,
    ) -> list[str]:
        if not belongs_to(subject, family_id):
            raise ValueError("family_id was not made for this subject (use new_family_id)")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        evicted = await self._session_call(
            "record",
            subject,
            digest("sid", family_id),
            family_id,
            math.floor(now * 1000),
            clean_user_agent(user_agent) or "",
            client_address or "",
            _ms(ttl),
            int(max_sessions),
        )
        return [_text(value) for value in evicted if value is not None]

    async def touch_session(self, subject: str, family_id: str, *, now: float, ttl: float) -> None:
        if not belongs_to(subject, family_id):
            return
        await self._session_call(
            "touch", subject, digest("sid", family_id), math.floor(now * 1000), _ms(ttl)
        )

    async def list_sessions(self, subject: str) -> list[SessionInfo]:
        rows = await self._session_call("list", subject)
        sessions = []
        for sid, created, last, user_agent, address in rows:
            if sid is None:
                continue
            sessions.append(
                SessionInfo(
                    session_id=_text(sid),
                    created_at=int(created) / 1000,
                    last_used_at=int(last) / 1000,
                    user_agent=_text(user_agent) or None,
                    client_address=_text(address) or None,
                )
            )
        return sessions

    async def revoke_session(self, subject: str, family_id: str) -> bool:
        if not belongs_to(subject, family_id):
            return False
        return bool(await self._session_call("revoke", subject, digest("sid", family_id)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _token_state(reply: Any) -> TokenState | None:
    if not isinstance(reply, (bytes, str)):
        return None
    try:
        return TokenState(_text(reply))
    except ValueError:
        return None
