"""Key, KeySet and JWS-level verification, mostly from the attacker's side."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.errors import (
    ConfigurationError,
    InvalidTokenError,
)
from fastapi_secure.tokens.keys import (
    DEFAULT_MAX_TOKEN_BYTES,
    SUPPORTED_ALGORITHMS,
    Key,
    KeySet,
    VerifiedJWS,
)

SECRET = b"s" * 32
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any] | bytes, payload: bytes, signature: bytes) -> str:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return f"{b64(raw)}.{b64(payload)}.{b64(signature)}"


def hs256_forge(secret: bytes, header: dict[str, Any], payload: bytes = b'{"sub":"admin"}') -> str:
    """What an attacker does by hand: HMAC the signing input with a chosen secret."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload)}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64(signature)}"


def resign(keys: KeySet, header: dict[str, Any], payload: bytes = b'{"sub":"u"}') -> str:
    """A token with ``header`` and a GOOD signature by the set's signing key.

    Used to prove a rejection comes from the header, not from the signature.
    """
    key = keys.signing_key
    algorithm = jwt.get_algorithm_by_name(key.algorithm)
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload)}"
    material: Any
    if key.is_symmetric:
        material = key.to_private_jwk()
        material = base64.urlsafe_b64decode(material["k"] + "==")
    else:
        material = serialization.load_pem_private_key(key.private_pem(), password=None)
    signature = algorithm.sign(signing_input.encode(), material)
    return f"{signing_input}.{b64(signature)}"


def reason_of(keys: KeySet, token: Any) -> str:
    with pytest.raises(InvalidTokenError) as raised:
        keys.verify(token)
    assert type(raised.value) is InvalidTokenError
    assert raised.value.reason is not None
    return raised.value.reason


@pytest.fixture(scope="module")
def rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_keys(rsa_private: rsa.RSAPrivateKey) -> KeySet:
    return KeySet(Key(rsa_private, kid="rsa-1", algorithm="RS256"))


@pytest.fixture(scope="module")
def ec_private() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ec_keys(ec_private: ec.EllipticCurvePrivateKey) -> KeySet:
    return KeySet(Key(ec_private, kid="ec-1", algorithm="ES256"))


@pytest.fixture(scope="module")
def ed_keys() -> KeySet:
    return KeySet.generate("EdDSA", kid="ed-1")


@pytest.fixture
def hs_keys() -> KeySet:
    return KeySet.from_secret(SECRET, kid="hs-1")


# -- keys --------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "minimum"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_secret_shorter_than_the_hash_is_refused(algorithm: str, minimum: int) -> None:
    with pytest.raises(ConfigurationError, match=f"at least {minimum} bytes"):
        Key.from_secret(b"x" * (minimum - 1), kid="k", algorithm=algorithm)
    assert Key.from_secret(b"x" * minimum, kid="k", algorithm=algorithm).algorithm == algorithm


def test_hmac_secret_length_counts_utf8_bytes() -> None:
    assert Key.from_secret("é" * 16, kid="k").can_sign  # 32 bytes
    with pytest.raises(ConfigurationError):
        Key.from_secret("é" * 15 + "e", kid="k")  # 31 bytes


def test_a_public_key_cannot_become_an_hmac_secret(rsa_private: rsa.RSAPrivateKey) -> None:
    pem = rsa_private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ConfigurationError):
        Key.from_secret(pem, kid="k")


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA", "none", "HS1", "hs256"])
def test_from_secret_serves_hmac_only(algorithm: str) -> None:
    with pytest.raises(ConfigurationError):
        Key.from_secret(SECRET, kid="k", algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ["none", "None", "ES256K", "RS1", "HS1", "ES521", ""])
def test_unsupported_algorithms_are_refused(algorithm: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported algorithm"):
        Key.generate(algorithm)


@pytest.mark.parametrize("kid", ["", "a\nb", "\x00", "k" * 257])
def test_bad_kids_are_refused(kid: str) -> None:
    with pytest.raises(ConfigurationError):
        Key.from_secret(SECRET, kid=kid)


def test_rsa_keys_below_2048_bits_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(ConfigurationError, match="2048"):
        Key(small, kid="k", algorithm="RS256")


def test_pem_private_key_signs_public_key_only_verifies(
    ec_private: ec.EllipticCurvePrivateKey,
) -> None:
    private_pem = ec_private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signer = Key.from_pem(private_pem, kid="ec")
    verifier = Key.from_pem(signer.public_pem().decode(), kid="ec")
    assert (signer.algorithm, signer.can_sign) == ("ES256", True)
    assert (verifier.algorithm, verifier.can_sign) == ("ES256", False)
    with pytest.raises(ConfigurationError, match="no private material"):
        KeySet(verifier)
    token = KeySet(signer).sign({"sub": "u"}, typ="JWT")
    assert KeySet.verification_only([verifier]).verify(token).claims() == {"sub": "u"}


def test_pem_with_password(ed_keys: KeySet) -> None:
    pem = ed_keys.signing_key.private_pem(password=b"pw")
    assert b"ENCRYPTED" in pem
    with pytest.raises(ConfigurationError):
        Key.from_pem(pem)
    assert Key.from_pem(pem, password=b"pw").kid == ed_keys.signing_key.thumbprint()


def test_rsa_pem_needs_an_explicit_algorithm(rsa_private: rsa.RSAPrivateKey) -> None:
    pem = rsa_private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigurationError, match="pass algorithm="):
        Key.from_pem(pem)
    assert Key.from_pem(pem, algorithm="PS256").algorithm == "PS256"


