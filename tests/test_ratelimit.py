"""RateLimiter on the memory storage: keys, answers, headers, spoofing, window edges."""

from __future__ import annotations

# --- PasswordPolicy: NFKC of attacker-sized input on the event loop ---------------------
import re
import subprocess
import sys
import time
import traceback
import types
from typing import Annotated, Any

import anyio
import httpx
import limits.aio.storage.memory
import limits.aio.strategies
import limits.storage
import pytest
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastapi_secure.ratelimit
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.errors import (
    ConfigurationError,
)
from fastapi_secure.ratelimit import (
    RateLimiter,
    RateLimitHeadersMiddleware,
    RateLimitKey,
    Strategy,
    by_form_field,
    by_subject,
)
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from tests.support.ratelimit import MID_WINDOW, freeze_memory_windows

STRATEGIES: list[Strategy] = ["sliding-window-counter", "fixed-window", "moving-window"]
POLICY = re.compile(r'^"[A-Za-z0-9._-]+";q=\d+;w=\d+(, "[A-Za-z0-9._-]+";q=\d+;w=\d+)*$')
STATE = re.compile(r'^"[A-Za-z0-9._-]+";r=\d+;t=\d+(, "[A-Za-z0-9._-]+";r=\d+;t=\d+)*$')


def client(app: FastAPI, ip: str = "203.0.113.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 4711))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def limited_app(limiter: RateLimiter, rates: str = "3/minute", **kwargs: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/limited", dependencies=[Depends(limiter.limit(rates, **kwargs))])
    async def limited() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/free")
    async def free() -> dict[str, bool]:
        return {"ok": True}

    return app


async def statuses(app: FastAPI, count: int, path: str = "/limited", **headers: str) -> list[int]:
    async with client(app) as http:
        return [(await http.get(path, headers=headers)).status_code for _ in range(count)]


@pytest.fixture
def limits_clock(fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Drive limits' memory storage with the fake clock.

    limits takes no clock: its memory storage and its strategies call
    ``time.time()`` through their own ``time`` module reference. Replacing that
    reference (in those two modules only, plus ours, which turns limits' reset
    timestamps into seconds) moves every window with the fake clock and
    nothing else in the process.
    """
    fake_time = types.SimpleNamespace(time=fake_clock)
    for module in (limits.aio.storage.memory, limits.aio.strategies, fastapi_secure.ratelimit):
        monkeypatch.setattr(module, "time", fake_time)
    return fake_clock


@pytest.fixture(autouse=True)
def _windows_frozen_mid_way(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact counts: the memory windows frozen mid-way, unless a test drives the
    clock itself (``limits_clock``). See ``freeze_memory_windows``."""
    if "limits_clock" not in request.fixturenames:
        freeze_memory_windows(monkeypatch)


# --- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strategy": "token-bucket"},
        {"on_storage_error": "ignore"},
        {"storage_timeout": 0},
        {"storage_timeout": float("nan")},
        {"storage_backoff": -1},
        {"ipv6_prefix": 0},
        {"ipv6_prefix": 129},
        {"key_prefix": ""},
        {"key_prefix": "has space"},
        {"trusted_proxies": ["0.0.0.0/0"]},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(**kwargs)


@pytest.mark.parametrize("rates", ["", "   ", "five per minute", "5/fortnight", "0/minute", "5"])
def test_bad_rate_strings_are_refused_at_construction(rates: str) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter().limit(rates)


@pytest.mark.parametrize("bad", [{"name": 'quo"te'}, {"name": ""}, {"cost": -1}, {"key": 42}])
def test_bad_limit_arguments_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter().limit("5/minute", **bad)


def test_a_synchronous_storage_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="synchronous"):
        RateLimiter(limits.storage.MemoryStorage())  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_an_async_storage_instance_is_accepted() -> None:
    storage = limits.aio.storage.MemoryStorage()
    app = limited_app(RateLimiter(storage), "1/minute")
    assert await statuses(app, 2) == [200, 429]
    assert await storage.reset() == 1


