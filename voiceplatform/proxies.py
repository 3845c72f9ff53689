"""Which address a request came from, trusting ``X-Forwarded-For`` only from our proxies.

Contract: the client address recorded in the audit log is the TCP peer
(``REMOTE_ADDR``) unless that peer is one of the trusted proxies named in
``FORWARDED_ALLOW_IPS`` (the variable uvicorn reads for the same purpose, so the
server and the app trust the same hosts). Only then is ``X-Forwarded-For`` read,
from the right: each trusted proxy appends the address it saw, so the right-most
entry that is not a trusted proxy is the client. Entries to its left were written
by the client and can say anything. Pure standard library: settings import it.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TRUST_ALL = "*"


def parse_trusted_proxies(entries: Iterable[str]) -> tuple[Network, ...] | str:
    """``["10.0.0.0/8", "127.0.0.1"]`` → networks; ``["*"]`` → ``"*"`` (trust every peer).

    Raises ValueError naming the entry that is neither an address nor a network.
    """
    entries = [e.strip() for e in entries if e.strip()]
    if TRUST_ALL in entries:
        return TRUST_ALL
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1:value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
             trusted: Sequence[Network] | str) -> bool:
    if address is None:
        return False
    if trusted == TRUST_ALL:
        return True
    return any(address in network for network in trusted)


def client_address(remote_addr: str | None, forwarded_for: str | None,
                   trusted: Sequence[Network] | str) -> str | None:
    """The client's address for this request (see the module docstring)."""
    peer = _address(remote_addr or "")
    if peer is None:
        return None
    if not forwarded_for or not _trusted(peer, trusted):
        return str(peer)
    hops = [_address(part) for part in forwarded_for.split(",")]
    if trusted == TRUST_ALL:
        # Trusting every peer means taking the client's own claim (as uvicorn does with "*").
        return str(hops[0]) if hops[0] is not None else str(peer)
    for hop in reversed(hops):
        if hop is None:
            # Malformed past our proxies: nothing to its left can be trusted either.
            return str(peer)
        if not _trusted(hop, trusted):
            return str(hop)
    # Every hop is one of our proxies: the left-most is the closest to the client.
    return str(hops[0])
