"""Data-subject export and erasure: the archive holds everything about the number and
nothing of another number or org; erasure leaves no trace of it in the database or the
storage directory (except the do-not-call entry, which the law wants kept)."""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core import serializers

from batches.models import BatchEntry, DoNotCallNumber
from batches.tests.factories import make_batch, make_scheduled_call
from calls.models import Call
from integrations.models import WebhookAttempt, WebhookEvent
from orgs.models import AuditLog
from orgs.services import SYSTEM
from privacy.subjects import SubjectError, erase_subject, export_subject, parse_subject
from privacy.tests.factories import make_full_call, make_webhook_reply

pytestmark = pytest.mark.django_db

ANN = "+14155550142"
BOB = "+14155550177"


def _world(org_a: Any, org_b: Any) -> dict[str, Any]:
    """Ann's data in org A (two calls, a campaign row, a schedule, a do-not-call entry),
    Bob's call in org A and Ann's call in org B."""
    batch = make_batch(org_a)
    BatchEntry.objects.filter(batch=batch, row_number=1).update(e164=ANN, raw_phone="(415) 555-0142",
                                                                 variables={"customer_name": "Ann Example"})
    WebhookEvent.objects.create(org=org_a, type="call.ended", payload={})  # unrelated event: kept as is
    calls = [make_full_call(org_a, caller=ANN), make_full_call(org_a, caller=ANN, direction="outbound",
                                                              from_number="+14155550100", to_number=ANN)]
    for call in calls:
        payload = {"action": "call.finalized", "call": {"id": str(call.public_id), "from": ANN},
                   "transcript": [{"role": "caller", "text": f"my number is {ANN}"}]}
        # the customer's endpoint echoes what it got (the number in another spelling, too)
        make_webhook_reply(org_a, payload, json.dumps({"received": payload, "caller": "Ann Example (415) 555-0142"}))
    bob = make_full_call(org_a, caller=BOB, name="Bob Example")
    # a reply about someone else's call that happens to mention Ann's number
    make_webhook_reply(org_a, {"action": "call.finalized", "call": {"id": str(bob.public_id), "from": BOB}},
                       f'{{"ok": true, "note": "Bob asked us to call back {ANN}", "from": "{BOB}"}}')
    return {
        "ann": calls,
        "bob": bob,
        "ann_elsewhere": make_full_call(org_b, caller=ANN),
        "schedule": make_scheduled_call(org_a, to=ANN, name=f"Call back {ANN}"),
        "dnc": DoNotCallNumber.objects.create(org=org_a, e164=ANN, reason="asked"),
        "batch": batch,
    }


def test_export_holds_everything_about_the_number_and_nothing_else(org_a: Any, org_b: Any) -> None:
    world = _world(org_a, org_b)
    export = export_subject(org_a, SYSTEM, parse_subject(org_a, phone="+1 (415) 555-0142"))
    archive = zipfile.ZipFile(io.BytesIO(export.archive))
    names = set(archive.namelist())
    ann_ids = {str(call.public_id) for call in world["ann"]}
    assert names == {"subject.json", "calls.json", "batch_rows.json", "scheduled_calls.json", "do_not_call.json",
                     *(f"recordings/{pid}.wav" for pid in ann_ids)}
    calls = json.loads(archive.read("calls.json"))
    assert {c["id"] for c in calls} == ann_ids
    assert all(len(c["transcript"]) == 2 and c["events"] and c["analysis"] for c in calls)
    assert [r["number"] for r in json.loads(archive.read("batch_rows.json"))] == [ANN]
    assert [s["to"] for s in json.loads(archive.read("scheduled_calls.json"))] == [ANN]
    assert [d["number"] for d in json.loads(archive.read("do_not_call.json"))] == [ANN]
    assert archive.read(f"recordings/{world['ann'][0].public_id}.wav").startswith(b"RIFF")
    everything = b"".join(archive.read(name) for name in names)
    assert BOB.encode() not in everything
    assert str(world["ann_elsewhere"].public_id).encode() not in everything  # org B's call of the same number
    assert export.counts == {"calls": 2, "recordings": 2, "batch_rows": 1, "scheduled_calls": 1, "do_not_call": 1}
    entry = AuditLog.objects.get(org=org_a, action="privacy.subject_exported")
    assert ANN not in json.dumps(entry.changes) + entry.target_label and entry.changes["calls"] == 2


