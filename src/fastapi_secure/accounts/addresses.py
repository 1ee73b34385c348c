"""Client addresses as the account blocks keep them: coarsened, never exact.

Session listings show where a session came from without storing the exact
address (``203.0.113.0/24``, ``2001:db8:1:2::/64``); lockout counts per
address use the network an attacker controls as one unit (a single IPv6 host
usually holds a whole /64).
"""

from __future__ import annotations

import ipaddress

__all__ = ["coarsen_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def coarsen_address(
    address: str | IPAddress | None, *, ipv4_prefix: int = 24, ipv6_prefix: int = 64
) -> str | None:
    """The network holding ``address`` as CIDR text, or ``None`` if it is no address.

    IPv4-mapped IPv6 addresses count as IPv4. Accepts what
    :meth:`fastapi_secure.clientip.TrustedProxies.client_ip` returns, or text.
    """
    if not (0 <= ipv4_prefix <= 32 and 0 <= ipv6_prefix <= 128):
        raise ValueError("prefix lengths must be 0-32 (IPv4) and 0-128 (IPv6)")
    if address is None:
        return None
    if isinstance(address, str):
        if len(address) > 64:
            return None
        try:
            address = ipaddress.ip_address(address.strip())
        except ValueError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = ipv4_prefix if address.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
