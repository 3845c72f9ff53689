"""Dashboard pages: calls list with filters, call page, live view, numbers — org-scoped."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile

from calls.models import PhoneNumber, Recording, TranscriptTurn
from calls.services.timeline import push_live_update
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.factories import make_call, make_phone_number

pytestmark = pytest.mark.django_db


def test_calls_list_filters_and_search(login: Any, owner_a: Any, org_a: Any, org_b: Any) -> None:
    make_call(org_a, to_number="+14155552222", status="busy")
    make_call(org_a, to_number="+14155553333", status="completed")
    make_call(org_b, to_number="+14155559999", status="busy")
    client = login(owner_a)
    page = client.get("/calls/").content.decode()
    assert "+14155552222" in page and "+14155553333" in page and "+14155559999" not in page
    busy = client.get("/calls/?status=busy").content.decode()
    assert "+14155552222" in busy and "+14155553333" not in busy
    assert client.get("/calls/?agent=not-an-id&status=bogus&since=never").status_code == 200
    found = client.get("/calls/?q=3333").content.decode()
    assert "+14155553333" in found and "+14155552222" not in found


def test_call_page_shows_transcript_latency_analysis_and_player(login: Any, owner_a: Any, outsider: Any,
                                                                  org_a: Any, settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    call = make_call(org_a, analysis={"summary": "Booked a table.", "fields": {"party_size": 4},
                                      "success": {"achieved": True, "reason": "booked"}})
    TranscriptTurn.objects.create(call=call, index=0, role="caller", text="A table for four", start_ms=0, end_ms=900)
    TranscriptTurn.objects.create(call=call, index=1, role="agent", text="Booked!", start_ms=1500, end_ms=2000,
                                  latency_ms=612)
    Recording(call=call, duration_ms=2000).file.save("r.wav", ContentFile(b"RIFFdata"), save=True)
    page = login(owner_a).get(f"/calls/{call.public_id}/").content.decode()
    for text in ("A table for four", "Booked!", "612 ms", "Booked a table.", "party_size", "<audio"):
        assert text in page, text
    assert login(owner_a).get(f"/calls/{call.public_id}/recording.wav").status_code == 200
    assert login(outsider).get(f"/calls/{call.public_id}/").status_code == 404
    assert login(outsider).get(f"/calls/{call.public_id}/recording.wav").status_code == 404


def test_call_actions_need_editor(login: Any, viewer_a: Any, org_a: Any) -> None:
    call = make_call(org_a, status="in_progress", carrier="twilio", carrier_call_id="CA" + "0" * 32)
    assert login(viewer_a).post(f"/calls/{call.public_id}/", {"action": "hangup"}).status_code == 403


def test_live_view_shows_live_calls_with_their_transcript(login: Any, owner_a: Any, org_a: Any, org_b: Any) -> None:
    live = make_call(org_a, status="in_progress", to_number="+14155554321")
    make_call(org_a, status="completed", to_number="+14155551234")
    foreign = make_call(org_b, status="in_progress", to_number="+14155558888")
    push_live_update(str(live.public_id), "transcript", {"role": "caller", "text": "Where is my parcel?"})
    push_live_update(str(foreign.public_id), "transcript", {"role": "caller", "text": "secret of org B"})
    client = login(owner_a)
    page = client.get("/calls/live/").content.decode()
    assert "+14155554321" in page and "Where is my parcel?" in page
    assert "+14155551234" not in page and "secret of org B" not in page
    partial = client.get("/calls/live/", HTTP_HX_REQUEST="true").content.decode()
    assert "Where is my parcel?" in partial and "<html" not in partial


def test_numbers_page_add_assign_remove(login: Any, admin_a: Any, viewer_a: Any, org_a: Any, agent_a: Any,
                                        fake_twilio: Any, twilio_org: Any) -> None:
    fake_twilio.add_number("+14155550180")
    client = login(admin_a)
    response = client.post("/numbers/", {"e164": "+14155550180", "carrier": "twilio", "label": "Desk"})
    assert response.status_code == 302
    number = PhoneNumber.objects.get(e164="+14155550180")
    client.post("/numbers/", {"assign": "1", "number": str(number.public_id), "inbound_agent": str(agent_a.public_id)})
    number.refresh_from_db()
    assert number.inbound_agent == agent_a
    bad = client.post("/numbers/", {"e164": "12", "carrier": "twilio"})
    assert bad.status_code == 200 and "too short" in bad.content.decode()
    assert login(viewer_a).post("/numbers/", {"delete": "1", "number": str(number.public_id)}).status_code == 403
    client.post("/numbers/", {"delete": "1", "number": str(number.public_id)})
    assert not PhoneNumber.objects.filter(pk=number.pk).exists()


def test_numbers_of_another_org_cannot_be_touched(login: Any, outsider: Any, org_a: Any) -> None:
    number = make_phone_number(org_a)
    response = login(outsider).post("/numbers/", {"delete": "1", "number": str(number.public_id)})
    assert response.status_code == 404 and PhoneNumber.objects.filter(pk=number.pk).exists()
    assert number.e164 not in login(outsider).get("/numbers/").content.decode()


def test_import_from_the_dashboard(login: Any, admin_a: Any, fake_twilio: Any, twilio_org: Any) -> None:
    fake_twilio.add_number("+14155550190")
    response = login(admin_a).post("/numbers/", {"import": "1", "carrier": "twilio", "configure_webhooks": "on"},
                                   follow=True)
    assert "Imported: 1 new" in response.content.decode()
    assert PhoneNumber.objects.get(e164="+14155550190").webhooks_configured_at is not None


def test_web_call_page_starts_a_browser_call(login: Any, editor_a: Any, viewer_a: Any, outsider: Any,
                                             agent_a: Any) -> None:
    from calls.models import Call
    from calls.services.streams import authorize_stream_sync

    page = login(editor_a).get(f"/calls/web/?agent={agent_a.public_id}").content.decode()
    assert f'value="{agent_a.public_id}" selected' in page
    response = login(editor_a).post("/calls/web/", {"agent": str(agent_a.public_id), "var_customer_name": "Cy"})
    html = response.content.decode()
    call = Call.objects.get(direction="web")
    assert call.status == "in_progress" and call.variables == {"customer_name": "Cy"}
    path = html.split('data-ws-path="', 1)[1].split('"', 1)[0]
    assert path == f"/ws/web/{call.public_id}"  # no secret in the URL: the token goes in `start`
    token = html.split('data-stream-token="', 1)[1].split('"', 1)[0]
    assert authorize_stream_sync(str(call.public_id), token)
    assert "calls/webcall.js" in html
    assert login(viewer_a).post("/calls/web/", {"agent": str(agent_a.public_id)}).status_code == 403
    assert login(outsider).post("/calls/web/", {"agent": str(agent_a.public_id)}).status_code == 404


def test_calls_list_filters_used_by_analytics_links(login: Any, viewer_a: Any, org_a: Any, org_b: Any) -> None:
    """version, campaign, number, carrier and reason filters, org-scoped; since/until are
    whole days in the org's timezone, both inclusive (the analytics pages link with them)."""
    from datetime import UTC, datetime

    from batches.models import BatchCallAttempt, BatchEntry
    from batches.tests.factories import make_batch
    from calls.models import Call
    from calls.tests.factories import make_ready_agent

    org_a.timezone = "America/Los_Angeles"
    org_a.save()
    agent = make_ready_agent(org_a)
    version = agent.published_version
    number = make_phone_number(org_a, carrier="plivo")
    batch = make_batch(org_a)
    foreign_batch = make_batch(org_b)

    def call(to: str, at: datetime, **values: Any) -> Call:
        made = make_call(org_a, to_number=to, **values)
        Call.objects.filter(pk=made.pk).update(created_at=at)
        return made

    # 07:30 UTC on Dec 5 is Dec 4 in Los Angeles; 17:00 UTC is Dec 5 there
    early = call("+14155550001", datetime(2026, 12, 5, 7, 30, tzinfo=UTC), agent=agent, agent_version=version,
                 carrier="twilio", end_reason="caller_hangup", answered_at=datetime(2026, 12, 5, 7, 30, 5, tzinfo=UTC))
    call("+14155550002", datetime(2026, 12, 5, 17, 0, tzinfo=UTC), phone_number=number, carrier="plivo",
                end_reason="no_answer", status="no_answer")
    dialled = call("+14155550003", datetime(2026, 12, 6, 9, 0, tzinfo=UTC), carrier="plivo")
    entry = BatchEntry.objects.filter(batch=batch).order_by("row_number").first()
    BatchCallAttempt.objects.create(entry=entry, number=1, call=dialled)
    foreign_entry = BatchEntry.objects.filter(batch=foreign_batch).order_by("row_number").first()
    BatchCallAttempt.objects.create(entry=foreign_entry, number=1, call=early)  # cannot pull org A's call in
    client = login(viewer_a)

    def listed(query: str) -> set[str]:
        page = client.get(f"/calls/?{query}").content.decode()
        return {to for to in ("+14155550001", "+14155550002", "+14155550003") if to in page}

    assert listed("") == {"+14155550001", "+14155550002", "+14155550003"}
    assert listed(f"version={version.public_id}") == {"+14155550001"}
    assert listed(f"campaign={batch.public_id}") == {"+14155550003"}
    assert listed(f"campaign={foreign_batch.public_id}") == set()
    assert listed(f"number={number.public_id}") == {"+14155550002"}
    assert listed("carrier=plivo") == {"+14155550002", "+14155550003"}
    assert listed("reason=no_answer") == {"+14155550002"}
    assert listed("answered=yes") == {"+14155550001"} and listed("answered=no") == {"+14155550002", "+14155550003"}
    assert listed("since=2026-12-04&until=2026-12-04") == {"+14155550001"}
    assert listed("since=2026-12-05&until=2026-12-05") == {"+14155550002"}
    assert listed("since=2026-12-05") == {"+14155550002", "+14155550003"}
    assert listed("carrier=plivo&status=no_answer&since=2026-12-05&until=2026-12-06") == {"+14155550002"}
    assert listed("carrier=bogus&version=not-an-id") == {"+14155550001", "+14155550002", "+14155550003"}
    # the analytics link's extra filters survive the form (hidden inputs) and are said
    page = client.get(f"/calls/?campaign={batch.public_id}").content.decode()
    assert f'name="campaign" value="{batch.public_id}"' in page and "Also filtered by campaign" in page