def test_unknown_storage_scheme_is_refused_without_echoing_the_uri() -> None:
    with pytest.raises(ConfigurationError) as raised:
        RateLimiter("nosuch://user:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in str(raised.value)


def test_sync_uri_schemes_are_opened_async() -> None:
    limiter = RateLimiter("memory://")
    assert isinstance(limiter.storage, limits.aio.storage.MemoryStorage)


def test_importing_the_package_does_not_import_redis() -> None:
    code = (
        "import sys, fastapi_secure, fastapi_secure.ratelimit\n"
        "fastapi_secure.ratelimit.RateLimiter('memory://')\n"
        "assert not [m for m in sys.modules if m == 'redis' or m.startswith('redis.')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- answers and headers -------------------------------------------------------------------


@pytest.mark.anyio
async def test_limit_admits_the_quota_then_answers_429_with_retry_after() -> None:
    app = limited_app(RateLimiter(), "3/minute")
    async with client(app) as http:
        allowed = [await http.get("/limited") for _ in range(3)]
        refused = await http.get("/limited")
        free = await http.get("/free")
    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json() == {"detail": {"code": "rate_limited", "message": "too many requests"}}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert free.status_code == 200
    assert "RateLimit" not in free.headers


@pytest.mark.anyio
async def test_ietf_headers_on_allowed_and_refused_answers() -> None:
    app = limited_app(RateLimiter(), "2/minute", name="search")
    async with client(app) as http:
        first = await http.get("/limited")
        await http.get("/limited")
        refused = await http.get("/limited")
    assert first.headers["RateLimit-Policy"] == '"search";q=2;w=60'
    assert re.fullmatch(r'"search";r=1;t=\d+', first.headers["RateLimit"])
    assert refused.headers["RateLimit-Policy"] == '"search";q=2;w=60'
    assert re.fullmatch(r'"search";r=0;t=\d+', refused.headers["RateLimit"])
    assert "X-RateLimit-Limit" not in first.headers


@pytest.mark.anyio
async def test_several_limits_use_the_list_form() -> None:
    app = limited_app(RateLimiter(), "2/minute;5/hour")
    async with client(app) as http:
        response = await http.get("/limited")
    assert response.headers["RateLimit-Policy"] == '"2-per-60s";q=2;w=60, "5-per-3600s";q=5;w=3600'
    assert STATE.fullmatch(response.headers["RateLimit"])
    assert ";r=1;" in response.headers["RateLimit"]
    assert ";r=4;" in response.headers["RateLimit"]


@pytest.mark.anyio
async def test_the_tighter_limit_refuses_and_the_looser_one_still_counts() -> None:
    app = limited_app(RateLimiter(), "5/hour;2/minute")
    assert await statuses(app, 3) == [200, 200, 429]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("strategy", "third"),
    [("sliding-window-counter", 200), ("moving-window", 429), ("fixed-window", 429)],
)
async def test_the_sliding_window_counter_admits_one_more_across_a_boundary(
    limits_clock: FakeClock, strategy: Strategy, third: int
) -> None:
    """Why the test above was flaky on the real clock: limits' own arithmetic.

    Two hits just before a minute boundary, the third 4 ms after it. The sliding
    window counter weighs the previous window's 2 hits by 59.996/60 and floors the
    sum (1), so 1 + 1 <= 2 admits it. The moving window (exact) refuses, and so
    does limits' fixed window, which runs from its first hit, not from the
    clock's minute. Neither the memory storage's pacing nor the client-IP key
    cache plays a part: one key, and nothing expired.
    """
    limits_clock.set(MID_WINDOW - 30.5 + 60 - 0.002)  # 2 ms before a minute boundary
    app = limited_app(RateLimiter(strategy=strategy), "5/hour;2/minute")
    async with client(app) as http:
        first = [(await http.get("/limited")).status_code for _ in range(2)]
        limits_clock.advance(0.004)
        after = (await http.get("/limited")).status_code
    assert first == [200, 200]
    assert after == third


@pytest.mark.anyio
async def test_headers_survive_a_later_401_and_an_endpoint_404() -> None:
    limiter = RateLimiter()

    def require_token(request: Request) -> None:
        if "authorization" not in request.headers:
            raise HTTPException(401, "no token", headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI()

    @app.get(
        "/private",
        dependencies=[Depends(limiter.limit("5/minute", name="p")), Depends(require_token)],
    )
    async def private() -> None:
        raise HTTPException(404)

    async with client(app) as http:
        unauthenticated = await http.get("/private")
        missing = await http.get("/private", headers={"Authorization": "Bearer x"})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"] == "Bearer"
    assert unauthenticated.headers["RateLimit-Policy"] == '"p";q=5;w=60'
    assert missing.status_code == 404
    assert re.fullmatch(r'"p";r=3;t=\d+', missing.headers["RateLimit"])


@pytest.mark.anyio
async def test_a_shared_exception_instance_is_not_mutated() -> None:
    limiter = RateLimiter()
    shared = HTTPException(404)
    app = FastAPI()

    @app.get("/x", dependencies=[Depends(limiter.limit("5/minute"))])
    async def endpoint() -> None:
        raise shared

    async with client(app) as http:
        response = await http.get("/x")
    assert "RateLimit" in response.headers
    assert shared.headers is None


@pytest.mark.anyio
async def test_headers_can_be_switched_off_and_legacy_ones_on() -> None:
    quiet = limited_app(RateLimiter(headers=False), "1/minute")
    legacy = limited_app(RateLimiter(legacy_headers=True), "2/minute")
    async with client(quiet) as http:
        allowed = await http.get("/limited")
        refused = await http.get("/limited")
    assert not [h for h in allowed.headers if "ratelimit" in h.lower()]
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers
    assert not [h for h in refused.headers if "ratelimit" in h.lower()]
    async with client(legacy) as http:
        response = await http.get("/limited")
    assert response.headers["X-RateLimit-Limit"] == "2"
    assert response.headers["X-RateLimit-Remaining"] == "1"
    assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert "RateLimit" in response.headers


@pytest.mark.anyio
async def test_middleware_adds_headers_where_the_dependency_cannot() -> None:
    limiter = RateLimiter()

    def build(with_middleware: bool) -> FastAPI:
        app = FastAPI()
        if with_middleware:
            app.add_middleware(RateLimitHeadersMiddleware)

        @app.get("/raw", dependencies=[Depends(limiter.limit("5/minute", name="raw"))])
        async def raw() -> JSONResponse:
            return JSONResponse({"ok": True})

        @app.get("/validated", dependencies=[Depends(limiter.limit("5/minute", name="v"))])
        async def validated(n: int) -> int:
            return n

        return app

    async with client(build(False)) as http:
        assert "RateLimit" not in (await http.get("/raw")).headers
    async with client(build(True)) as http:
        raw = await http.get("/raw")
        invalid = await http.get("/validated", params={"n": "x"})
        valid = await http.get("/validated", params={"n": "1"})
    assert raw.headers["RateLimit-Policy"] == '"raw";q=5;w=60'
    assert invalid.status_code == 422
    assert invalid.headers["RateLimit-Policy"] == '"v";q=5;w=60'
    # Never doubled where the dependency already set them.
    assert valid.headers.get_list("RateLimit") == [valid.headers["RateLimit"]]
    assert "," not in valid.headers["RateLimit"]


# --- where the dependency goes -------------------------------------------------------------


@pytest.mark.anyio
async def test_router_and_app_wide_dependencies() -> None:
    limiter = RateLimiter()
    router = APIRouter(dependencies=[Depends(limiter.limit("2/minute", name="router"))])

    @router.get("/a")
    async def a() -> int:
        return 1

    @router.get("/b")
    async def b() -> int:
        return 2

    app = FastAPI(dependencies=[Depends(limiter.limit("10/minute"))])
    app.include_router(router)
    async with client(app) as http:
        codes = [(await http.get(path)).status_code for path in ("/a", "/b", "/a")]
        response = await http.get("/b")
    # "router" is named: /a and /b share its counter.
    assert codes == [200, 200, 429]
    assert response.status_code == 429
    policy = response.headers["RateLimit-Policy"]
    assert '"router";q=2;w=60' in policy
    assert '"10-per-60s";q=10;w=60' in policy


@pytest.mark.anyio
async def test_unnamed_limits_count_per_route() -> None:
    limiter = RateLimiter()
    app = FastAPI(dependencies=[Depends(limiter.limit("1/minute"))])

    @app.get("/a")
    async def a() -> int:
        return 1

    @app.get("/b")
    async def b() -> int:
        return 2

    async with client(app) as http:
        codes = [(await http.get(path)).status_code for path in ("/a", "/b", "/a", "/b")]
    assert codes == [200, 200, 429, 429]


@pytest.mark.anyio
async def test_path_parameters_do_not_split_the_route_counter() -> None:
    """Varying /items/{id} must not buy a fresh quota per id."""
    limiter = RateLimiter()
    app = FastAPI()
    sub = FastAPI()

    @app.get("/items/{item_id}", dependencies=[Depends(limiter.limit("2/minute"))])
    async def item(item_id: int) -> int:
        return item_id

    @sub.get("/items/{item_id}", dependencies=[Depends(limiter.limit("2/minute"))])
    async def sub_item(item_id: int) -> int:
        return item_id

    app.mount("/v2", sub)
    async with client(app) as http:
        codes = [(await http.get(f"/items/{i}")).status_code for i in range(3)]
        mounted = [(await http.get(f"/v2/items/{i}")).status_code for i in range(3)]
    assert codes == [200, 200, 429]
    assert mounted == [200, 200, 429]


@pytest.mark.anyio
async def test_cost_as_int_and_as_callable() -> None:
    limiter = RateLimiter()
    app = FastAPI()

    def batch_size(request: Request) -> int:
        return int(request.query_params.get("n", "1"))

    async def async_cost(request: Request) -> int:
        return 0

    @app.get("/heavy", dependencies=[Depends(limiter.limit("10/minute", cost=4))])
    async def heavy() -> int:
        return 1

    @app.get("/batch", dependencies=[Depends(limiter.limit("10/minute", cost=batch_size))])
    async def batch() -> int:
        return 1

    @app.get("/free", dependencies=[Depends(limiter.limit("1/minute", cost=async_cost))])
    async def free() -> int:
        return 1

    async with client(app) as http:
        heavy_codes = [(await http.get("/heavy")).status_code for _ in range(3)]
        batch_codes = [
            (await http.get("/batch", params={"n": n})).status_code for n in (11, 9, 2, 1)
        ]
        free_codes = [(await http.get("/free")).status_code for _ in range(3)]
    assert heavy_codes == [200, 200, 429]
    assert batch_codes == [429, 200, 429, 200]
    assert free_codes == [200, 200, 200]


# --- keys ---------------------------------------------------------------------------------


def claims_for(subject: str) -> AccessClaims:
    return AccessClaims(
        iss="https://issuer.test",
        sub=subject,
        aud="api",
        exp=2_000_000_000,
        iat=1_800_000_000,
        jti=f"jti-{subject}",
        sid=f"sid-{subject}",
        auth_time=1_800_000_000,
    )


async def fake_auth(request: Request) -> AccessClaims:
    subject = request.headers.get("x-user")
    if subject is None:
        raise HTTPException(401, "not authenticated")
    return claims_for(subject)


@pytest.mark.anyio
async def test_by_subject_counts_per_user_not_per_ip() -> None:
    limiter = RateLimiter()
    app = FastAPI()

    @app.get("/me", dependencies=[Depends(limiter.limit("2/minute", key=by_subject(fake_auth)))])
    async def me(claims: Annotated[AccessClaims, Depends(fake_auth)]) -> str:
        return claims.sub

    async with client(app, "203.0.113.1") as first, client(app, "203.0.113.2") as second:
        alice = [
            (await first.get("/me", headers={"x-user": "alice"})).status_code,
            (await second.get("/me", headers={"x-user": "alice"})).status_code,
            (await first.get("/me", headers={"x-user": "alice"})).status_code,
        ]
        bob = (await first.get("/me", headers={"x-user": "bob"})).status_code
        anonymous = await first.get("/me")
    assert alice == [200, 200, 429]
    assert bob == 200
    assert anonymous.status_code == 401


@pytest.mark.anyio
async def test_by_subject_exempts_when_auth_returns_none() -> None:
    limiter = RateLimiter()

    async def optional_auth(request: Request) -> AccessClaims | None:
        return None

    app = limited_app(limiter, "1/minute", key=by_subject(optional_auth))
    assert await statuses(app, 3) == [200, 200, 200]


@pytest.mark.anyio
async def test_by_form_field_counts_per_username_and_the_endpoint_still_reads_the_form() -> None:
    limiter = RateLimiter(strategy="moving-window")
    per_user = limiter.limit("3/minute", key=by_form_field("username"), name="login-user")
    app = FastAPI()

    @app.post("/token", dependencies=[Depends(per_user)])
    async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        return {"user": form.username, "password_length": str(len(form.password))}

    @app.post("/raw", dependencies=[Depends(per_user)])
    async def raw(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    ips = [f"203.0.113.{i}" for i in range(1, 6)]
    results = []
    for ip, user in zip(ips, ["alice", "ALICE", " Alice ", "alice", "bob"], strict=True):
        async with client(app, ip) as http:
            results.append(await http.post("/token", data={"username": user, "password": "pw"}))
    assert [r.status_code for r in results] == [200, 200, 200, 429, 200]
    assert results[0].json() == {"user": "alice", "password_length": "2"}
    assert results[1].json()["user"] == "ALICE"
    async with client(app, "203.0.113.9") as http:
        raw_body = await http.post("/raw", data={"username": "carol", "password": "pw"})
        no_form = await http.post("/raw", json={"username": "carol"})
    assert raw_body.json() == {"bytes": len(b"username=carol&password=pw")}
    assert no_form.status_code == 200


@pytest.mark.anyio
async def test_by_form_field_cuts_long_values() -> None:
    limiter = RateLimiter()
    app = FastAPI()

    @app.post(
        "/token",
        dependencies=[Depends(limiter.limit("1/minute", key=by_form_field("u", max_length=8)))],
    )
    async def token(u: Annotated[str, Form()]) -> int:
        return len(u)

    async with client(app) as http:
        first = await http.post("/token", data={"u": "a" * 8 + "x" * 10_000})
        second = await http.post("/token", data={"u": "a" * 8 + "y"})
    assert first.status_code == 200
    assert first.json() == 10_008
    assert second.status_code == 429


@pytest.mark.anyio
async def test_callable_keys_sync_async_and_none_exempts() -> None:
    limiter = RateLimiter()

    def by_tenant(request: Request) -> str | None:
        return request.headers.get("x-tenant")

    async def by_tenant_async(request: Request) -> str | None:
        return request.headers.get("x-tenant")

    sync_app = limited_app(limiter, "1/minute", key=by_tenant)
    async_app = limited_app(limiter, "1/minute", key=by_tenant_async)
    for app in (sync_app, async_app):
        assert await statuses(app, 2, **{"x-tenant": "t1"}) == [200, 429]
        assert await statuses(app, 1, **{"x-tenant": "t2"}) == [200]
        assert await statuses(app, 3) == [200, 200, 200]


@pytest.mark.anyio
async def test_key_functions_are_namespaced() -> None:
    """The same key value from two key functions never shares a counter."""
    limiter = RateLimiter()

    async def constant(request: Request) -> str:
        return "same"

    key_a = RateLimitKey("a", constant)
    key_b = RateLimitKey("b", constant)
    app = FastAPI()

    @app.get(
        "/x",
        dependencies=[
            Depends(limiter.limit("1/minute", key=key_a, name="shared")),
            Depends(limiter.limit("2/minute", key=key_b, name="shared2")),
        ],
    )
    async def x() -> int:
        return 1

    assert await statuses(app, 2, path="/x") == [200, 429]


# --- client IP and spoofing --------------------------------------------------------------


@pytest.mark.anyio
async def test_forged_x_forwarded_for_does_not_buy_new_quotas() -> None:
    app = limited_app(RateLimiter(), "5/minute")
    async with client(app) as http:
        codes = [
            (await http.get("/limited", headers={"X-Forwarded-For": f"192.0.2.{i}"})).status_code
            for i in range(6)
        ]
        forwarded = await http.get("/limited", headers={"Forwarded": "for=192.0.2.200"})
    assert codes == [200] * 5 + [429]
    assert forwarded.status_code == 429


@pytest.mark.anyio
async def test_clients_behind_a_trusted_proxy_get_their_own_quotas() -> None:
    limiter = RateLimiter(trusted_proxies=["10.0.0.0/8"])
    app = limited_app(limiter, "2/minute")
    async with client(app, "10.0.0.5") as proxy:
        alice = [
            (await proxy.get("/limited", headers={"X-Forwarded-For": "203.0.113.1"})).status_code
            for _ in range(3)
        ]
        # Bob is behind the same proxy and a second internal hop; Alice is exhausted.
        bob = await proxy.get("/limited", headers={"X-Forwarded-For": "198.51.100.2, 10.1.1.1"})
        # Alice forging a different leftmost address is still Alice.
        forged = await proxy.get("/limited", headers={"X-Forwarded-For": "192.0.2.99, 203.0.113.1"})
    assert alice == [200, 200, 429]
    assert bob.status_code == 200
    assert forged.status_code == 429


@pytest.mark.anyio
async def test_trusted_proxies_instance_with_forwarded_header() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], header="forwarded")
    app = limited_app(RateLimiter(trusted_proxies=proxies), "1/minute")
    async with client(app, "10.0.0.5") as proxy:
        first = await proxy.get("/limited", headers={"Forwarded": "for=203.0.113.1"})
        second = await proxy.get("/limited", headers={"Forwarded": "for=203.0.113.2"})
        again = await proxy.get("/limited", headers={"Forwarded": "for=203.0.113.1"})
    assert [first.status_code, second.status_code, again.status_code] == [200, 200, 429]


@pytest.mark.anyio
async def test_ipv6_clients_are_grouped_by_64_by_default() -> None:
    app = limited_app(RateLimiter(), "1/minute")
    precise = limited_app(RateLimiter(ipv6_prefix=128), "1/minute")
    for target, expected in ((app, 429), (precise, 200)):
        async with client(target, "2001:db8:1:2::1") as one:
            assert (await one.get("/limited")).status_code == 200
        async with client(target, "2001:db8:1:2:ffff::9") as same_64:
            assert (await same_64.get("/limited")).status_code == expected
        async with client(target, "2001:db8:1:3::1") as other_64:
            assert (await other_64.get("/limited")).status_code == 200


def test_requests_without_a_peer_address_share_one_counter() -> None:
    # TestClient's peer is the host name "testclient", not an address.
    with TestClient(limited_app(RateLimiter(), "2/minute")) as http:
        assert [http.get("/limited").status_code for _ in range(3)] == [200, 200, 429]


# --- exactness under concurrency -------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_fifty_concurrent_hits_admit_exactly_ten(strategy: Strategy) -> None:
    app = limited_app(RateLimiter(strategy=strategy), "10/day")
    codes: list[int] = []
    async with client(app) as http:

        async def hit() -> None:
            codes.append((await http.get("/limited")).status_code)

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(hit)
    assert codes.count(200) == 10
    assert codes.count(429) == 40


# --- window edges with the fake clock ---------------------------------------------------


async def hit_at(http: httpx.AsyncClient, clock: FakeClock, when: float) -> httpx.Response:
    clock.set(when)
    return await http.get("/limited")


@pytest.mark.anyio
async def test_fixed_window_edges(limits_clock: FakeClock) -> None:
    start = limits_clock()
    app = limited_app(RateLimiter(strategy="fixed-window"), "2/minute")
    async with client(app) as http:
        assert (await hit_at(http, limits_clock, start)).status_code == 200
        assert (await hit_at(http, limits_clock, start + 30)).status_code == 200
        refused = await hit_at(http, limits_clock, start + 59.5)
        assert refused.status_code == 429
        # The window opened at the first hit and lasts 60 s: half a second left.
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["RateLimit"].endswith(";r=0;t=1")
        assert (await hit_at(http, limits_clock, start + 60.01)).status_code == 200


@pytest.mark.anyio
async def test_moving_window_edges(limits_clock: FakeClock) -> None:
    start = limits_clock()
    app = limited_app(RateLimiter(strategy="moving-window"), "2/minute")
    async with client(app) as http:
        assert (await hit_at(http, limits_clock, start)).status_code == 200
        assert (await hit_at(http, limits_clock, start + 40)).status_code == 200
        refused = await hit_at(http, limits_clock, start + 59)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        # The first hit left the window; the one at +40 has not.
        assert (await hit_at(http, limits_clock, start + 60.5)).status_code == 200
        assert (await hit_at(http, limits_clock, start + 61)).status_code == 429
        assert (await hit_at(http, limits_clock, start + 100.5)).status_code == 200


@pytest.mark.anyio
async def test_sliding_window_counter_weights_the_previous_window(limits_clock: FakeClock) -> None:
    window_start = (limits_clock() // 60 + 1) * 60  # aligned, as limits aligns the windows
    app = limited_app(RateLimiter(), "4/minute")
    async with client(app) as http:
        for offset in (0, 1, 2, 3):
            assert (await hit_at(http, limits_clock, window_start + offset)).status_code == 200
        assert (await hit_at(http, limits_clock, window_start + 50)).status_code == 429
        # limits admits while floor(previous * time_left / 60 + current) + 1 <= 4.
        # 15 s into the next window the previous 4 hits weigh 4 * 45/60 = 3.
        assert (await hit_at(http, limits_clock, window_start + 75)).status_code == 200
        assert (await hit_at(http, limits_clock, window_start + 76)).status_code == 200  # 2.93 + 1
        assert (await hit_at(http, limits_clock, window_start + 77)).status_code == 429  # 2.87 + 2
        # 45 s in, the old hits weigh only 4 * 15/60 = 1: two more fit.
        assert (await hit_at(http, limits_clock, window_start + 105)).status_code == 200
        assert (await hit_at(http, limits_clock, window_start + 106)).status_code == 200
        assert (await hit_at(http, limits_clock, window_start + 107)).status_code == 429


# --- untrusted input never gives a 500 -----------------------------------------------------

latin1 = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=200)


@settings(max_examples=100, deadline=None)
@given(rates=st.text(max_size=40) | st.from_regex(r"\d{1,4} ?(/|per) ?\d{0,3} ?[a-z]{3,7}s?"))
def test_any_rate_string_is_refused_at_construction_or_serves_200_or_429(rates: str) -> None:
    limiter = RateLimiter()
    try:
        dependency = limiter.limit(rates)
    except ConfigurationError:
        return
    app = FastAPI()

    @app.get("/", dependencies=[Depends(dependency)])
    async def index() -> int:
        return 1

    async def run() -> list[int]:
        async with client(app) as http:
            return [(await http.get("/")).status_code for _ in range(2)]

    codes = anyio.run(run)
    assert codes[0] == 200
    assert codes[1] in (200, 429)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    xff=latin1,
    forwarded=latin1,
    content_type=latin1 | st.sampled_from(["multipart/form-data; boundary=x"]),
    body=st.binary(max_size=300),
)
def test_any_header_values_never_give_a_500(
    xff: str, forwarded: str, content_type: str, body: bytes
) -> None:
    limiter = RateLimiter(trusted_proxies=["127.0.0.0/8", "::1"], legacy_headers=True)
    app = FastAPI()

    @app.post(
        "/login",
        dependencies=[
            Depends(limiter.limit("100/minute")),
            Depends(limiter.limit("100/minute", key=by_form_field("username"), name="u")),
        ],
    )
    async def login(request: Request) -> int:
        return len(await request.body())

    async def run() -> httpx.Response:
        async with client(app, "127.0.0.1") as http:
            return await http.post(
                "/login",
                content=body,
                headers=[
                    (b"X-Forwarded-For", xff.encode("latin-1")),
                    (b"Forwarded", forwarded.encode("latin-1")),
                    (b"Content-Type", content_type.encode("latin-1")),
                ],
            )

    response = anyio.run(run)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert POLICY.fullmatch(response.headers["RateLimit-Policy"])
        assert STATE.fullmatch(response.headers["RateLimit"])


