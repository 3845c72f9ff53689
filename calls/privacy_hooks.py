"""What an upper layer (the privacy app's retention policies) decides about what a call stores.

Calls imports no privacy code: ``privacy.apps.PrivacyConfig.ready`` registers the one
policy function here, and the calls layer asks :func:`storage_policy` before it writes a
recording or transcript. With nothing registered everything is stored, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StoragePolicy:
    """Whether a call's recording and transcript may be written at all ("do not store" is False)."""

    keep_recording: bool = True
    keep_transcript: bool = True


STORE_ALL = StoragePolicy()
_policy: list[Callable[[Any], StoragePolicy]] = []


def register_storage_policy(policy: Callable[[Any], StoragePolicy]) -> None:
    """Make ``policy(call)`` the one that decides (a later registration replaces it)."""
    _policy[:] = [policy]


def storage_policy(call: Any) -> StoragePolicy:
    return _policy[0](call) if _policy else STORE_ALL
