"""TrustedProxies: the client address cannot be chosen by the client."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Scope

from fastapi_secure.clientip import (
    TrustedProxies,
    _forwarded_elements,
    _parse_ip,
)
from fastapi_secure.errors import ConfigurationError

ATTACKER = "198.51.100.7"
PROXY = "10.0.0.5"


def scope(
    peer: str | None = ATTACKER,
    headers: list[tuple[str, str]] | None = None,
    scheme: str = "http",
) -> Scope:
    return {
        "type": "http",
        "scheme": scheme,
        "client": (peer, 4711) if peer is not None else None,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers or []],
    }


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# --- without trusted proxies: headers are ignored ---------------------------------


@pytest.mark.parametrize(
    "header",
    [
        ("X-Forwarded-For", "203.0.113.1"),
        ("Forwarded", "for=203.0.113.1;proto=https"),
        ("X-Real-IP", "203.0.113.1"),
    ],
)
def test_forwarding_headers_are_ignored_without_trusted_proxies(header: tuple[str, str]) -> None:
    proxies = TrustedProxies()
    assert proxies.client_ip(scope(headers=[header])) == ip(ATTACKER)


def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    request = scope(peer=ATTACKER, headers=[("X-Forwarded-For", "10.0.0.9, 203.0.113.1")])
    assert proxies.client_ip(request) == ip(ATTACKER)


def test_x_forwarded_proto_is_ignored_from_an_untrusted_peer() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    request = scope(peer=ATTACKER, headers=[("X-Forwarded-Proto", "https")])
    assert proxies.scheme(request) == "http"
    assert TrustedProxies().scheme(request) == "http"


# --- behind trusted proxies -------------------------------------------------------


def test_first_untrusted_hop_from_the_right_is_the_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    # The client forged "1.1.1.1"; the edge proxy appended the real address.
    request = scope(peer=PROXY, headers=[("X-Forwarded-For", "1.1.1.1, 203.0.113.9, 10.0.0.7")])
    assert proxies.client_ip(request) == ip("203.0.113.9")


def test_multiple_x_forwarded_for_lines_form_one_chain() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    request = scope(
        peer=PROXY,
        headers=[("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "203.0.113.9, 10.0.0.7")],
    )
    assert proxies.client_ip(request) == ip("203.0.113.9")


def test_garbage_hop_stops_the_walk_at_the_last_trusted_address() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    request = scope(peer=PROXY, headers=[("X-Forwarded-For", "203.0.113.9, not-an-ip, 10.0.0.7")])
    assert proxies.client_ip(request) == ip("10.0.0.7")


def test_trusted_peer_without_header_is_the_client() -> None:
    assert TrustedProxies(["10.0.0.0/8"]).client_ip(scope(peer=PROXY)) == ip(PROXY)


def test_only_the_configured_header_is_read() -> None:
    xff = TrustedProxies(["10.0.0.0/8"])
    forwarded = TrustedProxies(["10.0.0.0/8"], header="forwarded")
    request = scope(
        peer=PROXY,
        headers=[("X-Forwarded-For", "203.0.113.1"), ("Forwarded", "for=203.0.113.2")],
    )
    assert xff.client_ip(request) == ip("203.0.113.1")
    assert forwarded.client_ip(request) == ip("203.0.113.2")


def test_forwarded_header_with_ipv6_port_and_quotes() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], header="forwarded")
    request = scope(
        peer=PROXY,
        headers=[("Forwarded", 'for=1.1.1.1, for="[2001:db8::1]:4711";proto=https, for=10.0.0.7')],
    )
    assert proxies.client_ip(request) == ip("2001:db8::1")


def test_ports_and_ipv4_mapped_addresses_are_normalized() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client_ip(scope(peer="::ffff:203.0.113.5")) == ip("203.0.113.5")
    request = scope(peer="::ffff:10.0.0.5", headers=[("X-Forwarded-For", "203.0.113.5:1234")])
    assert proxies.client_ip(request) == ip("203.0.113.5")


def test_max_hops_bounds_the_walk() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], max_hops=2)
    chain = ", ".join(["203.0.113.1", *[f"10.0.0.{i}" for i in range(1, 6)]])
    request = scope(peer=PROXY, headers=[("X-Forwarded-For", chain)])
    # Only the two nearest hops (both trusted) are examined; the forged far end is not reached.
    assert proxies.client_ip(request) == ip("10.0.0.4")


def test_no_peer_gives_none() -> None:
    assert TrustedProxies().client_ip(scope(peer=None)) is None
    assert TrustedProxies().client_ip(scope(peer="testclient")) is None


# --- scheme ------------------------------------------------------------------------


def test_x_forwarded_proto_from_a_trusted_proxy() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.scheme(scope(peer=PROXY, headers=[("X-Forwarded-Proto", "https")])) == "https"
    # The nearest proxy's value wins over anything the client sent before it.
    request = scope(peer=PROXY, headers=[("X-Forwarded-Proto", "https, http")])
    assert proxies.scheme(request) == "http"
    bogus = scope(peer=PROXY, headers=[("X-Forwarded-Proto", "gopher")], scheme="https")
    assert proxies.scheme(bogus) == "https"


def test_forwarded_proto_comes_from_the_element_naming_the_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], header="forwarded")
    # The client forged an element with proto=https; the edge proxy's own element says http.
    forged = scope(peer=PROXY, headers=[("Forwarded", "for=1.1.1.1;proto=https, for=203.0.113.9")])
    assert proxies.scheme(forged) == "http"
    honest = scope(peer=PROXY, headers=[("Forwarded", "for=203.0.113.9;proto=https")])
    assert proxies.scheme(honest) == "https"


# --- configuration -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [["not-a-network"], ["10.0.0.0/33"], [""]])
def test_invalid_networks_are_refused(bad: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        TrustedProxies(bad)


@pytest.mark.parametrize("everything", ["0.0.0.0/0", "::/0"])
def test_trusting_every_address_is_refused(everything: str) -> None:
    with pytest.raises(ConfigurationError, match="any client"):
        TrustedProxies([everything])


def test_a_bare_cidr_string_is_one_network() -> None:
    proxies = TrustedProxies("10.0.0.0/8")
    assert proxies.networks == (ipaddress.ip_network("10.0.0.0/8"),)


def test_bad_header_and_max_hops_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        TrustedProxies(header="x-real-ip")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        TrustedProxies(max_hops=0)


# --- properties ----------------------------------------------------------------------

header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300
) | st.lists(
    st.one_of(
        st.ip_addresses().map(str),
        st.sampled_from(["unknown", "_hidden", '"[::1]:80"', "", " ", '"', "[", "]:1"]),
        st.text(max_size=20),
    ),
    max_size=30,
).map(", ".join)


@settings(max_examples=300, deadline=None)
@given(
    xff=header_text,
    forwarded=header_text,
    proto=header_text,
    peer=st.ip_addresses().map(str),
    header=st.sampled_from(["x-forwarded-for", "forwarded"]),
)
def test_any_header_values_give_a_trusted_chain_address_or_the_peer(
    xff: str, forwarded: str, proto: str, peer: str, header: str
) -> None:
    """Whatever the headers say: never an exception, and without trust never a header address."""
    request = scope(
        peer=peer,
        headers=[
            ("X-Forwarded-For", xff.encode("latin-1", "replace").decode("latin-1")),
            ("Forwarded", forwarded.encode("latin-1", "replace").decode("latin-1")),
            ("X-Forwarded-Proto", proto.encode("latin-1", "replace").decode("latin-1")),
        ],
    )
    untrusted = TrustedProxies(header=header)  # type: ignore[arg-type]
    assert untrusted.client_ip(request) == untrusted.peer(request)
    assert untrusted.scheme(request) == "http"

    trusting = TrustedProxies(["10.0.0.0/8", "fd00::/8", peer], header=header)  # type: ignore[arg-type]
    found = trusting.client_ip(request)
    assert found is not None
    assert trusting.scheme(request) in {"http", "https", "ws", "wss"}
    # The answer is the peer or an address written in the configured header, nothing else.
    if header == "x-forwarded-for":
        hops = xff.split(",")
    else:
        hops = [element.get("for", "") for element in _forwarded_elements([forwarded])]
    assert found == trusting.peer(request) or found in {_parse_ip(hop) for hop in hops}


@given(st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=10))
def test_spoofed_prefix_never_wins_over_the_address_the_proxy_appended(
    forged: list[str],
) -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    real = "203.0.113.77"
    request = scope(peer=PROXY, headers=[("X-Forwarded-For", ", ".join([*forged, real]))])
    assert proxies.client_ip(request) == ip(real)


def _unix_scope(forwarded_for: str | None, proto: str | None = None) -> dict[str, Any]:
    headers: list[tuple[bytes, bytes]] = []
    if forwarded_for is not None:
        headers.append((b"x-forwarded-for", forwarded_for.encode()))
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    return {"type": "http", "client": None, "scheme": "http", "headers": headers}


def test_unix_socket_peer_is_untrusted_by_default() -> None:
    proxies = TrustedProxies(["127.0.0.1/32"])
    assert proxies.client_ip(_unix_scope("198.51.100.66")) is None
    assert proxies.scheme(_unix_scope("198.51.100.66", "https")) == "http"


def test_unix_socket_peer_trusted_when_configured() -> None:
    # Security review: behind nginx -> uvicorn --uds every client used to be "unknown".
    proxies = TrustedProxies(trust_unix_socket=True)
    assert str(proxies.client_ip(_unix_scope("198.51.100.66"))) == "198.51.100.66"
    assert str(proxies.client_ip(_unix_scope("203.0.113.7"))) == "203.0.113.7"
    assert proxies.scheme(_unix_scope("203.0.113.7", "https")) == "https"
    assert proxies.client_ip(_unix_scope(None)) is None
    assert "trust_unix_socket=True" in repr(proxies)
    # A TCP peer still needs to be in the networks.
    tcp = {
        "type": "http",
        "client": ("192.0.2.9", 1),
        "headers": [(b"x-forwarded-for", b"1.2.3.4")],
    }
    assert str(proxies.client_ip(tcp)) == "192.0.2.9"
