"""Strict CORS: checked settings turned into Starlette's own ``CORSMiddleware``.

:class:`CORSPolicy` does not reimplement CORS; it refuses settings that would
let other sites make credentialed requests, then configures Starlette's
middleware with them.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.origins import origin_of

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from fastapi_secure.settings import SecuritySettings

__all__ = ["DEFAULT_METHODS", "RATE_LIMIT_HEADERS", "CORSPolicy"]

DEFAULT_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
"""Methods allowed by default: an API's own. The origin allow-list is what keeps
other sites out; a method list only narrows what the allowed origins may do."""

RATE_LIMIT_HEADERS: Final = ("RateLimit", "RateLimit-Policy", "Retry-After")
"""Response headers every :class:`CORSPolicy` exposes to browser scripts."""

# Origins no allow-list should match; a regex that matches them is a catch-all.
_PROBE_ORIGINS = (
    "https://attacker.invalid",
    "http://attacker.invalid",
    "https://evil.example.attacker.invalid",
    "null",
)


def _strings(name: str, values: Collection[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ConfigurationError(f"{name} must be a list of strings, not one string")
    return tuple(values)


@dataclass(frozen=True)
class CORSPolicy:
    """Checked CORS settings, turned into Starlette's ``CORSMiddleware``.

    Deny by default: with no ``allow_origins`` no cross-origin request is
    allowed. Refused with :class:`ConfigurationError`: ``"*"`` together with
    ``allow_credentials``; ``allow_origin_regex`` together with
    ``allow_credentials`` unless ``trust_origin_regex_with_credentials=True``
    (a regex such as ``https://.*example[.]com`` or an unescaped dot also
    admits ``https://attackerexample.com``; an explicit list cannot go wrong
    that way), and a catch-all regex even then; the ``"null"`` origin
    (sandboxed frames and ``file:`` pages share it), and origins that a
    browser never sends (a path, a trailing slash, upper case).
    :data:`RATE_LIMIT_HEADERS` are always exposed.
    """

    allow_origins: Collection[str] = ()
    allow_methods: Collection[str] = DEFAULT_METHODS
    allow_headers: Collection[str] = ()
    allow_credentials: bool = False
    allow_origin_regex: str | None = None
    expose_headers: Collection[str] = ()
    max_age: int = 600
    trust_origin_regex_with_credentials: bool = False
    _exposed: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        origins = _strings("allow_origins", self.allow_origins)
        object.__setattr__(self, "allow_origins", origins)
        object.__setattr__(self, "allow_methods", _strings("allow_methods", self.allow_methods))
        object.__setattr__(self, "allow_headers", _strings("allow_headers", self.allow_headers))
        expose = _strings("expose_headers", self.expose_headers)
        object.__setattr__(self, "expose_headers", expose)
        exposed = {h.lower(): h for h in (*RATE_LIMIT_HEADERS, *expose)}
        object.__setattr__(self, "_exposed", tuple(exposed.values()))
        for origin in origins:
            if origin == "*":
                continue
            if origin == "null":
                raise ConfigurationError(
                    "the 'null' origin is shared by sandboxed frames and local files; "
                    "never allow it"
                )
            if origin_of(origin) != origin:
                raise ConfigurationError(
                    f"{origin!r} is not an origin as browsers send it: scheme://host[:port] "
                    "in lower case, without path or trailing slash"
                )
        if "*" in origins:
            if len(origins) > 1:
                raise ConfigurationError("'*' already allows every origin; list origins instead")
            if self.allow_credentials:
                raise ConfigurationError(
                    "allow_origins=['*'] with allow_credentials=True lets any site make "
                    "credentialed requests; list the allowed origins instead"
                )
        if self.allow_origin_regex is not None:
            try:
                pattern = re.compile(self.allow_origin_regex)
            except re.error as exc:
                raise ConfigurationError(f"allow_origin_regex is invalid: {exc}") from exc
            if self.allow_credentials and not self.trust_origin_regex_with_credentials:
                raise ConfigurationError(
                    "allow_origin_regex with allow_credentials=True is refused: a small "
                    "mistake in the regex lets other sites make credentialed requests. "
                    "List the origins in allow_origins, or pass "
                    "trust_origin_regex_with_credentials=True after reviewing the regex"
                )
            if self.allow_credentials and any(pattern.fullmatch(o) for o in _PROBE_ORIGINS):
                raise ConfigurationError(
                    "allow_origin_regex matches unrelated origins (it is a catch-all); "
                    "with allow_credentials=True anchor it to your own domains"
                )
        if self.max_age < 0:
            raise ConfigurationError("max_age must not be negative")

    @classmethod
    def from_settings(cls, settings: SecuritySettings, **options: Any) -> CORSPolicy:
        """Origins and credentials from ``settings``; methods etc. from ``options``."""
        return cls(
            allow_origins=settings.cors_allow_origins,
            allow_credentials=settings.cors_allow_credentials,
            **options,
        )

    def options(self) -> dict[str, Any]:
        """Keyword arguments of Starlette's ``CORSMiddleware``."""
        return {
            "allow_origins": self.allow_origins,
            "allow_methods": self.allow_methods,
            "allow_headers": self.allow_headers,
            "allow_credentials": self.allow_credentials,
            "allow_origin_regex": self.allow_origin_regex,
            "expose_headers": self._exposed,
            "max_age": self.max_age,
        }

    def middleware(self) -> Middleware:
        """For ``FastAPI(middleware=[...])``."""
        return Middleware(_ExplainedCORSMiddleware, **self.options())

    def install(self, app: Starlette) -> None:
        """``app.add_middleware(CORSMiddleware, ...)`` with these settings."""
        app.add_middleware(_ExplainedCORSMiddleware, **self.options())


_HINTS: Final = (
    ("origin", "allow_origins"),
    ("method", "allow_methods"),
    ("headers", "allow_headers"),
)


class _ExplainedCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware; a refused preflight also names the setting to change."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        text = bytes(response.body).decode()
        settings = [setting for word, setting in _HINTS if word in text]
        hint = " or ".join(f"CORSPolicy({setting}=[...])" for setting in settings)
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        return PlainTextResponse(f"{text}; allow it with {hint}", status_code=400, headers=headers)