@pytest.mark.parametrize(
    ("uri", "storage_class"),
    [
        ("redis://127.0.0.1:6379/0", "RedisStorage"),
        ("rediss://127.0.0.1:6380/0", "RedisStorage"),
        ("async+redis://127.0.0.1:6379", "RedisStorage"),
        ("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", "RedisClusterStorage"),
        ("redis+sentinel://127.0.0.1:26379/mymaster", "RedisSentinelStorage"),
    ],
)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_redis_uris_open_async_storages_lazily(
    uri: str, storage_class: str, strategy: Strategy
) -> None:
    """Construction connects to nothing: no server listens on these ports."""
    limiter = RateLimiter(uri, strategy=strategy)
    assert type(limiter.storage).__name__ == storage_class
    assert isinstance(limiter.storage, limits.aio.storage.Storage)


def test_redis_timeouts_are_set_by_default_and_overridable() -> None:
    import redis.exceptions

    limiter = RateLimiter("redis://127.0.0.1:6379/0", storage_timeout=0.25)
    client = limiter.storage.bridge.storage  # type: ignore[attr-defined]
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.25
    assert kwargs["socket_connect_timeout"] == 0.25
    # One immediate retry, on a broken connection only (a stale pooled one after a
    # restart); a timeout is not retried, which would multiply the wait.
    retry = client.get_retry()
    assert retry.get_retries() == 1
    assert retry._supported_errors == (redis.exceptions.ConnectionError,)
    custom = RateLimiter("redis://127.0.0.1:6379/0", storage_options={"socket_timeout": 3})
    custom_kwargs = custom.storage.bridge.storage.connection_pool.connection_kwargs  # type: ignore[attr-defined]
    assert custom_kwargs["socket_timeout"] == 3