def test_pem_curve_must_match_the_algorithm(ec_private: ec.EllipticCurvePrivateKey) -> None:
    pem = ec_private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ConfigurationError):
        Key.from_pem(pem, algorithm="ES384")
    with pytest.raises(ConfigurationError):
        Key.from_pem(pem, algorithm="RS256")
    with pytest.raises(ConfigurationError):
        Key.from_pem(pem, algorithm="HS256")


@pytest.mark.parametrize(
    "pem", [b"", b"garbage", "-----BEGIN PUBLIC KEY-----\nAAAA\n", b"\xff" * 40]
)
def test_unreadable_pem_is_a_configuration_error(pem: str | bytes) -> None:
    with pytest.raises(ConfigurationError):
        Key.from_pem(pem, algorithm="RS256")


def test_default_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 7638, section 3.1.
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "alg": "RS256",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
            "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5"
            "v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD0"
            "8qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8"
            "awapJzKnqDKgw"
        ),
    }
    key = Key.from_jwk(jwk)
    assert key.kid == key.thumbprint() == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert Key.from_pem(key.public_pem(), algorithm="RS256").kid == key.kid


def test_generated_hmac_kid_does_not_derive_from_the_secret() -> None:
    key = Key.generate("HS256")
    secret = base64.urlsafe_b64decode(key.to_private_jwk()["k"] + "==")
    assert key.kid != b64(hashlib.sha256(secret).digest())
    assert Key.generate("HS256").kid != key.kid


# RSA key generation is slow: RSA algorithms get one shared key, below.
@pytest.mark.parametrize(
    "algorithm", [a for a in SUPPORTED_ALGORITHMS if a[:2] not in ("RS", "PS")]
)
def test_every_algorithm_round_trips_and_interoperates_with_pyjwt(algorithm: str) -> None:
    keys = KeySet.generate(algorithm)
    token = keys.sign({"sub": "u", "n": 1}, typ="at+jwt")
    verified = keys.verify(token)
    assert verified.header == {"alg": algorithm, "kid": keys.signing_key.kid, "typ": "at+jwt"}
    assert verified.payload == b'{"sub":"u","n":1}'
    assert verified.key is keys.signing_key
    key = keys.signing_key
    material: Any = jwt.PyJWK(key.to_private_jwk()).key if key.is_symmetric else key.public_pem()
    assert jwt.decode(token, material, algorithms=[algorithm]) == {"sub": "u", "n": 1}


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
def test_rsa_algorithms_round_trip(rsa_private: rsa.RSAPrivateKey, algorithm: str) -> None:
    keys = KeySet(Key(rsa_private, kid="r", algorithm=algorithm))
    token = keys.sign({"sub": "u"}, typ="JWT")
    assert keys.verify(token).claims() == {"sub": "u"}
    public = keys.signing_key.public_pem()
    assert jwt.decode(token, public, algorithms=[algorithm]) == {"sub": "u"}
    private_jwk = keys.signing_key.to_private_jwk()
    assert "key_ops" not in private_jwk  # PyJWT writes ["sign"], which from_jwk would refuse
    assert Key.from_jwk(private_jwk).can_sign


def test_repr_and_public_jwk_never_show_a_secret(hs_keys: KeySet) -> None:
    key = hs_keys.signing_key
    assert SECRET.decode() not in repr(key)
    assert b64(SECRET) not in repr(key) + repr(hs_keys)
    with pytest.raises(ConfigurationError):
        key.to_public_jwk()
    with pytest.raises(ConfigurationError):
        key.public_key()


# -- JWK ---------------------------------------------------------------------


def test_jwk_round_trip(ec_keys: KeySet) -> None:
    private_jwk = ec_keys.signing_key.to_private_jwk()
    assert private_jwk["use"] == "sig"
    assert "d" in private_jwk
    again = Key.from_jwk(json.dumps(private_jwk))
    assert (again.kid, again.algorithm, again.can_sign) == ("ec-1", "ES256", True)
    token = KeySet(again).sign({"a": 1}, typ="JWT")
    assert ec_keys.verify(token).claims() == {"a": 1}
    public = Key.from_jwk(ec_keys.signing_key.to_public_jwk())
    assert not public.can_sign


@pytest.mark.parametrize("use", ["enc", "SIG", "", 1])
def test_jwk_not_for_signatures_is_refused(ec_keys: KeySet, use: object) -> None:
    jwk = {**ec_keys.signing_key.to_public_jwk(), "use": use}
    with pytest.raises(ConfigurationError, match="use"):
        Key.from_jwk(jwk)


