"""The client's address, trusting forwarding headers only from configured proxies.

Without ``trusted_proxies`` the client is the socket peer and every
``X-Forwarded-For`` / ``Forwarded`` / ``X-Forwarded-Proto`` header is ignored:
a client cannot choose its own address. With trusted proxies configured (as
CIDRs), the chain of addresses is walked from right (nearest) to left and the
first hop that is not a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Literal

from starlette.types import Scope

from fastapi_secure.errors import ConfigurationError

__all__ = ["IPAddress", "IPNetwork", "TrustedProxies"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ForwardedHeader = Literal["x-forwarded-for", "forwarded"]


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip().strip('"')
    if not text or len(text) > 64:
        return None
    if text.startswith("["):  # "[2001:db8::1]:4711" (Forwarded, RFC 7239)
        end = text.find("]")
        if end == -1:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _header_values(scope: Scope, name: bytes) -> list[str]:
    values = []
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            values.append(value.decode("latin-1"))
    return values


def _forwarded_elements(values: Sequence[str]) -> list[dict[str, str]]:
    """Parameters of each RFC 7239 ``Forwarded`` element, left to right.

    Deliberately not quote-aware: an unbalanced quote sent by a client must not
    swallow the elements that the trusted proxies append after it.
    """
    elements: list[dict[str, str]] = []
    for value in values:
        for element in value.split(","):
            params: dict[str, str] = {}
            for pair in element.split(";"):
                key, _, item = pair.strip().partition("=")
                params[key.strip().lower()] = item.strip()
            elements.append(params)
    return elements


class TrustedProxies:
    """Resolves the client address and scheme of a request.

    Args:
        networks: CIDRs (or single addresses) of the reverse proxies in front of
            the app. Empty (the default): forwarding headers are ignored.
        header: which forwarding header the proxies set: ``"x-forwarded-for"``
            (default) or ``"forwarded"`` (RFC 7239). Only that one is read.
        max_hops: longest forwarding chain examined; a longer one is cut to its
            nearest hops, so a client cannot make each request costly.
        trust_unix_socket: treat a connection without a peer address (the app
            served on a unix socket, ``uvicorn --uds``, behind a proxy) as coming
            from a trusted proxy. Only when nothing but the proxy can reach the
            socket; otherwise every client would count as one.
    """

    def __init__(
        self,
        networks: Iterable[str | IPNetwork] = (),
        *,
        header: ForwardedHeader = "x-forwarded-for",
        max_hops: int = 20,
        trust_unix_socket: bool = False,
    ) -> None:
        if isinstance(networks, str):
            # One CIDR given bare; iterating it would yield single characters.
            networks = [networks]
        parsed: list[IPNetwork] = []
        for network in networks:
            try:
                parsed.append(ipaddress.ip_network(network, strict=False))
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"trusted proxy {network!r} is not an IP network") from exc
            if parsed[-1].prefixlen == 0:
                # Every hop would be trusted, so the client's own leftmost entry would win.
                raise ConfigurationError(
                    f"trusting {network!r} (every address) would let any client choose its IP"
                )
        if header not in ("x-forwarded-for", "forwarded"):
            raise ConfigurationError("header must be 'x-forwarded-for' or 'forwarded'")
        if max_hops < 1:
            raise ConfigurationError("max_hops must be at least 1")
        self.networks: tuple[IPNetwork, ...] = tuple(parsed)
        self.header: ForwardedHeader = header
        self.max_hops = max_hops
        self.trust_unix_socket = bool(trust_unix_socket)

    def __repr__(self) -> str:
        networks = [str(n) for n in self.networks]
        unix = ", trust_unix_socket=True" if self.trust_unix_socket else ""
        return f"TrustedProxies({networks!r}, header={self.header!r}{unix})"

    def is_trusted(self, address: IPAddress | None) -> bool:
        """Whether ``address`` belongs to a trusted proxy network.

        ``None`` (no peer address: a unix socket) is trusted only with
        ``trust_unix_socket=True``.
        """
        if address is None:
            return self.trust_unix_socket
        return any(address in network for network in self.networks)

    def peer(self, scope: Scope) -> IPAddress | None:
        """The socket peer of the connection, or None when the server gave none."""
        client = scope.get("client")
        if not client:
            return None
        return _parse_ip(str(client[0]))

    def client_ip(self, scope: Scope) -> IPAddress | None:
        """The address of the client that made the request.

        The socket peer, unless the peer is a trusted proxy; then the
        forwarding chain is walked right to left and the first untrusted hop
        wins. An unparsable hop stops the walk at the last trusted address, so
        garbage cannot inject an address.
        """
        return self._walk(scope)[0]

    def _walk(self, scope: Scope) -> tuple[IPAddress | None, dict[str, str] | None]:
        """The client address, and the ``Forwarded`` element that named it (if any)."""
        peer = self.peer(scope)
        if not (self.networks or self.trust_unix_socket) or not self.is_trusted(peer):
            return peer, None
        if self.header == "forwarded":
            elements = _forwarded_elements(_header_values(scope, b"forwarded"))
        else:
            elements = [
                {"for": item}
                for value in _header_values(scope, b"x-forwarded-for")
                for item in value.split(",")
            ]
        current = peer
        for element in reversed(elements[-self.max_hops :]):
            address = _parse_ip(element.get("for", ""))
            if address is None:
                return current, None
            current = address
            if not self.is_trusted(address):
                return address, element
        return current, None

    def scheme(self, scope: Scope) -> str:
        """``http`` or ``https`` as the client saw it.

        ``X-Forwarded-Proto`` (or ``proto=`` of ``Forwarded``) is honoured only
        when the socket peer is a trusted proxy. With ``Forwarded``, only the
        ``proto=`` of the element naming the client counts: the element the
        edge proxy appended, never one the client wrote itself.
        """
        scheme = str(scope.get("scheme", "http"))
        if not (self.networks or self.trust_unix_socket) or not self.is_trusted(self.peer(scope)):
            return scheme
        if self.header == "forwarded":
            _, element = self._walk(scope)
            proto = (element or {}).get("proto", "").strip('"').lower()
        else:
            values = _header_values(scope, b"x-forwarded-proto")
            proto = values[-1].split(",")[-1].strip().lower() if values else ""
        if proto in ("http", "https", "ws", "wss"):
            return proto
        return scheme
