"""The apps the benchmark compares: one JSON route each, differing only in what guards it.

``build(name, redis_url)`` returns the ASGI app and the request headers a
valid request carries (a bearer token where the app wants one). Each app is
built the way its library documents it. The anchors (slowapi, fastapi-users,
AuthX, fastapi-limiter, secure) come from ``benchmarks/requirements.txt`` and
are imported through ``importlib`` only when asked for, so the library never
depends on them and mypy needs no stubs for them.

Run one app over HTTP (the benchmark does this in a subprocess)::

    python benchmarks/apps.py NAME PORT [--redis URL]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request, Response

from fastapi_secure.headers import SecureHeadersMiddleware
from fastapi_secure.ratelimit import RateLimiter, RateLimitHeadersMiddleware
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer, keep_login_grant
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

SECRET = "benchmark-secret-" * 4
ISSUER = "https://auth.example.test"
AUDIENCE = "https://api.example.test"
# Never refuses during a run: the limit is counted, not hit.
RATE = "1000000/hour"
REDIS_PREFIX = f"fs-bench:{uuid.uuid4().hex}:"

Headers = list[tuple[bytes, bytes]]
Closer = Callable[[], Awaitable[None]]


@dataclasses.dataclass
class Built:
    app: Any
    headers: Headers
    close: list[Closer] = dataclasses.field(default_factory=list)


def _app() -> FastAPI:
    return FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


def _bearer(token: str) -> Headers:
    return [(b"authorization", f"Bearer {token}".encode())]


async def bare(redis_url: str) -> Built:
    app = _app()

    @app.get("/")
    async def index() -> dict[str, bool]:
        return {"ok": True}

    return Built(app, [])


async def headers(redis_url: str) -> Built:
    built = await bare(redis_url)
    built.app.add_middleware(SecureHeadersMiddleware)
    return built


async def floor_middleware(redis_url: str) -> Built:
    """The floor of any pure ASGI middleware: one that only wraps ``send``."""
    built = await bare(redis_url)

    class EmptyLayer:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def wrapped(message: Any) -> None:
                await send(message)

            await self.app(scope, receive, wrapped)

    built.app.add_middleware(EmptyLayer)
    return built


async def floor_yield_dependency(redis_url: str) -> Built:
    """The floor of a limit dependency: one that does nothing around a ``yield``.

    The limiter needs the ``yield`` to put its headers on errors raised after it.
    """

    async def nothing(request: Request, response: Response) -> AsyncIterator[None]:
        yield

    app = _app()

    @app.get("/", dependencies=[Depends(nothing)])
    async def index() -> dict[str, bool]:
        return {"ok": True}

    return Built(app, [])


def _limited(limiter: RateLimiter) -> Built:
    app = _app()

    @app.get("/", dependencies=[Depends(limiter.limit(RATE))])
    async def index() -> dict[str, bool]:
        return {"ok": True}

    return Built(app, [], [limiter.aclose])


async def limiter_memory(redis_url: str) -> Built:
    return _limited(RateLimiter("memory://"))


async def limiter_memory_plain(redis_url: str) -> Built:
    """A plain limit dependency (no ``yield``); the middleware puts the headers on errors."""
    built = _limited(RateLimiter("memory://", headers_on_errors=False))
    built.app.add_middleware(RateLimitHeadersMiddleware)
    return built


async def limiter_redis(redis_url: str) -> Built:
    return _limited(RateLimiter(redis_url, key_prefix=REDIS_PREFIX.rstrip(":")))


async def limiter_redis_plain(redis_url: str) -> Built:
    """A plain limit dependency on Redis; the middleware puts the headers on errors."""
    limiter = RateLimiter(redis_url, key_prefix=REDIS_PREFIX.rstrip(":"), headers_on_errors=False)
    built = _limited(limiter)
    built.app.add_middleware(RateLimitHeadersMiddleware)
    return built


async def limits_hit_redis(redis_url: str) -> Built:
    """The floor of a Redis limit: one ``limits`` fixed-window hit, nothing else."""
    import limits
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import FixedWindowRateLimiter

    storage = RedisStorage(
        redis_url.replace("redis://", "async+redis://"),
        implementation="redispy",
        key_prefix=REDIS_PREFIX.rstrip(":"),
    )
    strategy = FixedWindowRateLimiter(storage)
    item = limits.parse(RATE)
    app = _app()

    async def hit(request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        await strategy.hit(item, "bench", client)

    @app.get("/", dependencies=[Depends(hit)])
    async def index() -> dict[str, bool]:
        return {"ok": True}

    async def close() -> None:
        await storage.reset()

    return Built(app, [], [close])


def _issuer(store: Any) -> TokenIssuer:
    return TokenIssuer(
        KeySet.from_secret(SECRET, kid="k1"),
        store,
        issuer=ISSUER,
        audience=AUDIENCE,
        grant_loader=keep_login_grant,
    )


def _redis_store(redis_url: str) -> Any:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    return RedisTokenStore.from_url(redis_url, prefix=REDIS_PREFIX + "tokens:")


async def _bearer_app(store: Any) -> Built:
    from fastapi_secure.auth.bearer import BearerAuth

    issuer = _issuer(store)
    bearer = BearerAuth(issuer)
    app = _app()

    @app.get("/")
    async def index(claims: AccessClaims = Depends(bearer)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    pair = await issuer.issue("alice", roles=["user"])
    return Built(app, _bearer(pair.access_token), [store.aclose])


async def bearer_memory(redis_url: str) -> Built:
    return await _bearer_app(MemoryTokenStore())


async def bearer_redis(redis_url: str) -> Built:
    return await _bearer_app(_redis_store(redis_url))


async def _full(store: Any, limiter: RateLimiter) -> Built:
    """Secure headers + bearer with revocation check + role check + one rate limit."""
    from fastapi_secure.auth.bearer import BearerAuth
    from fastapi_secure.auth.guards import RoleChecker

    issuer = _issuer(store)
    bearer = BearerAuth(issuer)
    users = RoleChecker(["user"], auth=bearer)
    app = _app()
    if not limiter.headers_on_errors:
        app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(SecureHeadersMiddleware)

    @app.get("/", dependencies=[Depends(limiter.limit(RATE))])
    async def index(claims: AccessClaims = Depends(users)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    pair = await issuer.issue("alice", roles=["user"])
    return Built(app, _bearer(pair.access_token), [store.aclose, limiter.aclose])


async def full_memory(redis_url: str) -> Built:
    return await _full(MemoryTokenStore(), RateLimiter("memory://"))


async def full_redis(redis_url: str) -> Built:
    return await _full(
        _redis_store(redis_url), RateLimiter(redis_url, key_prefix=REDIS_PREFIX.rstrip(":"))
    )


async def full_memory_plain(redis_url: str) -> Built:
    return await _full(MemoryTokenStore(), RateLimiter("memory://", headers_on_errors=False))


async def full_redis_plain(redis_url: str) -> Built:
    limiter = RateLimiter(redis_url, key_prefix=REDIS_PREFIX.rstrip(":"), headers_on_errors=False)
    return await _full(_redis_store(redis_url), limiter)


# -- anchors ---------------------------------------------------------------------


async def secure_anchor(redis_url: str) -> Built:
    middleware = importlib.import_module("secure.middleware")
    built = await bare(redis_url)
    built.app.add_middleware(middleware.SecureASGIMiddleware)
    return built


def _slowapi(app: FastAPI, headers_enabled: bool) -> Any:
    slowapi = importlib.import_module("slowapi")
    util = importlib.import_module("slowapi.util")
    limiter = slowapi.Limiter(key_func=util.get_remote_address, headers_enabled=headers_enabled)
    app.state.limiter = limiter
    return limiter


async def slowapi_memory(redis_url: str, headers_enabled: bool = False) -> Built:
    app = _app()
    limiter = _slowapi(app, headers_enabled)

    @app.get("/")
    @limiter.limit(RATE)  # type: ignore[untyped-decorator]
    async def index(request: Request, response: Response) -> dict[str, bool]:
        return {"ok": True}

    return Built(app, [])


async def slowapi_memory_headers(redis_url: str) -> Built:
    return await slowapi_memory(redis_url, headers_enabled=True)


async def fastapi_limiter_memory(redis_url: str) -> Built:
    pyrate = importlib.import_module("pyrate_limiter")
    depends = importlib.import_module("fastapi_limiter.depends")
    limiter = pyrate.Limiter(pyrate.Rate(1_000_000, pyrate.Duration.HOUR))
    app = _app()

    @app.get("/", dependencies=[Depends(depends.RateLimiter(limiter=limiter))])
    async def index() -> dict[str, bool]:
        return {"ok": True}

    return Built(app, [])


async def authx_anchor(redis_url: str) -> Built:
    authx = importlib.import_module("authx")
    auth = authx.AuthX(
        config=authx.AuthXConfig(JWT_SECRET_KEY=SECRET, JWT_TOKEN_LOCATION=["headers"])
    )
    app = _app()

    @app.get("/", dependencies=[Depends(auth.access_token_required)])
    async def index() -> dict[str, bool]:
        return {"ok": True}

    return Built(app, _bearer(auth.create_access_token(uid="alice")))


@dataclasses.dataclass
class _User:
    id: uuid.UUID
    email: str = "alice@example.test"
    hashed_password: str = "x"
    is_active: bool = True
    is_superuser: bool = False
    is_verified: bool = True


def _fastapi_users() -> tuple[Any, Any, str]:
    """fastapi-users with its JWT strategy over an in-memory user table."""
    fu = importlib.import_module("fastapi_users")
    auth = importlib.import_module("fastapi_users.authentication")
    db = importlib.import_module("fastapi_users.db")
    jwt = importlib.import_module("fastapi_users.jwt")
    user = _User(uuid.uuid4())

    class Users(db.BaseUserDatabase):  # type: ignore[misc,name-defined]
        async def get(self, id: Any) -> Any:
            return user if id == user.id else None

    class Manager(fu.UUIDIDMixin, fu.BaseUserManager):  # type: ignore[misc,name-defined]
        reset_password_token_secret = SECRET
        verification_token_secret = SECRET

    async def manager() -> AsyncIterator[Any]:
        yield Manager(Users())

    def strategy() -> Any:
        return auth.JWTStrategy(secret=SECRET, lifetime_seconds=3600)

    backend = auth.AuthenticationBackend(
        name="jwt", transport=auth.BearerTransport(tokenUrl="/login"), get_strategy=strategy
    )
    users = fu.FastAPIUsers(manager, [backend])
    token = jwt.generate_jwt(
        {"sub": str(user.id), "aud": ["fastapi-users:auth"]}, SECRET, 3600, algorithm="HS256"
    )
    return users.current_user(active=True), users, token


async def fastapi_users_anchor(redis_url: str) -> Built:
    current_user, _, token = _fastapi_users()
    app = _app()

    @app.get("/", dependencies=[Depends(current_user)])
    async def index() -> dict[str, bool]:
        return {"ok": True}

    return Built(app, _bearer(token))


async def anchor_stack(redis_url: str) -> Built:
    """What users pick today: fastapi-users JWT + slowapi + secure headers."""
    current_user, _, token = _fastapi_users()
    middleware = importlib.import_module("secure.middleware")
    app = _app()
    limiter = _slowapi(app, headers_enabled=False)
    app.add_middleware(middleware.SecureASGIMiddleware)

    @app.get("/", dependencies=[Depends(current_user)])
    @limiter.limit(RATE)  # type: ignore[untyped-decorator]
    async def index(request: Request, response: Response) -> dict[str, bool]:
        return {"ok": True}

    return Built(app, _bearer(token))


BUILDERS: dict[str, Callable[[str], Awaitable[Built]]] = {
    "bare FastAPI": bare,
    "secure headers": headers,
    "floor: empty middleware": floor_middleware,
    "floor: yield dependency": floor_yield_dependency,
    "RateLimiter memory": limiter_memory,
    "RateLimiter memory, plain + middleware": limiter_memory_plain,
    "RateLimiter redis": limiter_redis,
    "RateLimiter redis, plain + middleware": limiter_redis_plain,
    "one limits hit (redis)": limits_hit_redis,
    "BearerAuth memory": bearer_memory,
    "BearerAuth redis": bearer_redis,
    "full stack memory": full_memory,
    "full stack redis": full_redis,
    "full stack memory, plain limit": full_memory_plain,
    "full stack redis, plain limit": full_redis_plain,
    "anchor: secure": secure_anchor,
    "anchor: slowapi": slowapi_memory,
    "anchor: slowapi + headers": slowapi_memory_headers,
    "anchor: fastapi-limiter": fastapi_limiter_memory,
    "anchor: AuthX": authx_anchor,
    "anchor: fastapi-users JWT": fastapi_users_anchor,
    "anchor: fastapi-users + slowapi + secure": anchor_stack,
}
"""Every app by name; the redis ones need a Redis at ``redis_url``."""

REDIS_APPS = frozenset(name for name in BUILDERS if "redis" in name)


def available(name: str) -> bool:
    """Whether the anchor's package is installed (ours always are)."""
    module = {
        "anchor: secure": "secure",
        "anchor: slowapi": "slowapi",
        "anchor: slowapi + headers": "slowapi",
        "anchor: fastapi-limiter": "fastapi_limiter",
        "anchor: AuthX": "authx",
        "anchor: fastapi-users JWT": "fastapi_users",
        "anchor: fastapi-users + slowapi + secure": "fastapi_users",
    }.get(name)
    if module is None:
        return True
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def serve(name: str, port: int, redis_url: str) -> None:
    """Run app ``name`` under uvicorn on 127.0.0.1:``port`` (one worker)."""
    import asyncio

    import uvicorn

    async def main() -> None:
        built = await BUILDERS[name](redis_url)
        headers = {key.decode(): value.decode() for key, value in built.headers}
        print(json.dumps(headers), flush=True)
        config = uvicorn.Config(
            built.app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            server_header=False,
            lifespan="off",
        )
        await uvicorn.Server(config).serve()
        for close in built.close:
            await close()

    asyncio.run(main())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="serve one benchmark app")
    parser.add_argument("name", choices=sorted(BUILDERS))
    parser.add_argument("port", type=int)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    arguments = parser.parse_args()
    serve(arguments.name, arguments.port, arguments.redis)
