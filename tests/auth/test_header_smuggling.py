"""A *valid* credential wrapped in header tricks: duplicates, case, whitespace,
padding, a second scheme in the same value, latin-1 bytes.

The parsers' refusals of garbage are tested with their modules; here the
attacker has a real token or key (their own, or a stolen one) and tries to make
two components read different credentials, or one read it where it should not.
Each trick is refused (401 ``invalid_token``) or treated as no credentials
(401 ``not_authenticated``); none gets a 200 or a 500.
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations.

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from fastapi_secure.apikeys import APIKeyManager
from fastapi_secure.apikeys.auth import APIKeyAuth
from fastapi_secure.apikeys.stores import MemoryAPIKeyStore
from fastapi_secure.auth import BearerAuth, CookieAuth, FirstOf
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from tests.support.auth import make_issuer

pytestmark = pytest.mark.anyio

ORIGIN = "https://testserver"
Headers = list[tuple[bytes, bytes]]


@dataclass
class World:
    http: httpx.AsyncClient
    token: str
    other: str
    key: str


@pytest.fixture
async def world(fake_clock: FakeClock) -> AsyncIterator[World]:
    issuer = make_issuer(fake_clock)
    manager = APIKeyManager(MemoryAPIKeyStore(), pepper="p" * 32, clock=fake_clock)
    bearer = BearerAuth(issuer)
    api_key = APIKeyAuth(manager)
    cookie = CookieAuth(issuer, csrf_secret="c" * 32, allowed_origins=[ORIGIN])
    app = FastAPI()
    for path, auth in (
        ("/bearer", bearer),
        ("/key", api_key),
        ("/cookie", cookie),
        ("/either", FirstOf(bearer, api_key)),
    ):

        def route(claims: Annotated[AccessClaims, Depends(auth)]) -> dict[str, str]:
            return {"sub": claims.sub}

        app.get(path)(route)
    token = (await issuer.issue("alice")).access_token
    other = (await issuer.issue("mallory")).access_token
    key = (await manager.create("carol", name="ci")).key
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        yield World(http, token, other, key)


async def answer(world: World, path: str, headers: Headers) -> tuple[int, str]:
    response = await world.http.get(path, headers=headers)
    assert response.status_code != 500
    code = response.json()["detail"]["code"] if response.status_code >= 400 else "ok"
    return response.status_code, code


def authorization(value: str) -> tuple[bytes, bytes]:
    return (b"authorization", value.encode("latin-1"))


INVALID = (401, "invalid_token")
ABSENT = (401, "not_authenticated")


async def test_the_honest_requests_pass(world: World) -> None:
    assert await answer(world, "/bearer", [authorization(f"Bearer {world.token}")]) == (200, "ok")
    assert await answer(world, "/key", [(b"x-api-key", world.key.encode())]) == (200, "ok")


@pytest.mark.parametrize(
    "second",
    ["Bearer {token}", "Bearer {other}", "Basic YWxpY2U6c2VjcmV0", "", "DPoP {token}"],
)
async def test_a_second_authorization_header_refuses_even_a_valid_token(
    world: World, second: str
) -> None:
    # Whichever copy a proxy, a logger or the app reads, they would disagree: refuse.
    headers = [
        authorization(f"Bearer {world.token}"),
        (b"Authorization", second.format(token=world.token, other=world.other).encode()),
    ]
    assert await answer(world, "/bearer", headers) == INVALID


@pytest.mark.parametrize(
    "template",
    [
        "Bearer {token}, Bearer {other}",
        "Bearer {token},Basic x",
        "Bearer {token} {other}",
        "Bearer {token}=",
        "Bearer {token}.",
        "Bearer {token}\x00",
        "Bearer {token}\xa0",
        "Bearer {token}\\",
        'Bearer "{token}"',
        "Bearer {token};",
        "Bearer token={token}",
    ],
)
async def test_a_valid_token_with_something_glued_on_is_an_invalid_token(
    world: World, template: str
) -> None:
    value = template.format(token=world.token, other=world.other)
    assert await answer(world, "/bearer", [authorization(value)]) == INVALID


@pytest.mark.parametrize(
    "template",
    ["Bearer\t{token}", "Bearer\xa0{token}", "Bearer,{token}", "Bearer:{token}", "Bearer{token}"],
)
async def test_a_valid_token_after_a_broken_scheme_is_no_credentials(
    world: World, template: str
) -> None:
    # Not a Bearer scheme (RFC 7235: one or more SP): answered like a missing header.
    value = template.format(token=world.token)
    assert await answer(world, "/bearer", [authorization(value)]) == ABSENT


@pytest.mark.parametrize("template", ["  Bearer {token}  ", "BEARER {token}", "Bearer   {token}"])
async def test_harmless_spellings_are_the_same_credentials(world: World, template: str) -> None:
    value = template.format(token=world.token)
    assert await answer(world, "/bearer", [authorization(value)]) == (200, "ok")


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-api-key", b"{key}"), (b"X-API-Key", b"{key}")],
        [(b"x-api-key", b"{key}"), (b"x-api-key", b"")],
        [(b"x-api-key", b"{key}, {key}")],
        [(b"x-api-key", b"{key}\x00")],
        [(b"x-api-key", b"{key}\xa0")],
        [(b"x-api-key", b"Bearer {key}")],
        [(b"x-api-key", b"{upper}")],
    ],
)
async def test_api_key_header_tricks_are_refused(world: World, headers: Headers) -> None:
    swapped = world.key[:4] + world.key[4:].swapcase()
    filled = [
        (name, value.replace(b"{key}", world.key.encode()).replace(b"{upper}", swapped.encode()))
        for name, value in headers
    ]
    assert await answer(world, "/key", filled) == INVALID


async def test_a_stolen_token_cannot_ride_along_a_good_key_through_first_of(
    world: World,
) -> None:
    # FirstOf(bearer, api_key): the bearer token is present, so it decides alone.
    headers = [authorization(f"Bearer {world.token}x"), (b"x-api-key", world.key.encode())]
    assert await answer(world, "/either", headers) == INVALID
    headers = [authorization(f"Bearer {world.token}"), (b"x-api-key", b"garbage")]
    assert await answer(world, "/either", headers) == (200, "ok")


@pytest.mark.parametrize(
    "cookie",
    [
        "__Host-access_token={token}; __Host-access_token={other}",
        "__Host-access_token={token}; __Host-access_token={token}",
        "__Host-access_token={other};__Host-access_token ={token}",
        '__Host-access_token="{token}"; __Host-access_token={other}',
    ],
)
async def test_two_access_cookies_are_refused_whichever_is_good(world: World, cookie: str) -> None:
    value = cookie.format(token=world.token, other=world.other)
    assert await answer(world, "/cookie", [(b"cookie", value.encode())]) == INVALID


async def test_an_access_cookie_split_over_two_cookie_headers_is_refused(world: World) -> None:
    # HTTP/2 may send one Cookie field per cookie; Starlette reads the first only,
    # so the count must look at all of them.
    headers = [
        (b"cookie", f"__Host-access_token={world.other}".encode()),
        (b"cookie", f"__Host-access_token={world.token}".encode()),
    ]
    assert await answer(world, "/cookie", headers) == INVALID


@pytest.mark.parametrize(
    "name", ["__HOST-access_token", "__host-access_token", "access_token", "__Secure-access_token"]
)
async def test_a_cookie_under_another_spelling_of_the_name_is_no_credentials(
    world: World, name: str
) -> None:
    # Cookies a sibling subdomain could plant (no __Host- rules apply to them) are
    # never read as the access cookie.
    assert await answer(world, "/cookie", [(b"cookie", f"{name}={world.token}".encode())]) == ABSENT
