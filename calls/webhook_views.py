"""Django adapters for the carrier webhooks; the logic is in ``calls.webhooks``."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from calls import transfer_webhooks, webhooks
from calls.carriers import WebhookRequest
from calls.services.session import prepare_session_early
from voiceplatform import metrics, nodes


def to_webhook_request(request: HttpRequest) -> WebhookRequest:
    return WebhookRequest(
        method=request.method or "POST",
        # path_info: the path below any prefix a proxy strips (PUBLIC_BASE_URL holds it).
        path=request.path_info,
        query_string=request.META.get("QUERY_STRING", ""),
        form={key: request.POST.getlist(key) for key in request.POST},
        headers=dict(request.headers),
    )


def _respond(reply: webhooks.WebhookReply) -> HttpResponse:
    return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)


def _view(carrier: str, kind: str,
          handler: Callable[[WebhookRequest], webhooks.WebhookReply]) -> Callable[[HttpRequest], HttpResponse]:
    @csrf_exempt
    @require_POST
    def view(request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        with nodes.serving(request):
            reply = handler(to_webhook_request(request))
        if reply.prepare is not None:
            prepare_session_early(request, *reply.prepare)
        metrics.carrier_webhook_answered(carrier, kind, reply.status, time.perf_counter() - started)
        return _respond(reply)

    return view


twilio_voice = _view("twilio", "voice", lambda r: webhooks.handle_inbound_webhook("twilio", r))
twilio_status = _view("twilio", "status", lambda r: webhooks.apply_status_callback("twilio", r))
twilio_amd = _view("twilio", "amd", lambda r: webhooks.apply_machine_detection("twilio", r))
plivo_answer = _view("plivo", "answer", webhooks.handle_plivo_answer)
plivo_hangup = _view("plivo", "status", lambda r: webhooks.apply_status_callback("plivo", r))
plivo_amd = _view("plivo", "amd", lambda r: webhooks.apply_machine_detection("plivo", r))
plivo_action = _view("plivo", "action", webhooks.handle_plivo_action)
twilio_transfer = _view("twilio", "transfer", lambda r: transfer_webhooks.handle_transfer_webhook("twilio", r))
plivo_transfer = _view("plivo", "transfer", lambda r: transfer_webhooks.handle_transfer_webhook("plivo", r))


@csrf_exempt
@require_POST
def livekit_webhook(request: HttpRequest, org_id: object, token: str) -> HttpResponse:
    """LiveKit's room and participant events for one org (calls.services.livekit_dispatch)."""
    from calls.services import livekit, livekit_dispatch

    org = livekit_dispatch.org_for_webhook(str(org_id), token)
    if org is None:
        return HttpResponse("unknown endpoint", status=404, content_type="text/plain")
    with nodes.serving(request):
        delivery = livekit_dispatch.receive(org, request.body, request.headers.get("Authorization", ""))
    if delivery.call is not None and delivery.server is not None:
        livekit.dispatch_agent(request, delivery.call, delivery.server)
    return HttpResponse(delivery.record.get_outcome_display(), status=delivery.status,  # type: ignore[attr-defined]
                        content_type="text/plain")
