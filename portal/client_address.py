"""The address of the client behind the reverse proxy, for the sign-in limit (docs/operations.md, "Sign-in limit").

A connection from one of TRUSTED_PROXIES (addresses or networks of the proxies in front of the web tier) carries the
client's address in X-Forwarded-For, which each proxy extends with the address it received the request from: with
TRUSTED_PROXY_COUNT proxies appending to it, the client is that many entries from the right. Everything to the left
of that was sent by the client and proves nothing. Any other connection's address is its own (REMOTE_ADDR), and its
X-Forwarded-For is ignored: a client that reaches the web tier directly cannot choose the address it is counted
under. The header is parsed by django-ipware.
"""

from __future__ import annotations

import ipaddress
from functools import cache

from django.conf import settings
from ipware import get_client_ip


@cache
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def address_in(address: str, entries: list[str] | tuple[str, ...]) -> bool:
    """Whether `address` (an IPv4-mapped IPv6 address counts as its IPv4 one) is in one of `entries`, addresses or
    networks as the settings list them; an address that does not parse is in none."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(tuple(entries)))


def client_address(request) -> str:
    """The client's address: from X-Forwarded-For when the connection comes from a trusted proxy, else the
    connection's own. Falls back to the connection's address when a trusted proxy sent no usable header."""
    remote = request.META.get("REMOTE_ADDR", "")
    if not settings.TRUSTED_PROXIES or not address_in(remote, settings.TRUSTED_PROXIES):
        return remote
    # ipware counts the proxies between the client and the last one in the header (the last proxy's own address is
    # REMOTE_ADDR, not part of the header); non-strict: a longer header (the client's own entries) is expected.
    address, _routable = get_client_ip(
        request,
        proxy_count=settings.TRUSTED_PROXY_COUNT - 1,
        request_header_order=["HTTP_X_FORWARDED_FOR"],
        strict=False,
    )
    return address or remote
