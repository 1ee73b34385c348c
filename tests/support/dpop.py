"""A DPoP client for the tests: a key pair that signs proofs with PyJWT.

``proof(...)`` makes an honest proof; its keyword arguments make exactly one
thing about it wrong, as an attacker or a broken client would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

_UNSET: Any = object()

# RFC 9449 section 4.1 / figure 2, section 7.1 / figure 13 (line breaks removed),
# the key of both (figure 9) and the access token of section 7.1.
RFC9449_JWK = {
    "kty": "EC",
    "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
    "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    "crv": "P-256",
}
RFC9449_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
RFC9449_TOKEN_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNo"
    "UklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERW"
    "clUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0"
    "dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-F"
    "dWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC9449_TOKEN_PROOF_IAT = 1562262616
RFC9449_RESOURCE_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNo"
    "UklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERW"
    "clUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1"
    "IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwi"
    "YXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71E"
    "OptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
)
RFC9449_RESOURCE_PROOF_IAT = 1562262618
RFC9449_ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
RFC9449_ATH = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"

# RFC 7638, section 3.1.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPeb"
        "WKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368Q"
        "QMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2"
        "NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def independent_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 computed here, independently of the code under test."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    required = {name: jwk[name] for name in members[jwk["kty"]]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def independent_ath(token: str) -> str:
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


class DPoPClient:
    """A client's DPoP key pair (ES256 by default) and its proofs."""

    def __init__(self, algorithm: str = "ES256") -> None:
        self.algorithm = algorithm
        self.private_key: Any
        if algorithm == "ES256":
            self.private_key = ec.generate_private_key(ec.SECP256R1())
        elif algorithm == "ES384":
            self.private_key = ec.generate_private_key(ec.SECP384R1())
        elif algorithm == "EdDSA":
            self.private_key = ed25519.Ed25519PrivateKey.generate()
        else:
            self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        algorithm_object = jwt.get_algorithm_by_name(algorithm)
        public = algorithm_object.to_jwk(self.private_key.public_key(), as_dict=True)
        self.public_jwk: dict[str, Any] = dict(public)
        self.private_jwk: dict[str, Any] = dict(
            algorithm_object.to_jwk(self.private_key, as_dict=True)
        )
        self.jkt = independent_thumbprint(self.public_jwk)

    def proof(
        self,
        method: str,
        url: str,
        *,
        iat: float,
        access_token: str | None = None,
        nonce: str | None = None,
        jti: str | None = None,
        typ: str | None = "dpop+jwt",
        jwk: Any = _UNSET,
        algorithm: str | None = None,
        signing_key: Any = _UNSET,
        claims: dict[str, Any] | None = None,
        omit: tuple[str, ...] = (),
        headers: dict[str, Any] | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(12),
            "htm": method,
            "htu": url,
            "iat": iat,
        }
        if access_token is not None:
            payload["ath"] = independent_ath(access_token)
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update(claims or {})
        for name in omit:
            payload.pop(name, None)
        header: dict[str, Any] = {"typ": typ, "jwk": self.public_jwk if jwk is _UNSET else jwk}
        if jwk is None:
            del header["jwk"]
        header.update(headers or {})
        key = self.private_key if signing_key is _UNSET else signing_key
        return jwt.encode(payload, key, algorithm=algorithm or self.algorithm, headers=header)