def _storage_files() -> list[Path]:
    return [Path(root) / name for root, _dirs, files in os.walk(settings.MEDIA_ROOT) for name in files]


def test_erasure_leaves_no_trace_in_the_database_or_storage(org_a: Any, org_b: Any) -> None:
    world = _world(org_a, org_b)
    ann_files = [Path(call.recording.file.path) for call in world["ann"]]
    assert all(path.exists() for path in ann_files)
    counts = erase_subject(org_a, SYSTEM, parse_subject(org_a, phone=ANN))
    assert counts["calls"] == 2 and counts["recordings"] == 2 and counts["batch_rows"] == 1
    assert counts["scheduled_calls"] == 1 and counts["do_not_call_kept"] == 1 and counts["webhook_events"] == 2
    assert counts["webhook_responses"] == 3  # Ann's two calls' replies wiped, Bob's reply scrubbed

    # storage: Ann's recordings are gone, everyone else's are there
    files = _storage_files()
    assert not any(path.exists() for path in ann_files)
    for call in world["ann"]:
        assert not any(str(call.public_id) in str(path) for path in files)
    assert Path(world["bob"].recording.file.path).exists()
    assert Path(world["ann_elsewhere"].recording.file.path).exists()

    # database: every row of every model of org A (or of its calls or webhook deliveries),
    # serialised, never mentions the number — except the do-not-call entry, kept on purpose
    digits = ANN.lstrip("+")
    for model in apps.get_models():
        names = {f.name for f in model._meta.fields}
        owner = next((name for name in ("org", "call", "delivery") if name in names), None)
        if model is DoNotCallNumber or owner is None:
            continue
        rows = model._default_manager.filter(**{"org" if owner == "org" else f"{owner}__org": org_a})
        dumped = serializers.serialize("json", rows)
        assert ANN not in dumped and digits not in dumped, model._meta.label
        assert "Ann Example" not in dumped and "555-0142" not in dumped, model._meta.label
    for call in world["ann"]:
        call.refresh_from_db()
        assert not call.turns.exists() and not call.events.exists() and call.variables == {}
    assert DoNotCallNumber.objects.filter(org=org_a, e164=ANN).exists()
    # other people and other orgs are untouched
    assert Call.objects.get(pk=world["bob"].pk).turns.count() == 2
    assert WebhookAttempt.objects.get(delivery__event__payload__call__id=str(world["bob"].public_id)
                                      ).response_excerpt == f'{{"ok": true, "note": "Bob asked us to call back [erased]", "from": "{BOB}"}}'
    assert Call.objects.get(pk=world["ann_elsewhere"].pk).from_number == ANN
    entry = AuditLog.objects.get(org=org_a, action="privacy.subject_erased")
    assert entry.changes["fingerprint"] and ANN not in json.dumps(entry.changes)


def test_an_email_subject_finds_calls_that_mention_it(org_a: Any, org_b: Any) -> None:
    call = make_full_call(org_a, variables={"email": "Ann@Example.com"})
    make_full_call(org_a, caller=BOB, name="Bob Example")
    subject = parse_subject(org_a, email="ann@example.com")
    export = export_subject(org_a, SYSTEM, subject)
    assert export.counts["calls"] == 1
    erase_subject(org_a, SYSTEM, subject)
    call.refresh_from_db()
    assert call.variables == {} and call.from_number == ""


@pytest.mark.parametrize("given, message", [
    ({}, "give exactly one of a phone number or an e-mail address"),
    ({"phone": ANN, "email": "a@b.example"}, "give exactly one of a phone number or an e-mail address"),
    ({"phone": "12"}, "the phone number is not usable: too short"),
    ({"email": "nope"}, "the e-mail address is not valid"),
])
def test_a_subject_must_be_one_usable_identifier(org_a: Any, given: dict[str, str], message: str) -> None:
    with pytest.raises(SubjectError, match=message):
        parse_subject(org_a, **given)