@pytest.mark.parametrize(
    "key_ops", [["sign"], ["encrypt", "decrypt"], [], ["sign, verify"], "verify", [1]]
)
def test_jwk_key_ops_without_verify_are_refused(ec_keys: KeySet, key_ops: object) -> None:
    jwk = {**ec_keys.signing_key.to_private_jwk(), "key_ops": key_ops}
    jwk.pop("use")
    with pytest.raises(ConfigurationError, match="key_ops"):
        Key.from_jwk(jwk)


def test_private_jwk_limited_to_verify_cannot_sign(ec_keys: KeySet) -> None:
    jwk = {**ec_keys.signing_key.to_private_jwk(), "key_ops": ["verify"]}
    key = Key.from_jwk(jwk)
    assert not key.can_sign
    with_sign = Key.from_jwk({**jwk, "key_ops": ["sign", "verify"]})
    assert with_sign.can_sign


def test_hmac_jwk_needs_sign_and_a_kid() -> None:
    jwk = {"kty": "oct", "alg": "HS256", "k": b64(SECRET)}
    with pytest.raises(ConfigurationError, match="kid"):
        Key.from_jwk(jwk)
    with pytest.raises(ConfigurationError):
        Key.from_jwk({**jwk, "kid": "h", "key_ops": ["verify"]})
    assert Key.from_jwk({**jwk, "kid": "h"}).can_sign


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"alg": "ES384"}, "unsupported|cannot be used|curve"),
        ({"alg": "RS256"}, "cannot be used"),
        ({"alg": "HS256"}, "cannot be used"),
        ({"alg": "none"}, "unsupported"),
        ({"kty": "RSA"}, "cannot be used"),
        ({"crv": "P-384"}, "usable"),
        ({"x": "AAAA"}, "usable"),
    ],
)
def test_inconsistent_jwk_is_refused(ec_keys: KeySet, changes: dict[str, str], match: str) -> None:
    jwk = {**ec_keys.signing_key.to_public_jwk(), **changes}
    with pytest.raises(ConfigurationError, match=match):
        Key.from_jwk(jwk)


def test_jwk_alg_must_agree_with_the_requested_algorithm(ec_keys: KeySet) -> None:
    with pytest.raises(ConfigurationError, match="declares alg"):
        Key.from_jwk(ec_keys.signing_key.to_public_jwk(), algorithm="ES384")
    jwk = ec_keys.signing_key.to_public_jwk()
    del jwk["alg"]
    assert Key.from_jwk(jwk).algorithm == "ES256"  # inferred from the curve


@pytest.mark.parametrize("jwk", ["not json", "[]", "{}", '{"kty":"RSA"}'])
def test_malformed_jwk_is_a_configuration_error(jwk: str) -> None:
    with pytest.raises(ConfigurationError):
        Key.from_jwk(jwk)


def test_from_jwks_picks_the_signing_key(ec_keys: KeySet) -> None:
    other = Key.generate("ES256", kid="ec-2")
    private_set = {"keys": [ec_keys.signing_key.to_private_jwk(), other.to_private_jwk()]}
    assert KeySet.from_jwks(private_set).signing_key.kid == "ec-1"
    assert KeySet.from_jwks(json.dumps(private_set), signing_kid="ec-2").signing_key.kid == "ec-2"
    with pytest.raises(ConfigurationError):
        KeySet.from_jwks(private_set, signing_kid="ec-3")
    public_set = KeySet.from_jwks(ec_keys.jwks())
    assert not public_set.can_sign
    assert public_set.verify(ec_keys.sign({}, typ="JWT")).key.kid == "ec-1"
    bad_sets: list[dict[str, Any] | str] = [{"keys": []}, {}, "[]", {"keys": [{"kty": "EC"}]}]
    for bad in bad_sets:
        with pytest.raises(ConfigurationError):
            KeySet.from_jwks(bad)


# -- KeySet ------------------------------------------------------------------


def test_symmetric_and_asymmetric_keys_cannot_be_mixed(ec_keys: KeySet) -> None:
    hmac_key = Key.from_secret(SECRET, kid="hs")
    with pytest.raises(ConfigurationError, match="mixed"):
        KeySet(hmac_key, [ec_keys.signing_key])
    with pytest.raises(ConfigurationError, match="mixed"):
        KeySet(ec_keys.signing_key, [hmac_key])
    keys = KeySet(Key.generate("ES256"))
    with pytest.raises(ConfigurationError, match="mixed"):
        keys.rotate(hmac_key)
    with pytest.raises(ConfigurationError, match="mixed"):
        keys.add(hmac_key)


def test_kids_are_unique() -> None:
    with pytest.raises(ConfigurationError, match="duplicate kid"):
        KeySet(Key.from_secret(SECRET, kid="a"), [Key.from_secret(b"t" * 32, kid="a")])
    keys = KeySet.from_secret(SECRET, kid="a")
    with pytest.raises(ConfigurationError, match="duplicate kid"):
        keys.rotate(Key.from_secret(b"t" * 32, kid="a"))


@pytest.mark.parametrize("size", [0, 255, -1, 1.5, True, "8192"])
def test_max_token_bytes_is_validated(size: Any) -> None:
    with pytest.raises(ConfigurationError):
        KeySet(Key.from_secret(SECRET, kid="a"), max_token_bytes=size)


