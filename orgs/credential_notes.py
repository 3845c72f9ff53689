"""Set-up notes shown with a provider's credential on the credentials page.

orgs is the lowest layer, so apps above it that build on a credential (calls: the
LiveKit webhook endpoint) register here from ``AppConfig.ready`` a function
``(org) -> CredentialNote`` for a provider; the page shows the note of each stored
credential. A note is plain data: a heading, an address to copy, steps, and links to
the pages where the credential is put to use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_NOTES: dict[str, Callable[[Any], CredentialNote]] = {}


@dataclass(frozen=True)
class CredentialNote:
    title: str
    url: str = ""
    steps: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, url)


def register_credential_note(provider: str, note: Callable[[Any], CredentialNote]) -> None:
    """Show ``note(org)`` with ``provider``'s stored credential."""
    _NOTES[provider] = note


def credential_note(provider: str, org: Any) -> CredentialNote | None:
    """The note registered for ``provider`` (None: none)."""
    note = _NOTES.get(provider)
    return note(org) if note is not None else None
