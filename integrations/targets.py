"""Save-time checks on URLs the platform will call on a customer's behalf (webhooks, custom MCP servers).

A customer-supplied URL is a server-side request forgery risk; the rules (resolve the
name, refuse non-public addresses and odd numeric hosts unless ``OUTBOUND_ALLOW_PRIVATE``)
live in :mod:`voiceplatform.outbound`, which also applies them again at request time,
pinned to the address it checked, because DNS can change after saving.
"""
from __future__ import annotations

from voiceplatform import outbound


def check_outbound_url(url: str, *, what: str, field: str = "url") -> None:
    """``ValidationError({field: "<what> is not allowed: <reason>."})`` for a destination we must not call."""
    outbound.validate_url(url, field=field, what=what)