def test_verification_only_set_cannot_sign(ec_keys: KeySet) -> None:
    keys = KeySet.verification_only([ec_keys.signing_key.public_key()])
    assert not keys.can_sign
    with pytest.raises(ConfigurationError, match="only verifies"):
        keys.sign({}, typ="JWT")
    with pytest.raises(ConfigurationError, match="only verifies"):
        _ = keys.signing_key
    with pytest.raises(ConfigurationError):
        KeySet.verification_only([])


def test_sign_header_and_compact_payload(hs_keys: KeySet) -> None:
    token = hs_keys.sign({"sub": "u", "roles": ["a"]}, typ="at+jwt", headers={"cty": "x"})
    header_segment, payload_segment, _ = token.split(".")
    assert base64.urlsafe_b64decode(header_segment + "==") == (
        b'{"alg":"HS256","kid":"hs-1","typ":"at+jwt","cty":"x"}'
    )
    assert base64.urlsafe_b64decode(payload_segment + "==") == b'{"sub":"u","roles":["a"]}'


@pytest.mark.parametrize("name", ["alg", "kid", "typ", "crit", "jku", "jwk", "x5u", "x5c", "b64"])
def test_sign_refuses_to_override_protected_headers(hs_keys: KeySet, name: str) -> None:
    with pytest.raises(ConfigurationError):
        hs_keys.sign({}, typ="JWT", headers={name: "x"})


@pytest.mark.parametrize("typ", ["", None, 1])
def test_sign_needs_a_typ(hs_keys: KeySet, typ: Any) -> None:
    with pytest.raises(ConfigurationError):
        hs_keys.sign({}, typ=typ)


def test_private_pem_refuses_an_empty_password(ed_keys: KeySet) -> None:
    with pytest.raises(ConfigurationError):
        ed_keys.signing_key.private_pem(password=b"")


def test_sign_refuses_nan(hs_keys: KeySet) -> None:
    with pytest.raises(ValueError, match="JSON"):
        hs_keys.sign({"n": float("nan")}, typ="JWT")


def test_rotate_keeps_old_tokens_valid_until_retired() -> None:
    keys = KeySet.from_secret(SECRET, kid="2025")
    old_token = keys.sign({"n": 1}, typ="JWT")
    keys.rotate(Key.from_secret(b"n" * 32, kid="2026"))
    new_token = keys.sign({"n": 2}, typ="JWT")
    assert keys.signing_key.kid == "2026"
    assert [key.kid for key in keys.keys] == ["2026", "2025"]
    assert keys.verify(old_token).key.kid == "2025"
    assert keys.verify(new_token).key.kid == "2026"
    with pytest.raises(ConfigurationError, match="rotate first"):
        keys.retire("2026")
    keys.retire("2025")
    assert reason_of(keys, old_token) == "unknown kid"
    assert keys.verify(new_token).claims() == {"n": 2}
    with pytest.raises(ConfigurationError, match="no key"):
        keys.retire("2025")


def test_add_then_rotate_promotes_a_published_key() -> None:
    keys = KeySet.generate("ES256", kid="old")
    upcoming = Key.generate("ES256", kid="new")
    keys.add(upcoming)
    assert keys.signing_key.kid == "old"
    assert [jwk["kid"] for jwk in keys.jwks()["keys"]] == ["old", "new"]
    keys.rotate(upcoming)
    assert keys.signing_key is upcoming
    assert [jwk["kid"] for jwk in keys.jwks()["keys"]] == ["new", "old"]
    with pytest.raises(ConfigurationError):
        keys.rotate(upcoming.public_key())


def test_verified_claims_are_parsed_strictly(hs_keys: KeySet) -> None:
    key = hs_keys.signing_key
    for payload in (b'{"a":1,"a":2}', b"[1]", b"\xff", b'{"a":NaN}', b""):
        with pytest.raises(InvalidTokenError):
            VerifiedJWS(header={}, payload=payload, key=key).claims()


# -- attacks -----------------------------------------------------------------

NONE_CASINGS = ["".join(chars) for chars in itertools.product(*zip("none", "NONE", strict=True))]


@pytest.mark.parametrize("alg", NONE_CASINGS)
@pytest.mark.parametrize("signature", [b"", b"\x00", b"x" * 32])
def test_alg_none_in_every_casing(
    hs_keys: KeySet, ec_keys: KeySet, alg: str, signature: bytes
) -> None:
    assert len(NONE_CASINGS) == 16
    for keys in (hs_keys, ec_keys):
        token = compact({"alg": alg, "kid": keys.signing_key.kid}, b'{"sub":"admin"}', signature)
        if signature:
            assert reason_of(keys, token) == "algorithm not allowed for this key"
        else:
            assert reason_of(keys, token) == "not a compact JWS of three base64url segments"


