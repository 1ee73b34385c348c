"""DPoP, sender-constrained tokens (RFC 9449).

A client holds a key pair and signs a small JWT, the *proof*, for each
request. At login the issuer binds the session to that key
(``cnf.jkt``); afterwards a stolen access or refresh token is useless
without the private key.

- :mod:`fastapi_secure.dpop.proofs` (no HTTP): :func:`jwk_thumbprint`,
  :func:`access_token_hash`, :func:`normalize_htu`, :class:`DPoPVerifier`,
  :class:`DPoPNonces`, :func:`refuse_if_bound` and the errors;
- :mod:`fastapi_secure.dpop.replay` (no HTTP): :class:`DPoPReplayCache`,
  memory and Redis;
- :mod:`fastapi_secure.dpop.http`: :class:`DPoPAuth`, the FastAPI
  dependency, imported on first use so the core imports no web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi_secure.dpop.proofs import (
    DEFAULT_ALGORITHMS,
    DEFAULT_MAX_PROOF_BYTES,
    DPOP_TYP,
    DPoPNonceError,
    DPoPNonces,
    DPoPProof,
    DPoPVerifier,
    InvalidDPoPProofError,
    InvalidJWKError,
    access_token_hash,
    jwk_thumbprint,
    normalize_htu,
    refuse_if_bound,
)
from fastapi_secure.dpop.replay import (
    DPoPReplayCache,
    MemoryDPoPReplayCache,
    RedisDPoPReplayCache,
)

if TYPE_CHECKING:
    from fastapi_secure.dpop.http import DPoPAuth

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_MAX_PROOF_BYTES",
    "DPOP_TYP",
    "DPoPAuth",
    "DPoPNonceError",
    "DPoPNonces",
    "DPoPProof",
    "DPoPReplayCache",
    "DPoPVerifier",
    "InvalidDPoPProofError",
    "InvalidJWKError",
    "MemoryDPoPReplayCache",
    "RedisDPoPReplayCache",
    "access_token_hash",
    "jwk_thumbprint",
    "normalize_htu",
    "refuse_if_bound",
]


def __getattr__(name: str) -> Any:
    if name == "DPoPAuth":
        from fastapi_secure.dpop.http import DPoPAuth

        return DPoPAuth
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
