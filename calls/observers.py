"""Who is told when a call's figures change or a call is about to be deleted.

Apps built on calls register here from their ``AppConfig.ready`` (the analytics rollups do);
calls imports none of their code. Observers run synchronously in the caller's transaction
and must not raise for their own bookkeeping (the analytics rollups log and carry on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: observer(call, finalized_only): ``finalized_only`` is True for what arrives after a call
#: was finalized (a cost, the analysis, a late session result), False for the finalize itself.
_changed: list[Callable[[Any, bool], object]] = []
_deleting: list[Callable[[Any], object]] = []


def on_call_changed(observer: Callable[[Any, bool], object]) -> None:
    """Call ``observer(call, finalized_only)`` whenever an ended call's figures change."""
    if observer not in _changed:
        _changed.append(observer)


def on_call_deleting(observer: Callable[[Any], object]) -> None:
    """Call ``observer(call)`` just before a call is deleted (in the deleting transaction)."""
    if observer not in _deleting:
        _deleting.append(observer)


def call_changed(call: Any, *, finalized_only: bool = True) -> None:
    for observer in _changed:
        observer(call, finalized_only)


def call_deleting(call: Any) -> None:
    for observer in _deleting:
        observer(call)
