"""The client address a limit applies to, trusting ``X-Forwarded-For`` only from our proxies.

``X-Forwarded-For`` is a list each proxy appends its peer to, so only the right-hand end was
written by infrastructure we control; anything to the left may be made up by the client. When
the direct peer is a trusted proxy (``TRUSTED_PROXIES``, a comma-separated list of addresses or
CIDR networks), the client is the right-most hop that is *not* a trusted proxy. From any other
peer the header is ignored: the peer itself is the client.

IPv6 clients are grouped by /64 (one customer's prefix: rotating addresses inside it would
otherwise reset the limit) and IPv4-mapped IPv6 addresses count as their IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from collections.abc import Sequence

from pulseplan.errors import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN = "unknown"


def parse_networks(values: Iterable[str], setting: str = "TRUSTED_PROXIES") -> list[IPNetwork]:
    """``["10.0.0.0/8", "127.0.0.1"]`` -> networks.

    :raises ConfigurationError: a value is neither an address nor a network.
    """
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigurationError(
                [f"{setting}: {value!r} is not an IP address or CIDR network"]
            ) from None
    return networks


def _address(value: str) -> IPAddress | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:5050"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """Resolves the client address of a request from its peer and ``X-Forwarded-For``."""

    def __init__(self, networks: Sequence[IPNetwork] = ()) -> None:
        self.networks = tuple(networks)

    def trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def client(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> str:
        """The client address for limiting, as text (an IPv6 address as its /64 network).

        :param peer: the address of the TCP peer (the ASGI ``client``), if known.
        :param forwarded_for: every ``X-Forwarded-For`` header value, in order.
        """
        address = _address(peer) if peer else None
        if address is None:
            return UNKNOWN
        if forwarded_for and self.trusted(address):
            hops = [hop for value in forwarded_for for hop in value.split(",")]
            for hop in reversed(hops):
                candidate = _address(hop)
                if candidate is None:
                    break  # garbage left of our proxies: keep the last address we can trust
                address = candidate
                if not self.trusted(candidate):
                    break
        return _display(address)


def _display(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
