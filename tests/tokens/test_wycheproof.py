"""Wycheproof JOSE vectors (C2SP/wycheproof, Apache-2.0) against KeySet.

Each group's key is loaded the way a user would load it (``Key.from_jwk``,
``KeySet.from_jwks``) and every vector goes through ``KeySet.verify``. No
vector is skipped silently: the few where our answer differs from the file's
are listed in ``DISAGREEMENTS`` with the reason, and a test checks that list
is exact, so a change in the data or in the verifier shows up.

The vectors live beside the repository (``../shared/vectors/wycheproof``);
without them the tests skip locally and fail in CI.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import jwt
import pytest

from fastapi_secure.errors import (
    ConfigurationError,
    InvalidTokenError,
)
from fastapi_secure.tokens.keys import (
    Key,
    KeySet,
)
from tests.conftest import IN_CI

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "wycheproof"

# tcId -> (our outcome: "accepted" or "rejected", why it differs from the file).
DISAGREEMENTS: dict[int, tuple[str, str]] = {
    346: ("rejected", "JWK pins alg PS256; the token (RFC 7520 Figure 20) says PS384"),
    350: ("rejected", "JWK pins alg PS256; the token (RFC 7520 Figure 20) says PS384"),
    347: ("rejected", "JWK alg 'ES521' is not a registered JOSE name: key refused"),
    351: ("rejected", "JWK alg 'ES521' is not a registered JOSE name: key refused"),
    367: ("accepted", "marked invalid but byte-identical to valid vector 357"),
    370: ("accepted", "marked invalid but byte-identical to valid vector 357"),
    372: ("rejected", "marked valid although a '?' is inserted into the header segment"),
    373: ("rejected", "marked valid although a '?' is inserted into the payload segment"),
}

# Groups of json_web_signature_test.json whose key KeySet refuses, by index:
# keys marked for encryption (use "enc", key_ops without "verify") and the
# unregistered "ES521" alg. All their vectors count as rejected.
REFUSED_KEY_GROUPS = {
    11: "rfc7520",
    15: "rfc7520WithKeyOps",
    17: "rsa_encryption",
    18: "ec_key_for_encryption",
    19: "rsa_encryption",
    20: "ec_key_for_encryption",
}


def _load(name: str) -> dict[str, Any]:
    path = VECTORS / name
    if not path.is_file():
        message = f"Wycheproof vectors not found at {path} (shared/ must sit beside the clone)"
        if IN_CI:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _vector_groups(name: str) -> list[dict[str, Any]]:
    # Collected at import time for parametrization; _load() decides skip/fail.
    path = VECTORS / name
    if not path.is_file():
        return []
    groups: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["testGroups"]
    return groups


def _verification_keys(group: dict[str, Any]) -> KeySet:
    """Verify with the public key when there is one, else the secret (as Wycheproof does)."""
    jwk = group.get("public") or group["private"]
    if "keys" in jwk:
        return KeySet.from_jwks(jwk)
    return KeySet.verification_only([Key.from_jwk(jwk)])


def _outcome(group: dict[str, Any], token: str) -> str:
    try:
        keys = _verification_keys(group)
    except ConfigurationError:
        return "key refused"
    try:
        keys.verify(token)
    except InvalidTokenError:
        return "rejected"
    return "accepted"


@cache
def _jws_cases() -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    return [
        (index, group, case)
        for index, group in enumerate(_vector_groups("json_web_signature_test.json"))
        for case in group["tests"]
    ]


JWS_CASES = _jws_cases()


@pytest.mark.parametrize(
    ("group_index", "group", "case"),
    JWS_CASES,
    ids=[f"tc{case['tcId']}-{group['comment']}-{case['comment']}" for _, group, case in JWS_CASES],
)
def test_json_web_signature_vector(
    group_index: int, group: dict[str, Any], case: dict[str, Any]
) -> None:
    outcome = _outcome(group, case["jws"])
    if outcome == "key refused":
        assert group_index in REFUSED_KEY_GROUPS, "a signature key was refused"
        assert case["tcId"] in DISAGREEMENTS or case["result"] == "invalid"
        return
    tc_id = case["tcId"]
    if tc_id in DISAGREEMENTS:
        assert outcome == DISAGREEMENTS[tc_id][0]
    else:
        assert outcome == ("accepted" if case["result"] == "valid" else "rejected")


def test_json_web_signature_totals() -> None:
    data = _load("json_web_signature_test.json")
    cases = [(i, g, c) for i, g in enumerate(data["testGroups"]) for c in g["tests"]]
    assert data["numberOfTests"] == len(cases) == 401
    assert {g["type"] for g in data["testGroups"]} == {"JsonWebSignature"}

    outcomes = {c["tcId"]: (c["result"], _outcome(g, c["jws"])) for _, g, c in cases}
    refused_groups = {
        i: g["comment"] for i, g, c in cases if outcomes[c["tcId"]][1] == "key refused"
    }
    assert refused_groups == REFUSED_KEY_GROUPS

    tally = Counter(outcomes.values())
    # 395 vectors ran against a loaded key, 6 met a refused key.
    assert sum(n for (_, ours), n in tally.items() if ours != "key refused") == 395
    assert tally == {
        ("valid", "accepted"): 40,
        ("valid", "rejected"): 4,  # 346, 350, 372, 373
        ("valid", "key refused"): 2,  # 347, 351
        ("invalid", "rejected"): 349,
        ("invalid", "accepted"): 2,  # 367, 370: identical to valid 357
        ("invalid", "key refused"): 4,  # use "enc" / key_ops encrypt+decrypt
    }
    disagreements = {
        tc for tc, (result, ours) in outcomes.items() if (result == "valid") != (ours == "accepted")
    }
    assert disagreements == set(DISAGREEMENTS)


def test_invalid_vectors_marked_invalid_are_identical_to_a_valid_one() -> None:
    """367 and 370 cannot be rejected by any verifier that accepts 357."""
    data = _load("json_web_signature_test.json")
    by_id = {c["tcId"]: c for g in data["testGroups"] for c in g["tests"]}
    assert by_id[357]["result"] == "valid"
    for tc_id in (367, 370):
        assert by_id[tc_id]["result"] == "invalid"
        assert by_id[tc_id]["jws"] == by_id[357]["jws"]


def test_vectors_marked_valid_with_a_foreign_character_are_rejected_like_their_twins() -> None:
    """372/373 insert '?' into a segment; the file itself marks 364, 366, 369 invalid for that."""
    data = _load("json_web_signature_test.json")
    group = next(g for g in data["testGroups"] if g["comment"] == "base64")
    for case in group["tests"]:
        if case["tcId"] in (372, 373):
            assert "?" in case["jws"]
            assert _outcome(group, case["jws"]) == "rejected"
            assert _outcome(group, case["jws"].replace("?", "")) == "accepted"


@pytest.mark.parametrize(
    ("tc_id", "declared", "actual"),
    [
        (346, "PS256", "PS384"),
        (347, "ES521", "ES512"),
        (350, "PS256", "PS384"),
        (351, "ES521", "ES512"),
    ],
)
def test_rfc7520_figures_verify_once_the_jwk_names_the_token_algorithm(
    tc_id: int, declared: str, actual: str
) -> None:
    """The signatures are good; only the JWK's ``alg`` disagrees with the token's."""
    data = _load("json_web_signature_test.json")
    group, case = next((g, c) for g in data["testGroups"] for c in g["tests"] if c["tcId"] == tc_id)
    public = dict(group["public"])
    assert public["alg"] == declared
    if declared == "ES521":
        with pytest.raises(ConfigurationError, match="ES521"):
            Key.from_jwk(public)
    else:
        with pytest.raises(InvalidTokenError) as raised:
            KeySet.verification_only([Key.from_jwk(public)]).verify(case["jws"])
        assert raised.value.reason == "algorithm not allowed for this key"
    public["alg"] = actual
    verified = KeySet.verification_only([Key.from_jwk(public)]).verify(case["jws"])
    assert verified.payload.startswith("It\u2019s a dangerous business, Frodo".encode())


def test_private_jwks_of_signature_groups_load_unless_marked_otherwise() -> None:
    data = _load("json_web_signature_test.json")
    refused = {}
    for index, group in enumerate(data["testGroups"]):
        try:
            Key.from_jwk(group["private"])
        except ConfigurationError as exc:
            refused[index] = str(exc)
    assert set(refused) == {*REFUSED_KEY_GROUPS, 13}
    # Group 13's private JWK has key_ops ["sign, verify"]: one unknown string.
    assert "do not allow signature verification" in refused[13]


def test_pyjwt_alone_accepts_invalid_vectors_that_keyset_rejects() -> None:
    """The gap the issue names: PyJWT used directly accepts the wrong-use keys."""
    data = _load("json_web_signature_test.json")
    pyjwt_accepts = set()
    for group in data["testGroups"]:
        jwk = group.get("public") or group["private"]
        for case in group["tests"]:
            try:
                key = jwt.PyJWK(jwk)
                jwt.api_jws.PyJWS().decode_complete(
                    case["jws"], key=key, algorithms=[jwk.get("alg") or key.algorithm_name]
                )
            except jwt.PyJWTError:
                continue
            if case["result"] == "invalid":
                pyjwt_accepts.add(case["tcId"])
    assert pyjwt_accepts == {353, 354, 355, 356, 367, 370}
    outcomes = {c["tcId"]: _outcome(g, c["jws"]) for g in data["testGroups"] for c in g["tests"]}
    assert {tc for tc in pyjwt_accepts if outcomes[tc] == "accepted"} == {367, 370}


# -- json_web_key_test.json: loading key sets -----------------------------------

# tcId -> what KeySet must do. Every group's key set is the "private" JWK Set.
JWK_EXPECTATIONS = {
    1: "key refused",  # HMAC and EC keys mixed in one set
    2: "accepted",
    3: "rejected",  # modified signature
    4: "key refused",  # duplicate kid
    5: "accepted",
    6: "key refused",  # use "enc"
    7: "key refused",  # ROCA-vulnerable RSA modulus
    8: "key refused",  # 1024-bit RSA
    9: "key refused",  # public exponent 1
    10: "key refused",  # HS256 secret of 31 bytes
    11: "key refused",
    12: "key refused",
    13: "accepted",  # longer secrets are fine
    14: "accepted",
    15: "accepted",
    16: "key refused",  # empty secrets
    17: "key refused",
    18: "key refused",
    19: "key refused",  # alg ES521 on a P-256 key
    20: "key refused",  # alg ES224
    21: "key refused",  # use "enc"
    22: "key refused",  # point not on the curve
    23: "key refused",  # crv P-384 with P-256 coordinates
    24: "key refused",  # kty RSA with EC members
    25: "key refused",  # alg A256GCM
    26: "key refused",  # alg A256KW
}


def _keyset_outcome(group: dict[str, Any], token: str) -> str:
    try:
        keys = KeySet.from_jwks(group["private"])
    except ConfigurationError:
        return "key refused"
    try:
        keys.verify(token)
    except InvalidTokenError:
        return "rejected"
    return "accepted"


def test_json_web_key_vectors() -> None:
    data = _load("json_web_key_test.json")
    outcomes = {
        case["tcId"]: (case["result"], _keyset_outcome(group, case["jws"]))
        for group in data["testGroups"]
        for case in group["tests"]
    }
    assert data["numberOfTests"] == len(outcomes) == 26
    assert {tc: ours for tc, (_, ours) in outcomes.items()} == JWK_EXPECTATIONS
    # ... which agrees with the file on every vector.
    assert all((result == "valid") == (ours == "accepted") for result, ours in outcomes.values())


# -- json_web_crypto_test.json: JWS groups run, JWE groups are refused -----------


def test_json_web_crypto_vectors() -> None:
    data = _load("json_web_crypto_test.json")
    tally: Counter[tuple[str, str, str]] = Counter()
    for group in data["testGroups"]:
        kind = "jwe" if group["comment"].startswith("jwe_") else "jws"
        for case in group["tests"]:
            token = case.get("jws", case.get("jwe"))
            if isinstance(token, dict):  # JSON serialization: never accepted
                token = json.dumps(token)
            if kind == "jws":
                jwk = group.get("public") or group["private"]
                outcome = _keyset_outcome(group, token) if "keys" in jwk else _outcome(group, token)
            else:
                outcome = _outcome(group, token)
            tally[(kind, case["result"], outcome)] += 1
    assert data["numberOfTests"] == sum(tally.values()) == 83
    # Every JWS vector agrees with the file, and no JWE is ever taken for a JWS:
    # JWE groups hold encryption keys (use "enc"), which Key.from_jwk refuses.
    assert tally == {
        ("jws", "valid", "accepted"): 4,
        ("jws", "invalid", "rejected"): 43,
        ("jws", "invalid", "key refused"): 2,  # ROCA key, mixed HMAC+EC set
        ("jwe", "valid", "key refused"): 2,
        ("jwe", "invalid", "key refused"): 32,
    }


def test_jwe_tokens_are_never_accepted_by_a_signature_key_set() -> None:
    data = _load("json_web_crypto_test.json")
    keys = KeySet.from_secret(b"k" * 32, kid="kid-aes-encrypt")
    jwe_tokens = [
        case["jwe"]
        for group in data["testGroups"]
        if group["comment"].startswith("jwe_")
        for case in group["tests"]
    ]
    assert len(jwe_tokens) == 34
    for token in jwe_tokens:
        with pytest.raises(InvalidTokenError):
            keys.verify(token if isinstance(token, str) else json.dumps(token))
