"""DPoP proofs (RFC 9449): key thumbprints, request URIs, server nonces, the checks.

No HTTP framework here: :class:`DPoPVerifier` takes the proof, the request's
method and URI and, at a resource, the access token and the key its ``cnf.jkt``
names. The JWS work is PyJWT's (``get_unverified_header``, ``PyJWK``,
``decode``); this module decides what a proof may contain.

What a proof must be, in the order it is checked (RFC 9449, section 4.3):

1. a string of at most ``max_proof_bytes``, a compact JWS PyJWT can parse;
2. ``typ`` exactly ``dpop+jwt``; no ``crit``;
3. ``alg`` in the verifier's allow-list of asymmetric algorithms (never
   ``none``, never HMAC: anyone who can verify an HMAC could forge it);
4. a ``jwk`` header that is a public key only (no ``d``, ``p``, ``k``...),
   of the key type and curve that ``alg`` needs (RSA of 2048 bits or more,
   public exponent in (2**16, 2**256));
5. a signature by that key;
6. claims ``jti`` (a string), ``htm`` equal to the request method, ``htu``
   equal to the request URI, both normalized (section 4.3, item 9: no query,
   no fragment, scheme and host lower case, default port dropped,
   percent-encoding and dot segments normalized), ``iat`` in
   ``[now - max_age, now + leeway]``;
7. with an access token: ``ath`` equal to base64url(SHA-256(token)) and the
   key's thumbprint equal to the token's ``cnf.jkt``;
8. with server nonces: a ``nonce`` claim that is current, else
   :class:`DPoPNonceError` carrying a fresh one (``use_dpop_nonce``);
9. last, so a refused proof burns nothing: its ``jti`` (scoped by key) not
   seen before within the window, through a :class:`DPoPReplayCache`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import (
    ConfigurationError,
    ErrorCode,
    InvalidTokenError,
    SecurityError,
)

if TYPE_CHECKING:
    from fastapi_secure.dpop.replay import DPoPReplayCache
    from fastapi_secure.tokens.claims import AccessClaims

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_MAX_PROOF_BYTES",
    "DPOP_TYP",
    "DPoPNonceError",
    "DPoPNonces",
    "DPoPProof",
    "DPoPVerifier",
    "InvalidDPoPProofError",
    "InvalidJWKError",
    "access_token_hash",
    "jwk_thumbprint",
    "normalize_htu",
    "refuse_if_bound",
]

DPOP_TYP = "dpop+jwt"
"""JOSE ``typ`` of a DPoP proof (RFC 9449, section 4.2)."""

DEFAULT_ALGORITHMS = (
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "PS256",
    "PS384",
    "PS512",
    "RS256",
    "RS384",
    "RS512",
)
"""Asymmetric algorithms a proof may use unless narrowed."""

DEFAULT_MAX_PROOF_BYTES = 4096
"""Longest proof accepted before parsing: room for an RSA-4096 key in ``jwk``."""

DEFAULT_MAX_AGE = 60.0
MAX_AGE_LIMIT = 300.0
"""Upper bound of ``max_age``: a proof older than five minutes is refused whatever the setting."""
DEFAULT_LEEWAY = 5.0
MAX_LEEWAY = 60.0
MAX_NONCE_LIFETIME = 3600.0
_MAX_JTI_LENGTH = 256
_MAX_URI_LENGTH = 2048
_MIN_RSA_BITS = 2048
# FIPS 186-5, section 5.4: 2**16 < e < 2**256. A client picks its own key; an
# exponent of thousands of bits makes each signature check some 30 times dearer
# (before any credential is checked, at a login that takes a proof).
_RSA_EXPONENTS = (2**16, 2**256)
_MIN_NONCE_SECRET_BYTES = 32
# Largest |iat| taken as a time: the integers JSON carries exactly (RFC 7493,
# section 2.2). Comparing with it never converts a huge integer to a float.
_MAX_TIME = 2**53

# Per algorithm: the JWK key type and the curves it accepts (None: not a curve key).
_KEY_FOR_ALG: dict[str, tuple[str, frozenset[str] | None]] = {
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    **dict.fromkeys(("PS256", "PS384", "PS512", "RS256", "RS384", "RS512"), ("RSA", None)),
}
# RFC 7638, section 3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}
# Private or secret members of every JWK key type (RFC 7518, section 6; RFC 8037).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_HEX = "0123456789ABCDEF"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# RFC 3986 path characters: pchar and "/", with "%" for the triplets checked separately.
_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
_REG_NAME = re.compile(r"[a-z0-9\-._~]+")
_IPV6 = re.compile(r"[0-9a-f:.]+")


class InvalidJWKError(SecurityError, ValueError):
    """A JWK that is not a usable public key description."""


class InvalidDPoPProofError(InvalidTokenError):
    """The DPoP proof is missing, malformed, forged, stale, replayed or not for
    this request (401, ``WWW-Authenticate: DPoP error="invalid_dpop_proof"``).

    The message is generic; ``reason`` says which check failed.
    """

    default_message = "invalid DPoP proof"
    default_challenge_error = "invalid_dpop_proof"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        reason: str | None = None,
        scheme: str = "DPoP",
        challenge_error: str | None = None,
    ) -> None:
        super().__init__(
            message, code=code, reason=reason, scheme=scheme, challenge_error=challenge_error
        )


class DPoPNonceError(InvalidDPoPProofError):
    """The proof lacks the server's current nonce (401 ``use_dpop_nonce``).

    ``nonce`` is that nonce, for the ``DPoP-Nonce`` header of the answer; the
    client retries with it (RFC 9449, section 9).
    """

    default_message = "a fresh DPoP nonce is required"
    default_challenge_error = "use_dpop_nonce"

    def __init__(self, nonce: str, *, reason: str | None = None) -> None:
        super().__init__(reason=reason)
        self.nonce = nonce


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of ``jwk``, base64url without padding.

    Only the required members of the key type count (RFC 7638, section 3.2),
    so ``kid``, ``alg`` or ``use`` do not change it. Raises
    :class:`InvalidJWKError` for an unknown ``kty`` or a missing member.
    """
    if not isinstance(jwk, Mapping):
        raise InvalidJWKError("a JWK must be a mapping")
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise InvalidJWKError("unsupported or missing kty")
    required = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidJWKError(f"the JWK lacks its {name!r} member")
        required[name] = value
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return _b64encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim for ``access_token``: base64url(SHA-256(ASCII token))."""
    return _b64encode(hashlib.sha256(access_token.encode("ascii")).digest())


def _normalize_path(path: str) -> str:
    if not _PATH.fullmatch(path):
        raise ValueError("the path has characters a URI cannot hold")
    # RFC 3986, section 6.2.2.2: upper-case hex, decode unreserved characters.
    pieces = path.split("%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        code = piece[:2].upper()
        if len(code) < 2 or code[0] not in _HEX or code[1] not in _HEX:
            raise ValueError("malformed percent-encoding")
        char = chr(int(code, 16))
        out.append((char if char in _UNRESERVED else f"%{code}") + piece[2:])
    return _remove_dot_segments("".join(out)) or "/"


def _remove_dot_segments(path: str) -> str:
    # RFC 3986, section 5.2.4, over segments.
    segments = path.split("/")
    result: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                result.append("")
        elif segment == "..":
            if len(result) > 1:
                result.pop()
            if last:
                result.append("")
        else:
            result.append(segment)
    return "/".join(result)


def normalize_htu(uri: str) -> str:
    """``uri`` as DPoP compares it (RFC 9449, section 4.3, item 9).

    Query and fragment are dropped; scheme and host lower-cased; the default
    port (80 for http, 443 for https) dropped; percent-encoding and dot
    segments normalized (RFC 3986, sections 6.2.2 and 6.2.3); an empty path
    becomes ``/``. Raises ``ValueError`` for anything but an absolute http(s)
    URI, for user info and for characters no URI may hold.
    """
    if not isinstance(uri, str) or len(uri) > _MAX_URI_LENGTH or not uri.isascii():
        raise ValueError("not an ASCII URI of bounded length")
    if any(char <= " " or char == "\x7f" for char in uri):
        raise ValueError("spaces or control characters in the URI")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("not an http or https URI")
    if "@" in parts.netloc:
        raise ValueError("user information in the URI")
    host = parts.hostname or ""
    if parts.netloc.startswith("["):
        if not _IPV6.fullmatch(host):
            raise ValueError("malformed IPv6 host")
        host = f"[{host}]"
    elif not _REG_NAME.fullmatch(host):
        raise ValueError("malformed host")
    port = parts.port  # ValueError when out of range or not a number
    if port is not None and port != (80 if scheme == "http" else 443):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{_normalize_path(parts.path)}"


@dataclass(frozen=True)
class DPoPProof:
    """A proof that passed every check: the key's thumbprint and the claims."""

    jkt: str
    """RFC 7638 thumbprint of the proof's key: what ``cnf.jkt`` binds to."""
    jti: str
    htm: str
    htu: str
    iat: float
    algorithm: str
    nonce: str | None = None
    ath: str | None = None
    public_jwk: Mapping[str, Any] = field(default_factory=dict, repr=False)


