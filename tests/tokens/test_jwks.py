"""The public JWK Set and its FastAPI route."""

from __future__ import annotations

import json

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.jwks import (
    DEFAULT_JWKS_PATH,
    jwks_router,
)
from fastapi_secure.tokens.keys import (
    Key,
    KeySet,
)

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _app(keys: KeySet, **options: object) -> TestClient:
    app = FastAPI()
    app.include_router(jwks_router(keys, **options))  # type: ignore[arg-type]
    return TestClient(app)


def test_jwks_holds_public_members_only() -> None:
    keys = KeySet.generate("ES256", kid="ec")
    keys.add(Key.generate("EdDSA", kid="ed"))
    rsa_key = Key.generate("PS256", kid="rsa")
    keys.add(rsa_key)
    published = keys.jwks()
    assert [jwk["kid"] for jwk in published["keys"]] == ["ec", "ed", "rsa"]
    for jwk in published["keys"]:
        assert PRIVATE_MEMBERS.isdisjoint(jwk), jwk
        assert jwk["use"] == "sig"
    ec_jwk, ed_jwk, rsa_jwk = published["keys"]
    assert set(ec_jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (ec_jwk["kty"], ec_jwk["crv"], ec_jwk["alg"]) == ("EC", "P-256", "ES256")
    assert set(ed_jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (ed_jwk["kty"], ed_jwk["crv"], ed_jwk["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert set(rsa_jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    assert rsa_jwk["alg"] == "PS256"


def test_published_keys_verify_our_tokens_elsewhere() -> None:
    keys = KeySet.generate("EdDSA", kid="ed")
    token = keys.sign({"sub": "u"}, typ="JWT")
    # Another service, with only the JWK Set:
    public = jwt.PyJWKSet.from_dict(keys.jwks())["ed"]
    assert jwt.decode(token, public, algorithms=["EdDSA"]) == {"sub": "u"}
    assert KeySet.from_jwks(keys.jwks()).verify(token).claims() == {"sub": "u"}


def test_hmac_secrets_are_never_published() -> None:
    secret = b"0123456789abcdef0123456789abcdef"
    keys = KeySet.from_secret(secret, kid="hs")
    keys.add(Key.from_secret(b"z" * 64, kid="hs512", algorithm="HS512"))
    assert keys.jwks() == {"keys": []}
    assert "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY" not in json.dumps(keys.jwks())
    with pytest.raises(ConfigurationError, match="no public keys"):
        jwks_router(keys)


def test_route_serves_the_jwks_with_cache_control() -> None:
    keys = KeySet.generate("ES256", kid="ec")
    client = _app(keys, max_age=600)
    response = client.get(DEFAULT_JWKS_PATH)
    assert DEFAULT_JWKS_PATH == "/.well-known/jwks.json"
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=600"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"keys": [keys.signing_key.to_public_jwk()]}


def test_route_follows_rotation_and_retirement() -> None:
    keys = KeySet.generate("ES256", kid="2025")
    client = _app(keys)
    assert [k["kid"] for k in client.get(DEFAULT_JWKS_PATH).json()["keys"]] == ["2025"]

    upcoming = Key.generate("ES256", kid="2026")
    keys.add(upcoming)  # published before it signs anything
    assert [k["kid"] for k in client.get(DEFAULT_JWKS_PATH).json()["keys"]] == ["2025", "2026"]
    assert keys.signing_key.kid == "2025"

    keys.rotate(upcoming)
    assert [k["kid"] for k in client.get(DEFAULT_JWKS_PATH).json()["keys"]] == ["2026", "2025"]

    keys.retire("2025")
    body = client.get(DEFAULT_JWKS_PATH).json()
    assert body == {"keys": [upcoming.to_public_jwk()]}


def test_route_path_and_schema_options() -> None:
    keys = KeySet.generate("EdDSA")
    app = FastAPI()
    app.include_router(jwks_router(keys, path="/keys", max_age=0, include_in_schema=False))
    client = TestClient(app)
    response = client.get("/keys")
    assert response.headers["cache-control"] == "public, max-age=0"
    assert client.get(DEFAULT_JWKS_PATH).status_code == 404
    assert "/keys" not in client.get("/openapi.json").json()["paths"]


def test_route_is_documented_in_openapi() -> None:
    client = _app(KeySet.generate("EdDSA"))
    operation = client.get("/openapi.json").json()["paths"][DEFAULT_JWKS_PATH]["get"]
    assert operation["summary"] == "JSON Web Key Set"


@pytest.mark.parametrize(
    "options",
    [{"max_age": -1}, {"max_age": 1.5}, {"max_age": True}, {"path": "jwks.json"}],
)
def test_router_options_are_validated(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        jwks_router(KeySet.generate("EdDSA"), **options)  # type: ignore[arg-type]


def test_router_needs_a_keyset() -> None:
    with pytest.raises(ConfigurationError):
        jwks_router({"keys": []})  # type: ignore[arg-type]