def _public_forms(private: Any) -> dict[str, bytes]:
    public = private.public_key()
    forms = {
        "spki-pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    if isinstance(public, rsa.RSAPublicKey):
        forms["pkcs1-pem"] = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        )
    forms.update({f"{name}+newline": value + b"\n" for name, value in list(forms.items())})
    return forms


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_signed_with_the_public_key_cannot_pass(
    rsa_private: rsa.RSAPrivateKey,
    rsa_keys: KeySet,
    ec_private: ec.EllipticCurvePrivateKey,
    ec_keys: KeySet,
    alg: str,
) -> None:
    for private, keys in ((rsa_private, rsa_keys), (ec_private, ec_keys)):
        kid = keys.signing_key.kid
        for form, public in _public_forms(private).items():
            digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
            header = {"alg": alg, "kid": kid}
            signing_input = f"{b64(json.dumps(header).encode())}.{b64(b'{}')}".encode()
            signature = hmac.new(public, signing_input, digest[alg]).digest()
            token = f"{signing_input.decode()}.{b64(signature)}"
            assert reason_of(keys, token) == "algorithm not allowed for this key", form
            # Keeping the key's own alg in the header does not help either.
            forged = hs256_forge(public, {"alg": keys.signing_key.algorithm, "kid": kid})
            assert reason_of(keys, forged) == "signature check failed", form


def test_rs256_header_on_an_hmac_key_cannot_pass(hs_keys: KeySet) -> None:
    good = hs_keys.sign({"sub": "u"}, typ="JWT")
    _, payload, signature = good.split(".")
    for alg in ("RS256", "ES256", "EdDSA", "PS256", "HS384", "HS512", "hs256", "HS256 ", ""):
        forged_header = b64(json.dumps({"alg": alg, "kid": "hs-1", "typ": "JWT"}).encode())
        token = f"{forged_header}.{payload}.{signature}"
        assert reason_of(hs_keys, token) == "algorithm not allowed for this key"
    for odd in (None, 256, ["HS256"], {"HS256": 1}):
        assert reason_of(hs_keys, compact({"alg": odd, "kid": "hs-1"}, b"{}", b"s")) == (
            "algorithm not allowed for this key"
        )


def test_stripped_signature(hs_keys: KeySet, ec_keys: KeySet) -> None:
    for keys in (hs_keys, ec_keys):
        token = keys.sign({"sub": "u"}, typ="JWT")
        stripped = token.rsplit(".", 1)[0]
        assert reason_of(keys, stripped + ".") == "not a compact JWS of three base64url segments"
        assert reason_of(keys, stripped) == "not a compact JWS of three base64url segments"


def test_tampered_tokens(hs_keys: KeySet, ec_keys: KeySet, ed_keys: KeySet) -> None:
    for keys in (hs_keys, ec_keys, ed_keys):
        token = keys.sign({"sub": "user", "roles": []}, typ="JWT")
        header, payload, signature = token.split(".")
        raw_signature = base64.urlsafe_b64decode(signature + "==")
        flipped = bytes([raw_signature[0] ^ 1]) + raw_signature[1:]
        assert reason_of(keys, f"{header}.{payload}.{b64(flipped)}") == "signature check failed"
        assert reason_of(keys, f"{header}.{payload}.{b64(raw_signature[:-1])}") == (
            "signature check failed"
        )
        assert reason_of(keys, f"{header}.{payload}.{b64(raw_signature + b'x')}") == (
            "signature check failed"
        )
        evil = b64(b'{"sub":"admin","roles":["admin"]}')
        assert reason_of(keys, f"{header}.{evil}.{signature}") == "signature check failed"
        kid = keys.signing_key.kid
        other_header = b64(json.dumps({"alg": keys.signing_key.algorithm, "kid": kid}).encode())
        assert reason_of(keys, f"{other_header}.{payload}.{signature}") == (
            "signature check failed"
        )


def test_a_token_of_one_key_does_not_verify_under_another_kid() -> None:
    keys = KeySet.from_secret(SECRET, kid="a")
    keys.add(Key.from_secret(b"b" * 32, kid="b"))
    token = keys.sign({"sub": "u"}, typ="JWT")
    _, payload, signature = token.split(".")
    relabelled = b64(json.dumps({"alg": "HS256", "kid": "b", "typ": "JWT"}).encode())
    assert reason_of(keys, f"{relabelled}.{payload}.{signature}") == "signature check failed"


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../../dev/null",
        "/etc/passwd",
        "..\\..\\keys\\hs-1",
        "hs-1/../hs-1",
        "hs-1\x00",
        "' OR '1'='1",
        "hs-1'; DROP TABLE keys; --",
        "HS-1",
        " hs-1",
        "",
        "nope",
        "\u202ehs-1",
    ],
)
def test_unknown_kids_are_rejected(hs_keys: KeySet, kid: str) -> None:
    # Signed with the real secret: only the kid is wrong.
    token = hs256_forge(SECRET, {"alg": "HS256", "kid": kid})
    assert reason_of(hs_keys, token) == "unknown kid"


@pytest.mark.parametrize("kid", [None, 1, 1.5, True, [], ["hs-1"], {"kid": "hs-1"}])
def test_non_string_kid_is_rejected(hs_keys: KeySet, kid: object) -> None:
    token = hs256_forge(SECRET, {"alg": "HS256", "kid": kid})
    assert reason_of(hs_keys, token) == "missing or non-string kid"


