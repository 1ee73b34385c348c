"""Content Security Policy: a typed policy builder and per-request nonces.

:class:`ContentSecurityPolicy` validates directives and sources when it is
built, and renders its header value with a fresh nonce in place of
:data:`CSP_NONCE`. :mod:`fastapi_secure.headers` sends it;
:mod:`fastapi_secure.apidocs` renders the docs pages under it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from fastapi_secure.errors import ConfigurationError

__all__ = ["CSP_NONCE", "NONCE_BYTES", "NONCE_SCOPE_KEY", "STRICT_API_CSP", "ContentSecurityPolicy"]

CSP_NONCE: Final = "'nonce'"
"""Placeholder source: replaced by ``'nonce-<fresh value>'`` on every request."""

NONCE_BYTES: Final = 18
"""Random bytes per nonce: 144 bits, base64url-encoded without padding."""

NONCE_SCOPE_KEY: Final = "fastapi_secure.csp_nonce"

_DIRECTIVE = re.compile(r"[a-z][a-z0-9-]*")
# A CSP source: visible ASCII without the separators that would end the
# directive (;) or start another policy (,); quotes only around a keyword.
_SOURCE = re.compile(r"'[A-Za-z0-9+/=_-]+'|[!#-&(-+\--:<-~]+")
_BARE_KEYWORDS = frozenset(
    {
        "self",
        "none",
        "unsafe-inline",
        "unsafe-eval",
        "unsafe-hashes",
        "strict-dynamic",
        "wasm-unsafe-eval",
        "report-sample",
    }
)


class ContentSecurityPolicy:
    """An immutable Content-Security-Policy, checked when it is built.

    ``directives`` maps a directive name (``"script-src"``) to its sources, in
    order. Every source is checked: a CR, LF, ``;`` or ``,`` (which would let a
    value end the directive or start a new policy) is refused, so are a bare
    ``self`` / ``none`` (a host name, almost always a missing pair of quotes), a
    fixed ``'nonce-...'`` and ``'none'`` beside other sources. Put the
    :data:`CSP_NONCE` placeholder where a per-request nonce belongs.
    """

    __slots__ = ("_directives", "_parts")

    def __init__(self, directives: Mapping[str, Iterable[str]]) -> None:
        checked: dict[str, tuple[str, ...]] = {}
        for name, sources in directives.items():
            if not isinstance(name, str) or not _DIRECTIVE.fullmatch(name):
                raise ConfigurationError(f"{name!r} is not a CSP directive name")
            if isinstance(sources, str):
                raise ConfigurationError(
                    f"the sources of {name!r} must be a list of strings, not one string"
                )
            values = tuple(sources)
            for source in values:
                self._check_source(name, source)
            if "'none'" in values and len(values) > 1:
                raise ConfigurationError(f"{name!r}: 'none' cannot be combined with other sources")
            checked[name] = values
        if not checked:
            raise ConfigurationError("a Content-Security-Policy needs at least one directive")
        self._directives = checked
        text = "; ".join(" ".join((name, *values)) for name, values in checked.items())
        # Split once at the placeholder so rendering a nonce is a single join; a
        # quote can only open or close a whole keyword, so the split is exact.
        self._parts = tuple(text.split(CSP_NONCE))

    @staticmethod
    def _check_source(directive: str, source: object) -> None:
        if not isinstance(source, str) or not _SOURCE.fullmatch(source):
            raise ConfigurationError(
                f"{directive!r}: {source!r} is not a valid CSP source (no whitespace, "
                "CR, LF, ';', ',' or stray quotes)"
            )
        if source.lower() in _BARE_KEYWORDS:
            raise ConfigurationError(
                f"{directive!r}: {source!r} is read as a host name; write \"'{source}'\""
            )
        if source.lower().startswith("'nonce-"):
            raise ConfigurationError(
                f"{directive!r}: a fixed nonce defeats its purpose; use CSP_NONCE for a "
                "fresh nonce per request"
            )

    @property
    def directives(self) -> Mapping[str, tuple[str, ...]]:
        """The directives and their sources (a copy)."""
        return dict(self._directives)

    @property
    def uses_nonce(self) -> bool:
        """Whether the policy contains :data:`CSP_NONCE`."""
        return len(self._parts) > 1

    def with_directive(self, name: str, *sources: str) -> ContentSecurityPolicy:
        """A copy with ``name`` set to ``sources`` (added or replaced)."""
        merged = dict(self._directives)
        merged[name] = sources
        return ContentSecurityPolicy(merged)

    def without_directive(self, name: str) -> ContentSecurityPolicy:
        """A copy without ``name``."""
        return ContentSecurityPolicy({k: v for k, v in self._directives.items() if k != name})

    def header_value(self, nonce: str | None = None) -> str:
        """The header value, with ``nonce`` in place of :data:`CSP_NONCE`."""
        if len(self._parts) == 1:
            return self._parts[0]
        if nonce is None or not re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", nonce):
            raise ConfigurationError("this policy uses a nonce: pass a base64 nonce")
        return f"'nonce-{nonce}'".join(self._parts)

    def _render(self, nonce: str) -> bytes:
        # For nonces generated here: no need to check their alphabet again.
        return f"'nonce-{nonce}'".join(self._parts).encode("ascii")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContentSecurityPolicy):
            return NotImplemented
        return self._directives == other._directives

    def __hash__(self) -> int:
        return hash(tuple(self._directives.items()))

    def __repr__(self) -> str:
        return f"ContentSecurityPolicy({CSP_NONCE.join(self._parts)!r})"


STRICT_API_CSP: Final = ContentSecurityPolicy(
    {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}
)
"""The default for API responses: nothing may load, nothing may frame them."""
