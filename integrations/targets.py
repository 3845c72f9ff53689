"""Checks on URLs the platform will call on a customer's behalf (webhooks, custom MCP servers).

A customer-supplied URL is a server-side request forgery risk: it must not be usable to reach
this deployment's own services (databases, the MCP servers, cloud metadata). Literal
loopback/private/link-local addresses and ``localhost`` are refused outside development.
Host names are not resolved here (a name can resolve differently later); a deployment that
needs more should egress through a proxy that enforces it.
"""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError


def check_outbound_url(url: str, *, what: str, allow_private: bool, field: str = "url") -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({field: f"{what} must be an absolute http:// or https:// URL."})
    if allow_private:
        return
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        raise ValidationError({field: f"{what} must not point at this server (localhost)."})
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved \
            or address.is_unspecified:
        raise ValidationError({field: f"{what} must not point at a private address ({address})."})