class DPoPNonces:
    """Server nonces (RFC 9449, section 8), stateless and shared by every worker.

    A nonce names a time window of ``lifetime`` seconds and carries an HMAC
    of it under ``secret``: every process with the same secret issues and
    accepts the same nonces, without a store. :meth:`current` rotates with
    the window; :meth:`is_current` accepts the current window and the one
    before, so a nonce lives between ``lifetime`` and twice that.
    """

    _CONTEXT: ClassVar[bytes] = b"fastapi-secure/dpop-nonce/v1\x00"

    def __init__(
        self,
        secret: str | bytes,
        *,
        lifetime: float = 300.0,
        clock: Clock = system_clock,
    ) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < _MIN_NONCE_SECRET_BYTES:
            raise ConfigurationError(
                f"the DPoP nonce secret must be at least {_MIN_NONCE_SECRET_BYTES} bytes"
            )
        if (
            isinstance(lifetime, bool)
            or not isinstance(lifetime, (int, float))
            or not 10 <= lifetime <= MAX_NONCE_LIFETIME
        ):
            raise ConfigurationError(
                f"lifetime must be between 10 and {MAX_NONCE_LIFETIME:g} seconds"
            )
        self._key = key
        self._lifetime = float(lifetime)
        self._clock = clock

    def __repr__(self) -> str:
        return f"DPoPNonces(lifetime={self._lifetime:g})"

    def _window(self) -> int:
        return math.floor(self._clock() / self._lifetime)

    def _nonce(self, window: int) -> str:
        counter = struct.pack(">q", window)
        mac = hmac.new(self._key, self._CONTEXT + counter, hashlib.sha256).digest()[:16]
        return _b64encode(counter + mac)

    def current(self) -> str:
        """The nonce to hand out now (the ``DPoP-Nonce`` header value)."""
        return self._nonce(self._window())

    def is_current(self, nonce: object) -> bool:
        """Whether ``nonce`` is the current one or the one just before it."""
        if not isinstance(nonce, str) or len(nonce) > 64 or not nonce.isascii():
            # compare_digest refuses non-ASCII text (TypeError): no nonce of ours has any.
            return False
        window = self._window()
        # Both compared, always: the answer takes the same time whichever matches.
        now = hmac.compare_digest(nonce, self._nonce(window))
        before = hmac.compare_digest(nonce, self._nonce(window - 1))
        return now or before