def test_missing_kid_is_rejected_even_with_a_single_key(hs_keys: KeySet) -> None:
    token = hs256_forge(SECRET, {"alg": "HS256"})
    assert reason_of(hs_keys, token) == "missing or non-string kid"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("x5c", ["MIIB"]),
        ("jku", None),
    ],
)
def test_key_reference_headers_are_refused_even_when_the_signature_is_good(
    ec_keys: KeySet, name: str, value: object
) -> None:
    header = {"alg": "ES256", "kid": "ec-1", name: value}
    assert reason_of(ec_keys, resign(ec_keys, header)) == "token references or embeds a key"


def test_embedded_jwk_header_is_never_used(ec_keys: KeySet) -> None:
    attacker = Key.generate("ES256", kid="ec-1")
    attacker_keys = KeySet(attacker)
    # The attacker signs with his own key and embeds its public JWK.
    header = {"alg": "ES256", "kid": "ec-1", "jwk": attacker.to_public_jwk()}
    forged = resign(attacker_keys, header, b'{"sub":"admin"}')
    assert reason_of(ec_keys, forged) == "token references or embeds a key"
    # Even the legitimate key embedded in a legitimately signed token is refused.
    honest = resign(ec_keys, {**header, "jwk": ec_keys.signing_key.to_public_jwk()})
    assert reason_of(ec_keys, honest) == "token references or embeds a key"


@pytest.mark.parametrize("crit", [["exp"], [], ["b64"], "exp", None, [1]])
def test_crit_is_refused(hs_keys: KeySet, crit: object) -> None:
    header = {"alg": "HS256", "kid": "hs-1", "crit": crit, "exp": 1}
    assert reason_of(hs_keys, resign(hs_keys, header)) == "unsupported critical header"


@pytest.mark.parametrize("b64_value", [False, True])
def test_unencoded_payload_option_is_refused(hs_keys: KeySet, b64_value: bool) -> None:
    header = {"alg": "HS256", "kid": "hs-1", "b64": b64_value}
    assert reason_of(hs_keys, resign(hs_keys, header)) == "unencoded payload (b64) not supported"


def test_unrelated_header_members_are_tolerated(hs_keys: KeySet) -> None:
    header = {"alg": "HS256", "kid": "hs-1", "typ": "JWT", "x5t": "abc", "cty": "JWT"}
    assert hs_keys.verify(resign(hs_keys, header)).header == header


def test_duplicate_header_members_are_refused(hs_keys: KeySet) -> None:
    raw = b'{"alg":"none","kid":"hs-1","alg":"HS256"}'
    signing_input = f"{b64(raw)}.{b64(b'{}')}"
    signature = hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(signature)}"
    assert reason_of(hs_keys, token) == "header is not a JSON object"


@pytest.mark.parametrize(
    "raw_header",
    [
        b"[]",
        b'"HS256"',
        b"1",
        b"null",
        b"",
        b"{",
        b'{"alg":"HS256","kid":"hs-1",}',
        b'{"alg":"HS256","kid":"hs-1","x":NaN}',
        b'{"alg":"HS256","kid":"hs-1","x":Infinity}',
        b"\xef\xbb\xbf{}",
        '{"alg":"HS256","kid":"hs-1"}'.encode("utf-16"),
        b'{"alg":"HS256","kid":"hs-1","x":"\xff"}',
        b"[" * 3000 + b"]" * 3000,  # deeper than the JSON parser's recursion limit
    ],
)
def test_header_must_be_a_strict_json_object(hs_keys: KeySet, raw_header: bytes) -> None:
    token = compact(raw_header, b"{}", b"x" * 32)
    expected = "header is not a JSON object"
    if not raw_header:
        expected = "not a compact JWS of three base64url segments"
    assert reason_of(hs_keys, token) == expected


def test_oversized_tokens_are_refused_before_parsing(hs_keys: KeySet) -> None:
    assert hs_keys.max_token_bytes == DEFAULT_MAX_TOKEN_BYTES == 8192
    garbage = "!" * (DEFAULT_MAX_TOKEN_BYTES + 1)
    assert reason_of(hs_keys, garbage) == "token too large"
    assert reason_of(hs_keys, garbage.encode()) == "token too large"
    assert reason_of(hs_keys, "é" * 10_000_000) == "token too large"
    big = hs_keys.sign({"pad": "x" * 7000}, typ="JWT")
    assert len(big) > 8192
    assert reason_of(hs_keys, big) == "token too large"
    roomy = KeySet(hs_keys.signing_key, max_token_bytes=16 * 1024)
    assert roomy.verify(big).claims()["pad"] == "x" * 7000
    tight = KeySet(hs_keys.signing_key, max_token_bytes=256)
    small = hs_keys.sign({"pad": "x" * 100}, typ="JWT")
    assert len(small) <= 256
    assert tight.verify(small).key is hs_keys.signing_key
    assert reason_of(tight, hs_keys.sign({"pad": "x" * 200}, typ="JWT")) == "token too large"


