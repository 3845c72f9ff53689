"""Carrier callbacks of a warm transfer's human leg (``/webhooks/<carrier>/transfer``).

The URL names the leg by its unguessable public id (``?leg=…&step=answer|join|status``)
and carries no number. As for every carrier callback (``calls.webhooks``): the leg is
found first (unknown → 404), the signature is checked with the credential of the org
whose call the leg belongs to (another org's signature → 403, nothing touched), the
form is parsed strictly (→ 400), and the change is applied under a row lock by
``calls.services.transfer``, which makes retried, late and reordered callbacks harmless.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs

from calls.carriers import WebhookParseError, WebhookRequest
from calls.models import TransferLeg
from calls.services import transfer
from calls.webhooks import _ID_FIELD, WebhookReply, _refuse, _verified_carrier, _xml

STEPS = ("answer", "join", "status")


def _leg(carrier_name: str, request: WebhookRequest) -> TransferLeg | None:
    values = parse_qs(request.query_string).get("leg")
    try:
        public_id = uuid.UUID(values[0]) if values else None
    except ValueError:
        return None
    if public_id is None:
        return None
    return (TransferLeg.objects.select_related("call", "call__org", "org")
            .filter(public_id=public_id, carrier=carrier_name).first())


def handle_transfer_webhook(carrier_name: str, request: WebhookRequest) -> WebhookReply:
    leg = _leg(carrier_name, request)
    if leg is None:
        return _refuse(404, "webhook.unknown_call", carrier_name, request)
    carrier = _verified_carrier(carrier_name, request, leg.call)
    if isinstance(carrier, WebhookReply):
        return carrier
    step = (parse_qs(request.query_string).get("step") or [""])[0]
    if step not in STEPS:
        return _refuse(400, "webhook.unknown_action", carrier_name, request, call=leg.call, action=step[:32])
    carrier_call_id = (request.form.get(_ID_FIELD[carrier_name]) or [""])[0]
    if step == "status":
        try:
            update = carrier.parse_status(request.form)
        except WebhookParseError as exc:
            return _refuse(400, "webhook.malformed", carrier_name, request, call=leg.call, error=str(exc))
        if not transfer.leg_status(leg, update):
            return _refuse(400, "webhook.call_id_mismatch", carrier_name, request, call=leg.call)
        return WebhookReply(204)
    if not carrier_call_id:
        return _refuse(400, "webhook.malformed", carrier_name, request, call=leg.call,
                       error=f"missing required field {_ID_FIELD[carrier_name]!r}")
    if step == "answer":
        markup = transfer.answer_leg(leg, carrier, carrier_call_id)
    else:
        markup = transfer.join_leg(leg, carrier, carrier_call_id, (request.form.get("Digits") or [""])[0])
    if markup is None:
        return _refuse(400, "webhook.call_id_mismatch", carrier_name, request, call=leg.call)
    return _xml(carrier_name, markup)
