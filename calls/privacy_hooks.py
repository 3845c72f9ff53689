"""What an upper layer (the privacy app) decides about what a call stores and who may delete it.

Calls (and batches) import no privacy code: ``privacy.apps.PrivacyConfig.ready`` registers
the functions here.

- :func:`storage_policy`: the calls layer asks it before it writes a recording or a
  transcript. With nothing registered everything is stored, as before.
- :func:`refuse_if_held`: every delete service (``calls.services.control.delete_call``,
  ``batches.services.delete_batch``) calls it first, so a call or campaign under legal hold
  is refused the same way whether the API, the dashboard or the admin (one row or "delete
  selected") asked: a ``ServiceError`` with code ``legal_hold``, status 409, naming the
  hold. The guard answers the reason (or None); it is the privacy app's rule of what a
  hold covers (a campaign's hold also covers the calls it placed), kept in one place with
  the retention purge's. With nothing registered nothing is held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voiceplatform.errors import ServiceError

logger = logging.getLogger(__name__)

#: The code of the refusal a held row's delete gets (the API answers 409 with it).
LEGAL_HOLD = "legal_hold"


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


_delete_guard: list[Callable[[Any], str | None]] = []


def register_delete_guard(guard: Callable[[Any], str | None]) -> None:
    """Make ``guard(call_or_batch)`` the one that says why a row may not be deleted (None: it may)."""
    _delete_guard[:] = [guard]


def hold_reason(target: Any) -> str | None:
    """Why a legal hold covers ``target`` (its own, or its campaign's for a call), or None."""
    return _delete_guard[0](target) if _delete_guard else None


def refuse_if_held(target: Any, error: type[ServiceError]) -> None:
    """Raise ``error`` (code ``legal_hold``, 409) when the registered guard holds ``target``."""
    reason = hold_reason(target)
    if reason:
        # Refusals are not audit entries here (the admin's bulk delete rolls each row's
        # transaction back); the structured log records them, with ids only.
        logger.info("legal_hold.delete_refused", extra={
            "target": type(target).__name__, "target_id": str(getattr(target, "public_id", ""))})
        raise error(reason, code=LEGAL_HOLD, status=409)