def test_non_canonical_base64_is_refused(hs_keys: KeySet) -> None:
    token = hs_keys.sign({"sub": "u"}, typ="JWT")
    header, payload, signature = token.split(".")
    assert len(signature) % 4 == 3  # 32 bytes: the last character carries 2 unused bits
    last = B64URL.index(signature[-1])
    for unused in (1, 2, 3):
        malleable = signature[:-1] + B64URL[last | unused]
        # The same signature bytes, spelled differently:
        assert base64.urlsafe_b64decode(malleable + "=") == base64.urlsafe_b64decode(
            signature + "="
        )
        assert reason_of(hs_keys, f"{header}.{payload}.{malleable}") == "non-canonical base64url"
    shape = "not a compact JWS of three base64url segments"
    variants = {
        f"{header}.{payload}.{signature}=": shape,
        f"{header}=.{payload}.{signature}": shape,
        f"{header}.{payload}.{signature.replace('-', '+').replace('_', '/')}": None,
        f"{header}.{payload}.{signature[:10]} {signature[10:]}": shape,
        f"{header}.{payload}.{signature}\n": shape,
        f" {token}": shape,
        f"{header}.{payload}.{signature}AA": "non-canonical base64url",  # 45 characters
        f"{header}..{payload}.{signature}": shape,
        f"{token}.{signature}": shape,
        f"{header}.{payload}.{signature}.": shape,
        f"Bearer {token}": shape,
    }
    for variant, expected in variants.items():
        if variant == token:
            continue
        reason = reason_of(hs_keys, variant)
        if expected is not None:
            assert reason == expected, variant


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "é.é.é",
        "eyJ.eyJ.\u00e9",
        "\x00",
        "\udcff",
        "🔑.🔑.🔑",
        "\uff45\uff59\uff2a.\uff45\uff59\uff2a.\uff45\uff59\uff2a",  # fullwidth "eyJ"
        b"\xff\xfe\x00",
        b"eyJhbGciOiJIUzI1NiJ9.e30.\xff",
        None,
        123,
        ["a.b.c"],
        bytearray(b"a.b.c"),
    ],
)
def test_garbage_is_an_invalid_token(hs_keys: KeySet, token: Any) -> None:
    reason_of(hs_keys, token)


def test_verify_returns_the_header_payload_and_key(ec_keys: KeySet) -> None:
    token = ec_keys.sign({"sub": "u"}, typ="at+jwt")
    verified = ec_keys.verify(token.encode())
    assert verified == VerifiedJWS(
        header={"alg": "ES256", "kid": "ec-1", "typ": "at+jwt"},
        payload=b'{"sub":"u"}',
        key=ec_keys.signing_key,
    )
    assert ec_keys.verify(token) == verified


def test_empty_payload_is_allowed_at_the_jws_level(hs_keys: KeySet) -> None:
    token = resign(hs_keys, {"alg": "HS256", "kid": "hs-1"}, b"")
    assert hs_keys.verify(token).payload == b""


# -- properties --------------------------------------------------------------

