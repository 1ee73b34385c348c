"""The reference API loads a signing key of every algorithm the library supports."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from fastapi_secure.tokens.keys import ASYMMETRIC_ALGORITHMS, SYMMETRIC_ALGORITHMS, Key
from tests.support.reference_api import ALICE_PASSWORD, bearer, make_settings, serve

pytestmark = pytest.mark.anyio

# RSA keys do not name their algorithm; EC and Ed keys do, and are loaded without one too.
NAMES_ITSELF = {"ES256", "ES384", "ES512", "EdDSA"}


@pytest.mark.parametrize("algorithm", ASYMMETRIC_ALGORITHMS)
async def test_every_asymmetric_algorithm_signs_the_api_s_tokens(
    algorithm: str, tmp_path: Path
) -> None:
    pem = Key.generate(algorithm).private_pem().decode()
    named = {"signing_key_algorithm": algorithm} if algorithm not in NAMES_ITSELF else {}
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", signing_key_pem=SecretStr(pem), **named
    )
    async for api in serve(settings):
        assert (await api.register("alice@example.com", "alice", ALICE_PASSWORD)).status_code == 201
        tokens = await api.login("alice", ALICE_PASSWORD)
        assert (await api.client.get("/users/me", headers=bearer(tokens))).status_code == 200
        jwks = (await api.client.get("/.well-known/jwks.json")).json()
        assert [key["alg"] for key in jwks["keys"]] == [algorithm]


@pytest.mark.parametrize("algorithm", SYMMETRIC_ALGORITHMS)
async def test_hmac_keys_come_from_a_secret_and_publish_no_jwks(
    algorithm: str, tmp_path: Path
) -> None:
    secret = SecretStr("s" * 64)
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
        signing_key_algorithm=algorithm,
        signing_key_secret=secret,
    )
    async for api in serve(settings):
        assert (await api.register("alice@example.com", "alice", ALICE_PASSWORD)).status_code == 201
        tokens = await api.login("alice", ALICE_PASSWORD)
        assert (await api.client.get("/users/me", headers=bearer(tokens))).status_code == 200
        assert (await api.client.get("/.well-known/jwks.json")).status_code == 404
        assert "jwks" not in (await api.client.get("/")).json()


def test_an_unknown_algorithm_or_a_stray_secret_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
    # Settings validation wraps the ConfigurationError, as for every other setting.
    with pytest.raises(ValidationError, match="SIGNING_KEY_ALGORITHM"):
        make_settings(url, signing_key_algorithm="none")
    with pytest.raises(ValidationError, match="SIGNING_KEY_SECRET"):
        make_settings(url, signing_key_secret=SecretStr("s" * 64))
    with pytest.raises(ValidationError, match="SIGNING_KEY_SECRET"):
        make_settings(url, signing_key_algorithm="HS256")