def test_sentinel_without_service_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter("redis+sentinel://127.0.0.1:26379")


def test_limits_add_no_parameters_to_the_openapi_schema() -> None:
    limiter = RateLimiter()
    app = FastAPI()

    @app.post(
        "/token",
        dependencies=[
            Depends(limiter.limit("5/minute")),
            Depends(limiter.limit("5/minute", key=by_form_field("username"), name="u")),
            Depends(limiter.limit("5/minute", key=lambda request: "k", name="c")),
        ],
    )
    async def token() -> int:
        return 1

    operation = app.openapi()["paths"]["/token"]["post"]
    assert "parameters" not in operation
    assert "requestBody" not in operation


# --- RateLimiter: a mistyped storage URI -------------------------------------------------


def test_mistyped_storage_uri_keeps_its_password_out_of_the_traceback() -> None:
    secret = "Rl-s3cr3t-not-a-real-password"
    with pytest.raises(ConfigurationError) as raised:
        RateLimiter(f"redis+clustr://:{secret}@127.0.0.1:6379")
    printed = "".join(traceback.format_exception(raised.value))
    assert "redis+clustr" in printed
    assert secret not in printed


def test_parse_limit_checks_the_rates_and_the_name() -> None:
    from fastapi_secure.ratelimit import parse_limit

    assert [str(item) for item in parse_limit("5/minute;100/hour", "login")] == [
        "5 per 1 minute",
        "100 per 1 hour",
    ]
    with pytest.raises(ConfigurationError):
        parse_limit("5/fortnight")
    with pytest.raises(ConfigurationError, match="name"):
        parse_limit("5/minute", "no spaces allowed")
