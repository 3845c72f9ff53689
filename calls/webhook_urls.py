"""Carrier callbacks, mounted under ``/webhooks/`` by the root URLconf.

The paths must equal ``calls.carriers.WEBHOOK_PATHS`` (the URLs we hand to the
carriers); ``calls/tests/test_calls_webhooks.py`` checks they do.
"""

from __future__ import annotations

from django.urls import path

from calls import webhook_views

urlpatterns = [
    path("twilio/voice", webhook_views.twilio_voice, name="calls-twilio-voice"),
    path("twilio/status", webhook_views.twilio_status, name="calls-twilio-status"),
    path("twilio/amd", webhook_views.twilio_amd, name="calls-twilio-amd"),
    path("plivo/answer", webhook_views.plivo_answer, name="calls-plivo-answer"),
    path("plivo/hangup", webhook_views.plivo_hangup, name="calls-plivo-hangup"),
    path("plivo/amd", webhook_views.plivo_amd, name="calls-plivo-amd"),
    path("plivo/action", webhook_views.plivo_action, name="calls-plivo-action"),
    path("twilio/transfer", webhook_views.twilio_transfer, name="calls-twilio-transfer"),
    path("plivo/transfer", webhook_views.plivo_transfer, name="calls-plivo-transfer"),
    path("livekit/<uuid:org_id>/<str:token>/", webhook_views.livekit_webhook, name="calls-livekit-webhook"),
]
