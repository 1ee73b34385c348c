"""Cost of issuing and verifying tokens beside raw PyJWT, in the same run.

For HS256, ES256 and EdDSA, per operation:

- ``issue``: ``TokenIssuer.issue`` (two signatures and one store write);
- ``pyjwt.encode``: one raw ``jwt.encode`` of the same access payload (issue
  signs two tokens, so its ratio is given against two encodes);
- ``verify (no store)``: ``verify_access`` with ``check_revocation=False``;
- ``verify (memory)``: ``verify_access`` with the revocation check on a
  ``MemoryTokenStore``;
- ``pyjwt.decode``: raw ``jwt.decode`` of the same token with the same key
  object, checking ``iss``, ``aud``, ``exp``/``iat``/``nbf`` and required
  claims, which is the least a caller of PyJWT must do.

Then a route protected by ``BearerAuth`` beside a bare route, called
directly at the ASGI level. Measurements alternate between the variants in
rounds (drift on a shared machine hits all alike); the median round is
reported. Run::

    .venv/bin/python benchmarks/tokens.py [--number 2000] [--rounds 7] [--redis URL]

``--redis redis://127.0.0.1:6379/0`` adds ``verify (redis)``: the revocation
check as one Lua script on a real Redis (keys under ``fastapi-secure-benchmark:``,
deleted at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Message

from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import (
    AccessClaims,
    RefreshClaims,
)
from fastapi_secure.tokens.issuer import (
    Grant,
    TokenIssuer,
    keep_login_grant,
)
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

ISSUER = "https://auth.example.test"
AUDIENCE = "https://api.example.test"
SECRET = "benchmark-secret-" * 4


async def _grant(claims: RefreshClaims) -> Grant:
    return Grant(roles=("user",))


def make_keys(algorithm: str) -> tuple[KeySet, Any]:
    """The KeySet and the same verification key as PyJWT wants it (a key object)."""
    if algorithm == "HS256":
        return KeySet.from_secret(SECRET, kid="k1"), SECRET.encode()
    keys = KeySet.generate(algorithm, kid="k1")
    public = serialization.load_pem_public_key(keys.signing_key.public_pem())
    return keys, public


def make_issuer(keys: KeySet, clock: FakeClock, *, check_revocation: bool) -> TokenIssuer:
    return TokenIssuer(
        keys,
        MemoryTokenStore(clock=clock),
        issuer=ISSUER,
        audience=AUDIENCE,
        clock=clock,
        check_revocation=check_revocation,
        grant_loader=_grant,
    )


async def per_op_async(operation: Callable[[], Awaitable[Any]], number: int) -> float:
    started = time.perf_counter()
    for _ in range(number):
        await operation()
    return (time.perf_counter() - started) / number * 1e6


def per_op_sync(operation: Callable[[], Any], number: int) -> float:
    started = time.perf_counter()
    for _ in range(number):
        operation()
    return (time.perf_counter() - started) / number * 1e6


def make_app(issuer: TokenIssuer) -> tuple[ASGIApp, ASGIApp]:
    from fastapi_secure.auth import BearerAuth

    bearer = BearerAuth(issuer)
    bare = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    protected = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @bare.get("/me")
    async def bare_me() -> dict[str, str]:
        return {"sub": "alice"}

    @protected.get("/me")
    async def protected_me(claims: AccessClaims = Depends(bearer)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    return bare, protected


async def call(app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> int:
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/me",
        "raw_path": b"/me",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 443),
        "client": ("127.0.0.1", 12345),
    }
    await app(scope, receive, send)
    return status


async def bench_algorithm(
    algorithm: str, number: int, rounds: int, redis_url: str | None = None
) -> dict[str, float]:
    # PyJWT checks exp against the wall clock: start the fake clock there.
    clock = FakeClock(time.time())
    keys, pyjwt_key = make_keys(algorithm)
    unchecked = make_issuer(keys, clock, check_revocation=False)
    checked = make_issuer(keys, clock, check_revocation=True)
    pair = await checked.issue("alice", roles=["user"], scopes=["read"])
    token = pair.access_token
    payload = keys.verify(token).claims()

    def raw_decode() -> Any:
        return jwt.decode(
            token,
            pyjwt_key,
            algorithms=[algorithm],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=30,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )

    signing_key: Any = SECRET.encode()
    if algorithm != "HS256":
        pem = keys.signing_key.private_pem()
        signing_key = serialization.load_pem_private_key(pem, password=None)

    def raw_encode() -> str:
        return jwt.encode(payload, signing_key, algorithm=algorithm, headers={"kid": "k1"})

    assert raw_decode()["sub"] == "alice"
    assert (await checked.verify_access(token)).sub == "alice"

    redis_issuer: TokenIssuer | None = None
    redis_token = ""
    if redis_url is not None:
        from fastapi_secure.tokens.stores.redis import RedisTokenStore

        redis_store = RedisTokenStore.from_url(redis_url, prefix="fastapi-secure-benchmark:")
        redis_issuer = TokenIssuer(
            keys,
            redis_store,
            issuer=ISSUER,
            audience=AUDIENCE,
            clock=clock,
            grant_loader=keep_login_grant,
        )
        redis_token = (await redis_issuer.issue("alice")).access_token

    results: dict[str, list[float]] = {
        "issue": [],
        "pyjwt.encode": [],
        "verify (no store)": [],
        "verify (memory)": [],
        "pyjwt.decode": [],
    }
    for _ in range(rounds):
        results["issue"].append(
            await per_op_async(lambda: unchecked.issue("alice", roles=["user"]), number // 4)
        )
        results["pyjwt.encode"].append(per_op_sync(raw_encode, number // 2))
        results["pyjwt.decode"].append(per_op_sync(raw_decode, number))
        results["verify (no store)"].append(
            await per_op_async(lambda: unchecked.verify_access(token), number)
        )
        results["verify (memory)"].append(
            await per_op_async(lambda: checked.verify_access(token), number)
        )
        if redis_issuer is not None:
            results.setdefault("verify (redis)", []).append(
                await per_op_async(
                    functools.partial(redis_issuer.verify_access, redis_token), number // 4
                )
            )
    if redis_issuer is not None:
        client = redis_store.client
        stale = [key async for key in client.scan_iter(match="fastapi-secure-benchmark:*")]
        if stale:
            await client.delete(*stale)
        await redis_store.aclose()
    return {name: statistics.median(values) for name, values in results.items()}


async def bench_route(algorithm: str, number: int, rounds: int) -> dict[str, float] | None:
    try:
        import fastapi_secure.auth  # noqa: F401
    except ImportError:
        return None
    clock = FakeClock(time.time())
    keys, _ = make_keys(algorithm)
    issuer = make_issuer(keys, clock, check_revocation=True)
    bare, protected = make_app(issuer)
    pair = await issuer.issue("alice")
    headers = [(b"authorization", f"Bearer {pair.access_token}".encode())]
    assert await call(protected, headers) == 200
    assert await call(bare, headers) == 200
    timings: dict[str, list[float]] = {"bare route": [], "BearerAuth route": []}
    for _ in range(rounds):
        timings["bare route"].append(await per_op_async(lambda: call(bare, headers), number))
        timings["BearerAuth route"].append(
            await per_op_async(lambda: call(protected, headers), number)
        )
    return {name: statistics.median(values) for name, values in timings.items()}


async def main(number: int, rounds: int, redis_url: str | None) -> None:
    print(f"median of {rounds} rounds; microseconds per operation\n")
    header = f"{'alg':6} {'operation':18} {'us/op':>9} {'ratio':>22}"
    print(header)
    print("-" * len(header))
    for algorithm in ("HS256", "ES256", "EdDSA"):
        result = await bench_algorithm(algorithm, number, rounds, redis_url)
        decode, encode = result["pyjwt.decode"], result["pyjwt.encode"]
        for name, micros in result.items():
            if name.startswith("verify"):
                ratio = f"{micros / decode:.2f}x pyjwt.decode"
            elif name == "issue":
                ratio = f"{micros / (2 * encode):.2f}x 2 pyjwt.encode"
            else:
                ratio = ""
            print(f"{algorithm:6} {name:18} {micros:9.1f} {ratio:>22}")
        print()
    for algorithm in ("HS256", "EdDSA"):
        route = await bench_route(algorithm, number, rounds)
        if route is None:
            print("BearerAuth route: fastapi_secure.auth not available")
            return
        bare = route["bare route"]
        for name, micros in route.items():
            print(f"{algorithm:6} {name:18} {micros:9.1f} {micros / bare:>12.2f}x bare route")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--redis", metavar="URL", help="also verify against a RedisTokenStore at this URL"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.number, arguments.rounds, arguments.redis))