def _seconds(name: str, value: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low:g} and {high:g} seconds")
    return float(value)


def _refuse(reason: str) -> InvalidDPoPProofError:
    return InvalidDPoPProofError(reason=reason)


class DPoPVerifier:
    """Checks DPoP proofs; see the module docstring for every check and its order.

    ``max_age`` (default 60 s, at most 300) is how old a proof's ``iat`` may
    be, ``leeway`` (default 5 s, at most 60) how far in the future. The
    replay cache (default: an in-memory one on ``clock``, one process only)
    remembers each accepted ``jti`` for that window; several workers need a
    shared one (:class:`~fastapi_secure.dpop.RedisDPoPReplayCache`). With
    ``nonces``, every proof must carry a current server nonce.
    """

    def __init__(
        self,
        *,
        replay_cache: DPoPReplayCache | None = None,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        max_age: float = DEFAULT_MAX_AGE,
        leeway: float = DEFAULT_LEEWAY,
        nonces: DPoPNonces | None = None,
        clock: Clock = system_clock,
        max_proof_bytes: int = DEFAULT_MAX_PROOF_BYTES,
    ) -> None:
        from fastapi_secure.dpop.replay import DPoPReplayCache, MemoryDPoPReplayCache

        if isinstance(algorithms, str):
            raise ConfigurationError("algorithms must be a collection of algorithm names")
        chosen = tuple(dict.fromkeys(algorithms))
        unsupported = [alg for alg in chosen if alg not in _KEY_FOR_ALG]
        if unsupported or not chosen:
            raise ConfigurationError(
                f"DPoP proofs take only asymmetric algorithms among {', '.join(_KEY_FOR_ALG)}; "
                f"refused: {unsupported or 'an empty list'}"
            )
        if replay_cache is not None and not isinstance(replay_cache, DPoPReplayCache):
            raise ConfigurationError("replay_cache must implement the DPoPReplayCache protocol")
        if nonces is not None and not isinstance(nonces, DPoPNonces):
            raise ConfigurationError("nonces must be a DPoPNonces")
        if (
            isinstance(max_proof_bytes, bool)
            or not isinstance(max_proof_bytes, int)
            or not 512 <= max_proof_bytes <= 16384
        ):
            raise ConfigurationError("max_proof_bytes must be an int between 512 and 16384")
        self._algorithms = chosen
        self._max_age = _seconds("max_age", max_age, 1, MAX_AGE_LIMIT)
        self._leeway = _seconds("leeway", leeway, 0, MAX_LEEWAY)
        self._clock = clock
        self._nonces = nonces
        self._max_proof_bytes = max_proof_bytes
        # "is None", not "or": an empty cache is falsy (it has a length).
        self._replay = MemoryDPoPReplayCache(clock=clock) if replay_cache is None else replay_cache

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The accepted ``alg`` values (for ``WWW-Authenticate: DPoP algs=``)."""
        return self._algorithms

    @property
    def nonces(self) -> DPoPNonces | None:
        return self._nonces

    @property
    def replay_cache(self) -> DPoPReplayCache:
        return self._replay

    @property
    def max_age(self) -> float:
        return self._max_age

    @property
    def leeway(self) -> float:
        return self._leeway

    async def verify(
        self,
        proof: str,
        *,
        method: str,
        uri: str,
        access_token: str | None = None,
        jkt: str | None = None,
    ) -> DPoPProof:
        """Check ``proof`` for a request of ``method`` to ``uri`` and record its ``jti``.

        ``access_token`` (at a resource) requires a matching ``ath``; ``jkt``
        (the token's ``cnf.jkt``) requires the proof's key to be that key.
        Raises :class:`InvalidDPoPProofError` (or :class:`DPoPNonceError`);
        a replay cache that cannot answer raises
        :class:`~fastapi_secure.errors.StoreUnavailableError`.
        """
        checked = self.check(proof, method=method, uri=uri, access_token=access_token, jkt=jkt)
        # Keyed by the proof's key too: one client's jti cannot collide with another's.
        scoped = hashlib.sha256(
            b"fastapi-secure/dpop-jti\x00"
            + checked.jkt.encode("ascii")
            + b"\x00"
            + checked.jti.encode("utf-8", "surrogatepass")
        ).hexdigest()
        # Remembered until the proof could no longer pass the iat check anyway.
        ttl = max(1.0, checked.iat + self._max_age - self._clock() + 1)
        if not await self._replay.remember(scoped, ttl):
            raise _refuse("jti replayed")
        return checked

    def check(
        self,
        proof: str,
        *,
        method: str,
        uri: str,
        access_token: str | None = None,
        jkt: str | None = None,
    ) -> DPoPProof:
        """Every check of :meth:`verify` but the replay cache; records nothing."""
        if not isinstance(proof, str) or not proof:
            raise _refuse("no proof")
        if len(proof) > self._max_proof_bytes or not proof.isascii():
            raise _refuse("proof too long or not ASCII")
        header = self._header(proof)
        algorithm = header["alg"]
        public_jwk = self._public_jwk(header["jwk"], algorithm)
        claims = self._claims(proof, public_jwk, algorithm)
        proof_jkt = jwk_thumbprint(public_jwk)
        checked = DPoPProof(
            jkt=proof_jkt,
            jti=claims["jti"],
            htm=claims["htm"],
            htu=claims["htu"],
            iat=claims["iat"],
            algorithm=algorithm,
            nonce=claims.get("nonce"),
            ath=claims.get("ath"),
            public_jwk=public_jwk,
        )
        self._check_request(checked, method, uri)
        self._check_binding(checked, access_token, jkt)
        if self._nonces is not None and not self._nonces.is_current(checked.nonce):
            raise DPoPNonceError(
                self._nonces.current(),
                reason="nonce missing" if checked.nonce is None else "nonce stale or unknown",
            )
        return checked

    def _header(self, proof: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.PyJWTError:
            raise _refuse("not a compact JWS") from None
        if header.get("typ") != DPOP_TYP:
            raise _refuse("typ is not dpop+jwt")
        if "crit" in header:
            raise _refuse("crit header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise _refuse("alg not allowed")
        if not isinstance(header.get("jwk"), dict):
            raise _refuse("no jwk header")
        return header

    @staticmethod
    def _public_jwk(jwk: dict[str, Any], algorithm: str) -> dict[str, Any]:
        if not _PRIVATE_MEMBERS.isdisjoint(jwk):
            raise _refuse("jwk holds private key material")
        kty, curves = _KEY_FOR_ALG[algorithm]
        if jwk.get("kty") != kty:
            raise _refuse("jwk key type does not fit alg")
        crv = jwk.get("crv")
        if curves is not None and not (isinstance(crv, str) and crv in curves):
            raise _refuse("jwk curve does not fit alg")
        declared = jwk.get("alg")
        if declared is not None and declared != algorithm:
            raise _refuse("jwk alg differs from the proof's alg")
        return jwk

    def _claims(self, proof: str, jwk: dict[str, Any], algorithm: str) -> dict[str, Any]:
        try:
            key = jwt.PyJWK(jwk, algorithm=algorithm)
            if isinstance(key.key, rsa.RSAPublicKey):
                if key.key.key_size < _MIN_RSA_BITS:
                    raise _refuse("RSA key shorter than 2048 bits")
                if not _RSA_EXPONENTS[0] < key.key.public_numbers().e < _RSA_EXPONENTS[1]:
                    raise _refuse("RSA public exponent outside (2**16, 2**256)")
            claims = jwt.decode(
                proof,
                key=key,
                algorithms=[algorithm],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except InvalidDPoPProofError:
            raise
        except jwt.InvalidSignatureError:
            raise _refuse("signature does not verify with the jwk") from None
        except Exception as exc:
            # Whatever an untrusted key or payload makes PyJWT or cryptography
            # raise, it is a bad proof: a 401, never a 500.
            raise _refuse(f"unusable jwk or payload ({type(exc).__name__})") from None
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI_LENGTH:
            raise _refuse("jti missing or not a short string")
        for name in ("htm", "htu"):
            if not isinstance(claims.get(name), str):
                raise _refuse(f"{name} missing or not a string")
        iat = claims.get("iat")
        if (
            isinstance(iat, bool)
            or not isinstance(iat, (int, float))
            or not -_MAX_TIME <= iat <= _MAX_TIME  # NaN fails too; no float(huge int)
        ):
            raise _refuse("iat missing or not a number")
        for name in ("nonce", "ath"):
            if name in claims and not isinstance(claims[name], str):
                raise _refuse(f"{name} not a string")
        return claims

    def _check_request(self, proof: DPoPProof, method: str, uri: str) -> None:
        if proof.htm != method:
            raise _refuse("htm is not the request method")
        try:
            htu = normalize_htu(proof.htu)
        except ValueError:
            raise _refuse("htu is not an http(s) URI") from None
        try:
            expected = normalize_htu(uri)
        except ValueError:
            raise _refuse("request URI cannot be normalized") from None
        if htu != expected:
            raise _refuse("htu is not the request URI")
        now = self._clock()
        if proof.iat < now - self._max_age:
            raise _refuse("iat too old")
        if proof.iat > now + self._leeway:
            raise _refuse("iat in the future")

    @staticmethod
    def _check_binding(proof: DPoPProof, access_token: str | None, jkt: str | None) -> None:
        if access_token is not None:
            if proof.ath is None:
                raise _refuse("ath missing")
            try:
                expected = access_token_hash(access_token)
            except UnicodeEncodeError:
                raise _refuse("access token is not ASCII") from None
            if not hmac.compare_digest(proof.ath.encode(), expected.encode()):
                raise _refuse("ath is not the hash of the access token")
        if jkt is not None and not hmac.compare_digest(proof.jkt.encode(), jkt.encode()):
            raise _refuse("proof key is not the token's cnf.jkt")


def refuse_if_bound(claims: AccessClaims) -> None:
    """Raise :class:`~fastapi_secure.errors.InvalidTokenError` if ``claims`` come
    from a DPoP-bound token: a bound token presented as a plain bearer token is
    refused (RFC 9449, section 7.2), or a thief could drop the proof."""
    if getattr(claims, "cnf", None) is not None:
        raise InvalidTokenError(reason="DPoP-bound token presented without DPoP")
