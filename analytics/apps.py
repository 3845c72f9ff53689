from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _call_changed(call: Any, finalized_only: bool) -> None:
    from analytics.rollups import record_call, record_finalized_call

    if finalized_only:
        record_finalized_call(call)
    else:
        record_call(call)


def _call_deleting(call: Any) -> None:
    from analytics.rollups import forget_call

    forget_call(call)


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        # The rollups follow the calls through calls.observers: calls imports nothing of analytics.
        from calls.observers import on_call_changed, on_call_deleting

        on_call_changed(_call_changed)
        on_call_deleting(_call_deleting)
