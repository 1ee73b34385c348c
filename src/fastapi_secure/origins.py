"""Web origins (RFC 6454) as browsers send them, parsed in one place.

CORS allow-lists, the cookie transport's Origin check and the docs pages'
asset policy all compare origins; they share these two functions so that an
origin means the same thing everywhere.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from fastapi_secure.errors import ConfigurationError

__all__ = ["DEFAULT_PORTS", "normalize_origin", "origin_of"]

DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL, lowercased, default port
    dropped; None for anything else (a relative URL, another scheme, credentials)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def normalize_origin(origin: str, *, what: str = "origin") -> str:
    """``origin`` in the form browsers send, or :class:`ConfigurationError`.

    For configuration: a path (other than ``/``), a query, a fragment, ``*``
    or a non-http(s) scheme is refused rather than silently dropped.
    """
    normalized = origin_of(origin)
    parts = urlsplit(origin.strip())
    if normalized is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(
            f"{what} {origin!r} must look like https://host[:port] (no '*', no path)"
        )
    return normalized