ALGORITHM_SAMPLE = ["HS256", "ES256", "EdDSA"]
_PROPERTY_KEYS = {algorithm: KeySet.generate(algorithm, kid="k") for algorithm in ALGORITHM_SAMPLE}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(token=st.text(max_size=400))
def test_any_string_is_an_invalid_token_never_a_crash(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        _PROPERTY_KEYS["HS256"].verify(token)


@settings(max_examples=300)
@given(token=st.binary(max_size=400))
def test_any_bytes_are_an_invalid_token_never_a_crash(token: bytes) -> None:
    with pytest.raises(InvalidTokenError):
        _PROPERTY_KEYS["EdDSA"].verify(token)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
HEADER_NAMES = st.sampled_from(["alg", "kid", "typ", "crit", "jku", "jwk", "x5c", "b64", "zip"])


@settings(max_examples=300, deadline=None)
@given(
    algorithm=st.sampled_from(ALGORITHM_SAMPLE),
    header=st.dictionaries(HEADER_NAMES, JSON_VALUES, max_size=6),
    pin=st.booleans(),
    payload=st.binary(max_size=64),
    signature=st.binary(max_size=160),
)
def test_well_formed_forgeries_are_invalid_tokens(
    algorithm: str, header: dict[str, Any], pin: bool, payload: bytes, signature: bytes
) -> None:
    """Correct kid and alg (when pinned), random signature of any length: always invalid."""
    keys = _PROPERTY_KEYS[algorithm]
    if pin:
        header = {**header, "alg": algorithm, "kid": "k"}
    with pytest.raises(InvalidTokenError):
        keys.verify(compact(header, payload, signature))


_GOOD_TOKEN = _PROPERTY_KEYS["HS256"].sign({"sub": "u", "exp": 1}, typ="JWT")


@settings(max_examples=300)
@given(position=st.integers(0, len(_GOOD_TOKEN) - 1), replacement=st.sampled_from(B64URL + "."))
def test_one_token_has_exactly_one_accepted_spelling(position: int, replacement: str) -> None:
    mutated = _GOOD_TOKEN[:position] + replacement + _GOOD_TOKEN[position + 1 :]
    if mutated == _GOOD_TOKEN:
        assert _PROPERTY_KEYS["HS256"].verify(mutated).claims() == {"sub": "u", "exp": 1}
    else:
        with pytest.raises(InvalidTokenError):
            _PROPERTY_KEYS["HS256"].verify(mutated)


def test_key_from_a_key_object_is_named_by_its_thumbprint(
    ec_private: ec.EllipticCurvePrivateKey,
) -> None:
    key = Key(ec_private, algorithm="ES256")
    assert key.kid == key.thumbprint() == Key(ec_private.public_key(), algorithm="ES256").kid
    with pytest.raises(ConfigurationError, match="kid"):
        Key(SECRET, algorithm="HS256")


JWK_MEMBERS = st.sampled_from(
    ["kty", "alg", "use", "key_ops", "kid", "crv", "x", "y", "d", "n", "e", "k", "p", "q"]
)
JWK_VALUES = st.one_of(
    st.sampled_from(["EC", "RSA", "OKP", "oct", "P-256", "Ed25519", "ES256", "HS256", "sig"]),
    st.text(alphabet=B64URL, max_size=90),
    JSON_VALUES,
)


@settings(max_examples=300, deadline=None)
@given(jwk=st.dictionaries(JWK_MEMBERS, JWK_VALUES, max_size=8))
def test_any_jwk_is_a_key_or_a_configuration_error(jwk: dict[str, Any]) -> None:
    try:
        key = Key.from_jwk(jwk)
    except ConfigurationError:
        return
    assert key.algorithm in SUPPORTED_ALGORITHMS


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=300),
    label=st.sampled_from(["PUBLIC KEY", "PRIVATE KEY", "EC PRIVATE KEY", "RSA PUBLIC KEY"]),
)
def test_any_pem_is_a_key_or_a_configuration_error(body: bytes, label: str) -> None:
    pem = (
        f"-----BEGIN {label}-----\n".encode()
        + base64.encodebytes(body)
        + f"-----END {label}-----\n".encode()
    )
    with pytest.raises(ConfigurationError):
        Key.from_pem(pem, algorithm="ES256")


_VALID_JWKS = [
    _PROPERTY_KEYS["ES256"].signing_key.to_private_jwk(),
    _PROPERTY_KEYS["EdDSA"].signing_key.to_private_jwk(),
    _PROPERTY_KEYS["HS256"].signing_key.to_private_jwk(),
]


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(_VALID_JWKS),
    changes=st.dictionaries(JWK_MEMBERS, JWK_VALUES, max_size=3),
    dropped=st.sets(JWK_MEMBERS, max_size=3),
)
def test_damaged_jwks_are_keys_or_configuration_errors(
    base: dict[str, Any], changes: dict[str, Any], dropped: set[str]
) -> None:
    jwk = {name: value for name, value in {**base, **changes}.items() if name not in dropped}
    try:
        key = Key.from_jwk(jwk)
    except ConfigurationError:
        return
    assert key.algorithm == jwk.get("alg", key.algorithm)


@pytest.mark.parametrize("alg", [None, 256, ["ES256"]])
def test_a_jwk_alg_that_is_not_a_string_is_refused(alg: object) -> None:
    jwk = {**_PROPERTY_KEYS["ES256"].signing_key.to_private_jwk(), "alg": alg}
    with pytest.raises(ConfigurationError, match="alg must be a string"):
        Key.from_jwk(jwk)


# --- the verified-header memo -------------------------------------------------------


def test_a_remembered_header_still_needs_its_key(hs_keys: KeySet) -> None:
    """Headers of verified tokens are remembered; the kid's key is looked up anew."""
    old = hs_keys.sign({"sub": "a"}, typ="at+jwt")
    hs_keys.verify(old)
    hs_keys.rotate(Key.from_secret(SECRET[::-1], kid="hs-2"))
    hs_keys.verify(old)  # hs-1 still verifies
    hs_keys.retire("hs-1")
    assert reason_of(hs_keys, old) == "unknown kid"


def test_a_forged_token_leaves_no_header_behind(hs_keys: KeySet) -> None:
    token = hs_keys.sign({"sub": "a"}, typ="at+jwt")
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{'A' * len(signature)}"
    with pytest.raises(InvalidTokenError):
        hs_keys.verify(forged)
    assert hs_keys._headers == {}
    hs_keys.verify(token)
    assert list(hs_keys._headers) == [header]


def test_a_caller_changing_the_header_changes_nothing_remembered(hs_keys: KeySet) -> None:
    token = hs_keys.sign({"sub": "a"}, typ="at+jwt")
    hs_keys.verify(token).header["typ"] = "JWT"
    assert hs_keys.verify(token).header["typ"] == "at+jwt"


def test_the_header_memo_is_bounded(hs_keys: KeySet) -> None:
    for index in range(200):
        hs_keys.verify(hs_keys.sign({"sub": "a"}, typ=f"t{index}+jwt"))
    assert 1 <= len(hs_keys._headers) <= 64
