"""RemoteKeySet against a crafted provider: a real HTTP server on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastapi_secure.errors import ConfigurationError, InvalidTokenError
from fastapi_secure.http_errors import status_of
from fastapi_secure.oidc.errors import ProviderUnavailableError
from fastapi_secure.oidc.remote import (
    FetchError,
    RemoteKeySet,
    _ttl_from,
    check_provider_url,
    fetch_json,
)
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.keys import Key, KeySet
from tests.support.oidc_servers import CraftedProvider, Route, crafted_provider, drip, flood, hang

pytestmark = pytest.mark.anyio


@pytest.fixture
def provider() -> Iterator[CraftedProvider]:
    with crafted_provider() as crafted:
        crafted.serve_discovery()
        crafted.serve_jwks()
        yield crafted


def remote(provider: CraftedProvider, clock: FakeClock, **options: Any) -> RemoteKeySet:
    options.setdefault("allow_insecure_loopback", True)
    return RemoteKeySet(provider.issuer, clock=clock, **options)


def token(provider: CraftedProvider, keys: KeySet | None = None, **claims: Any) -> str:
    return provider.sign({"iss": provider.issuer, "sub": "alice", **claims}, keys=keys)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_discovers_fetches_and_verifies_then_serves_from_cache(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    async with remote(provider, fake_clock) as keys:
        verified = await keys.verify(token(provider))
        await keys.verify(token(provider))
        metadata = await keys.metadata()
    assert json.loads(verified.payload)["sub"] == "alice"
    assert metadata["issuer"] == provider.issuer
    assert keys.fetch_count == 1
    assert provider.hits["/jwks"] == 1
    assert provider.hits["/.well-known/openid-configuration"] == 1


async def test_discovery_naming_another_issuer_is_refused(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    provider.serve_discovery(issuer="https://evil.example")
    async with remote(provider, fake_clock) as keys:
        with pytest.raises(ProviderUnavailableError) as caught:
            await keys.verify(token(provider))
        with pytest.raises(ProviderUnavailableError):
            await keys.metadata()
    assert status_of(caught.value) == 503
    assert "another issuer" in (caught.value.reason or "")
    assert provider.hits["/jwks"] == 0


async def test_issuer_with_a_trailing_slash_must_match_exactly(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    async with RemoteKeySet(
        provider.issuer + "/", allow_insecure_loopback=True, clock=fake_clock
    ) as keys:
        with pytest.raises(ProviderUnavailableError):
            await keys.key_set()


@pytest.mark.parametrize(
    "jwks_uri", ["http://203.0.113.7/jwks", "ftp://127.0.0.1/jwks", "https://user:pw@x.test/j"]
)
async def test_discovery_with_an_unsafe_jwks_uri_is_refused(
    provider: CraftedProvider, fake_clock: FakeClock, jwks_uri: str
) -> None:
    provider.serve_discovery(jwks_uri=jwks_uri)
    async with remote(provider, fake_clock) as keys:
        with pytest.raises(ProviderUnavailableError):
            await keys.key_set()


async def test_discovery_with_a_non_string_endpoint_is_refused(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    provider.serve_discovery(token_endpoint=["x"])
    async with remote(provider, fake_clock) as keys:
        with pytest.raises(ProviderUnavailableError):
            await keys.key_set()


async def test_a_jwks_uri_given_directly_skips_discovery(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    async with remote(provider, fake_clock, jwks_uri=f"{provider.url}/jwks") as keys:
        await keys.verify(token(provider))
        assert (await keys.metadata())["jwks_uri"] == f"{provider.url}/jwks"
    assert provider.hits["/.well-known/openid-configuration"] == 0


def test_plain_http_needs_loopback_and_the_explicit_switch() -> None:
    with pytest.raises(ConfigurationError, match="allow_insecure_loopback"):
        RemoteKeySet("http://127.0.0.1:9/")
    with pytest.raises(ConfigurationError, match="https"):
        RemoteKeySet("http://idp.example.com", allow_insecure_loopback=True)
    assert RemoteKeySet("http://[::1]:8080", allow_insecure_loopback=True).issuer
    assert RemoteKeySet("https://idp.example.com").issuer == "https://idp.example.com"


@pytest.mark.parametrize(
    "url",
    ["", "idp.example.com", "https://", "https://a.test/#frag", "https://a b.test", "https://a:x/"],
)
def test_malformed_provider_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        check_provider_url(url)


@given(st.text(max_size=60))
def test_check_provider_url_accepts_only_https_or_opted_in_loopback(url: str) -> None:
    try:
        accepted = check_provider_url(url, allow_insecure_loopback=True)
    except ConfigurationError:
        return
    assert accepted.startswith(("https://", "http://"))
    if accepted.startswith("http://"):
        host = httpx.URL(accepted).host
        assert host in ("localhost", "::1") or host.startswith("127.")


@pytest.mark.parametrize(
    "options",
    [
        {"rsa_algorithm": "ES256"},
        {"min_ttl": 0},
        {"default_ttl": 10, "min_ttl": 60},
        {"timeout": 0},
        {"min_refresh_interval": -1},
        {"max_bytes": 10},
        {"max_keys": 0},
    ],
)
def test_unsafe_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RemoteKeySet("https://idp.example.com", **options)


# -- what the JWKS may hold -------------------------------------------------------


async def test_a_jwks_holding_an_hmac_key_is_refused_as_a_whole(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    hmac_jwk = {"kty": "oct", "kid": "shared", "alg": "HS256", "k": b64({"x": "y" * 40})}
    provider.serve_jwks({"keys": [*provider.signing.jwks()["keys"], hmac_jwk]})
    async with remote(provider, fake_clock) as keys:
        with pytest.raises(ProviderUnavailableError) as caught:
            await keys.verify(token(provider))
    assert "symmetric" in (caught.value.reason or "")


async def test_an_hs256_token_signed_with_the_public_key_cannot_pass(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    public_pem = provider.signing.signing_key.public_pem()
    signing_input = b64({"alg": "HS256", "kid": "good-1"}) + "." + b64({"sub": "alice"})
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    async with remote(provider, fake_clock) as keys:
        with pytest.raises(InvalidTokenError) as caught:
            await keys.verify(forged)
    assert caught.value.reason == "algorithm not allowed for this key"


async def test_alg_none_is_refused(provider: CraftedProvider, fake_clock: FakeClock) -> None:
    unsigned = b64({"alg": "none", "kid": "good-1"}) + "." + b64({"sub": "alice"}) + "."
    async with remote(provider, fake_clock) as keys:
        for candidate in (unsigned, unsigned + "c2ln"):
            with pytest.raises(InvalidTokenError):
                await keys.verify(candidate)


async def test_encryption_keys_are_skipped_and_rsa_keys_without_alg_are_pinned(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    rsa = KeySet(Key.generate("RS256", kid="rsa"))
    rsa_jwk = {k: v for k, v in rsa.signing_key.to_public_jwk().items() if k != "alg"}
    enc = dict(Key.generate("RS256", kid="enc").to_public_jwk(), use="enc", alg="RSA-OAEP")
    provider.serve_jwks({"keys": [rsa_jwk, enc, {"kty": "RSA", "kid": "broken", "n": "AQAB"}]})
    ps256 = KeySet(Key(_private(rsa), kid="rsa", algorithm="PS256"))
    async with remote(provider, fake_clock) as keys:
        await keys.verify(token(provider, rsa))
        with pytest.raises(InvalidTokenError):
            await keys.verify(token(provider, ps256))
        assert sorted(key.kid for key in (await keys.key_set()).keys) == ["rsa"]


def _private(keys: KeySet) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(keys.signing_key.private_pem(), password=None)


async def test_a_jwks_with_private_members_still_only_verifies(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    provider.serve_jwks({"keys": [provider.signing.signing_key.to_private_jwk()]})
    async with remote(provider, fake_clock) as keys:
        key_set = await keys.key_set()
    assert not key_set.can_sign
    assert not any(key.can_sign for key in key_set.keys)


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b'{"keys": [], "keys": []}',
        b"[]",
        b'{"keys": []}',
        b'{"keys": ["x"]}',
        b'{"keys": [{"kty": "EC", "kid": "a", "use": "enc"}]}',
        b'{"keys": [{"kty": "EC", "kid": "a", "alg": "ES256", "crv": "P-256", "x": "AA"}]}',
    ],
)
async def test_malformed_jwks_documents_are_refused(
    provider: CraftedProvider, fake_clock: FakeClock, document: bytes
) -> None:
    provider.routes["/jwks"] = Route(body=document)
    async with remote(provider, fake_clock) as keys:
        with pytest.raises(ProviderUnavailableError):
            await keys.key_set()


async def test_duplicate_kids_and_too_many_keys_are_refused(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    jwk = provider.signing.jwks()["keys"][0]
    provider.serve_jwks({"keys": [jwk, jwk]})
    async with remote(provider, fake_clock) as keys:
        with pytest.raises(ProviderUnavailableError):
            await keys.key_set()
    provider.serve_jwks({"keys": [jwk]})
    many = {"keys": [dict(jwk, kid=f"k{i}") for i in range(3)]}
    provider.serve_jwks(many)
    async with remote(provider, fake_clock, max_keys=2) as keys:
        with pytest.raises(ProviderUnavailableError):
            await keys.key_set()


# -- caching, rotation and floods ---------------------------------------------------


@pytest.mark.parametrize(
    ("header", "ttl"),
    [
        (None, 300.0),
        ("max-age=120", 120.0),
        ("public, max-age=7200, must-revalidate", 7200.0),
        ("max-age=1", 60.0),
        ("max-age=999999999", 86400.0),
        ("no-store", 60.0),
        ("max-age=abc", 300.0),
    ],
)
def test_cache_control_sets_the_ttl_within_bounds(header: str | None, ttl: float) -> None:
    assert _ttl_from(header, default=300.0, low=60.0, high=86400.0) == ttl


@given(st.text(max_size=80))
def test_any_cache_control_header_gives_a_bounded_ttl(header: str) -> None:
    assert 60.0 <= _ttl_from(header, default=300.0, low=60.0, high=86400.0) <= 86400.0


async def test_the_set_is_refetched_after_the_providers_max_age(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    provider.serve_jwks(headers={"Cache-Control": "public, max-age=120"})
    async with remote(provider, fake_clock) as keys:
        await keys.key_set()
        fake_clock.advance(119)
        await keys.key_set()
        assert keys.fetch_count == 1
        fake_clock.advance(2)
        await keys.key_set()
        assert keys.fetch_count == 2


async def test_a_rotated_key_is_fetched_once(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    async with remote(provider, fake_clock) as keys:
        await keys.verify(token(provider))
        fake_clock.advance(31)
        provider.signing.rotate(Key.generate("ES256", kid="good-2"))
        provider.serve_jwks()
        for _ in range(5):
            await keys.verify(token(provider))
    assert keys.fetch_count == 2


async def test_a_flood_of_unknown_kids_costs_one_fetch_per_interval(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    async with remote(provider, fake_clock, min_refresh_interval=30) as keys:
        await keys.key_set()
        fake_clock.advance(30)

        async def attempt() -> None:
            kid = secrets.token_hex(8)
            forged = KeySet(Key.generate("ES256", kid=kid))
            with pytest.raises(InvalidTokenError):
                await keys.verify(token(provider, forged))

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(attempt)
        assert keys.fetch_count == 2
        for _ in range(50):
            await attempt()
        assert keys.fetch_count == 2
        fake_clock.advance(30)
        for _ in range(50):
            await attempt()
        assert keys.fetch_count == 3
    assert provider.hits["/jwks"] == 3


async def test_a_token_signed_by_a_key_not_in_the_set_is_refused(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    stranger = KeySet(Key.generate("ES256", kid="good-1"))
    async with remote(provider, fake_clock) as keys:
        with pytest.raises(InvalidTokenError):
            await keys.verify(token(provider, stranger))
    assert keys.fetch_count == 1


async def test_the_last_good_set_serves_while_the_provider_is_down(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    async with remote(provider, fake_clock) as keys:
        await keys.verify(token(provider))
        provider.routes["/jwks"] = Route(status=503, body={"error": "down"})
        fake_clock.advance(3600)
        await keys.verify(token(provider))
        fake_clock.advance(10)
        await keys.verify(token(provider))  # throttled: no second attempt yet
        assert keys.fetch_count == 2
        provider.serve_jwks({"keys": [{"kty": "oct", "kid": "x", "k": "AAAA"}]})
        await keys.refresh()
        assert keys.fetch_count == 2  # still within the interval
        fake_clock.advance(30)
        await keys.refresh()
        await keys.verify(token(provider))
        assert keys.fetch_count == 3


async def test_no_set_ever_fetched_is_a_503_and_retries_are_throttled(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    provider.routes["/jwks"] = Route(status=500, body={})
    async with remote(provider, fake_clock) as keys:
        for _ in range(3):
            with pytest.raises(ProviderUnavailableError):
                await keys.verify(token(provider))
        assert keys.fetch_count == 1
        provider.serve_jwks()
        fake_clock.advance(30)
        await keys.verify(token(provider))
        assert keys.fetch_count == 2


async def test_redirects_are_not_followed(provider: CraftedProvider, fake_clock: FakeClock) -> None:
    provider.routes["/jwks"] = Route(status=302, body={}, headers={"Location": "/elsewhere"})
    provider.routes["/elsewhere"] = Route(body=provider.signing.jwks())
    async with remote(provider, fake_clock) as keys:
        with pytest.raises(ProviderUnavailableError):
            await keys.key_set()
    assert provider.hits["/elsewhere"] == 0


# -- bounded fetches ----------------------------------------------------------------


async def test_a_hanging_jwks_endpoint_is_bounded_by_the_timeout(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    provider.routes["/jwks"] = Route(behaviour=hang(provider))
    async with remote(provider, fake_clock, timeout=0.3) as keys:
        with pytest.raises(ProviderUnavailableError) as caught:
            await keys.key_set()
    assert "did not answer" in (caught.value.reason or "") or "Timeout" in (
        caught.value.reason or ""
    )


async def test_a_dripping_jwks_endpoint_is_bounded_by_the_overall_timeout(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    provider.routes["/jwks"] = Route(behaviour=drip(provider, interval=0.05))
    async with remote(provider, fake_clock, timeout=0.5) as keys:
        with pytest.raises(ProviderUnavailableError) as caught:
            await keys.key_set()
    assert "did not answer within" in (caught.value.reason or "")


@pytest.mark.parametrize("declare_length", [False, True])
async def test_a_50_mb_jwks_is_abandoned_past_max_bytes(
    provider: CraftedProvider, fake_clock: FakeClock, declare_length: bool
) -> None:
    provider.routes["/jwks"] = Route(behaviour=flood(provider, declare_length=declare_length))
    async with remote(provider, fake_clock, max_bytes=64 * 1024) as keys:
        with pytest.raises(ProviderUnavailableError) as caught:
            await keys.key_set()
    reason = caught.value.reason or ""
    assert ("more than 65536" in reason) or ("declares" in reason)
    assert "declares" in reason if declare_length else "more than" in reason


async def test_fetch_json_raises_its_own_error_with_the_reason(provider: CraftedProvider) -> None:
    """Used alone, the bounded fetch raises FetchError naming what went wrong."""
    provider.routes["/jwks"] = Route(behaviour=flood(provider, declare_length=False))
    async with httpx.AsyncClient() as client:
        with pytest.raises(FetchError, match="more than 1024"):
            await fetch_json(client, f"{provider.url}/jwks", time_limit=5, max_bytes=1024)


async def test_an_unreachable_provider_is_a_503(fake_clock: FakeClock) -> None:
    with crafted_provider() as gone:
        url = gone.url
    async with RemoteKeySet(url, allow_insecure_loopback=True, clock=fake_clock) as keys:
        with pytest.raises(ProviderUnavailableError):
            await keys.key_set()


async def test_oversized_and_malformed_tokens_never_fetch(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    async with remote(provider, fake_clock) as keys:
        with pytest.raises(InvalidTokenError):
            await keys.verify("a" * 9000)
        assert keys.fetch_count == 0
        await keys.key_set()
        for garbage in ("", "a.b.c", "x" * 100, b64({"kid": 5}) + ".e30.c2ln"):
            with pytest.raises(InvalidTokenError):
                await keys.verify(garbage)
    assert keys.fetch_count == 1


def test_repr_names_the_issuer_only() -> None:
    assert repr(RemoteKeySet("https://idp.example.com")) == (
        "RemoteKeySet(issuer='https://idp.example.com')"
    )
