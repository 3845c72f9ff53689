"""Calls list/detail and the phone-numbers API (incl. import from the carrier account),
with the org-isolation checks for every route."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from calls.models import CallEvent, PhoneNumber, Recording, TranscriptTurn
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.factories import make_call, make_phone_number
from orgs.models import AuditLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls_a(org_a: Any, agent_a: Any) -> list[Any]:
    inbound = make_call(org_a, direction="inbound", from_number="+14155551111", to_number="+14155550100",
                        status="completed", agent=agent_a, end_reason="caller_hangup")
    outbound = make_call(org_a, direction="outbound", to_number="+14155552222", status="in_progress")
    old = make_call(org_a, direction="outbound", to_number="+14155553333", status="busy")
    old.created_at = timezone.now() - timedelta(days=10)
    old.save()
    return [inbound, outbound, old]


class TestCallsApi:
    def test_list_and_filters(self, api: Any, owner_a: Any, calls_a: list[Any], agent_a: Any, org_b: Any) -> None:
        make_call(org_b, to_number="+14155554444")
        client = api(owner_a)

        def ids(query: str = "") -> set[str]:
            response = client.get(f"/api/v1/calls/{query}")
            assert response.status_code == 200, response.content
            return {row["id"] for row in response.json()["results"]}

        inbound, outbound, old = (str(c.public_id) for c in calls_a)
        assert ids() == {inbound, outbound, old}
        assert ids("?status=busy") == {old}
        assert ids("?direction=inbound") == {inbound}
        assert ids(f"?agent={agent_a.public_id}") == {inbound}
        assert ids("?search=2222") == {outbound}
        assert ids(f"?search={inbound}") == {inbound}
        assert ids("?live=true") == {outbound}
        since = (timezone.now() - timedelta(days=1)).isoformat()
        assert ids(f"?since={since.replace('+', '%2B')}") == {inbound, outbound}

    def test_bad_filters_are_named(self, api: Any, owner_a: Any) -> None:
        response = api(owner_a).get("/api/v1/calls/?status=exploded")
        assert response.status_code == 400 and "status" in response.json()["error"]["fields"]
        response = api(owner_a).get("/api/v1/calls/?agent=42")
        assert response.status_code == 400 and "agent" in response.json()["error"]["fields"]
        response = api(owner_a).get("/api/v1/calls/?since=yesterday")
        assert response.status_code == 400 and "since" in response.json()["error"]["fields"]

    def test_detail_has_transcript_events_analysis_and_recording(self, api: Any, owner_a: Any, outsider: Any,
                                                                  calls_a: list[Any], settings: Any,
                                                                  tmp_path: Any) -> None:
        settings.MEDIA_ROOT = str(tmp_path)
        call = calls_a[0]
        TranscriptTurn.objects.create(call=call, index=0, role="agent", text="Hello", start_ms=0, end_ms=900)
        TranscriptTurn.objects.create(call=call, index=1, role="caller", text="Hi", start_ms=1200, end_ms=1500)
        CallEvent.objects.create(org=call.org, call=call, kind="status.completed", at=timezone.now())
        call.analysis = {"summary": "Short hello.", "fields": {}, "success": {"achieved": True, "reason": "ok"}}
        call.save()
        recording = Recording(call=call, duration_ms=1000, size_bytes=48)
        recording.file.save("x.wav", ContentFile(b"RIFF" + b"\x00" * 44), save=True)

        response = api(owner_a).get(f"/api/v1/calls/{call.public_id}/")
        assert response.status_code == 200
        body = response.json()
        assert [t["text"] for t in body["transcript"]] == ["Hello", "Hi"]
        assert body["events"][0]["kind"] == "status.completed"
        assert body["analysis"]["summary"] == "Short hello."
        assert body["recording_url"].endswith(f"/api/v1/calls/{call.public_id}/recording/")
        audio = api(owner_a).get(body["recording_url"])
        assert audio.status_code == 200 and b"".join(audio.streaming_content).startswith(b"RIFF")
        assert api(outsider).get(body["recording_url"]).status_code == 404
        assert api().get(body["recording_url"]).status_code == 401
        assert "id" not in {k for k in body if k != "id"} and isinstance(body["id"], str)

    def test_calls_are_not_editable(self, api: Any, owner_a: Any, calls_a: list[Any]) -> None:
        url = f"/api/v1/calls/{calls_a[0].public_id}/"
        assert api(owner_a).patch(url, {"status": "failed"}, format="json").status_code == 405

    def test_admin_deletes_a_finished_call_with_its_recording(self, api: Any, admin_a: Any, editor_a: Any,
                                                             calls_a: list[Any], settings: Any,
                                                             tmp_path: Any) -> None:
        settings.MEDIA_ROOT = str(tmp_path)
        finished, live, _old = calls_a
        recording = Recording(call=finished, duration_ms=10)
        recording.file.save("r.wav", ContentFile(b"RIFF"), save=True)
        stored = tmp_path / recording.file.name
        assert stored.exists()
        assert api(editor_a).delete(f"/api/v1/calls/{finished.public_id}/").status_code == 403
        refused = api(admin_a).delete(f"/api/v1/calls/{live.public_id}/")
        assert refused.status_code == 400 and "still live" in refused.json()["error"]["message"]
        assert api(admin_a).delete(f"/api/v1/calls/{finished.public_id}/").status_code == 204
        assert not stored.exists() and not Recording.objects.exists()
        assert AuditLog.objects.filter(action="call.deleted", target_id=str(finished.public_id)).exists()

    def test_api_key_of_another_org_sees_nothing(self, api_key_client: Any, org_b: Any, calls_a: list[Any]) -> None:
        client = api_key_client(org_b, "admin")
        assert client.get("/api/v1/calls/").json()["results"] == []
        assert client.get(f"/api/v1/calls/{calls_a[0].public_id}/").status_code == 404


class TestNumbersApi:
    def test_create_update_delete(self, api: Any, admin_a: Any, editor_a: Any, agent_a: Any, fake_twilio: Any,
                                  twilio_org: Any) -> None:
        sid = fake_twilio.add_number("+14155550142")
        client = api(admin_a)
        response = client.post("/api/v1/numbers/", {"e164": "+1 (415) 555-0142", "carrier": "twilio", "label": "Sales",
                                                     "inbound_agent": str(agent_a.public_id)}, format="json")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["e164"] == "+14155550142" and body["inbound_agent"] == str(agent_a.public_id)
        assert PhoneNumber.objects.get(e164="+14155550142").carrier_number_id == sid
        url = f"/api/v1/numbers/{body['id']}/"
        assert api(editor_a).patch(url, {"label": "x"}, format="json").status_code == 403
        assert client.patch(url, {"inbound_agent": None, "label": "Sales 2"}, format="json").json()["label"] == "Sales 2"
        assert client.patch(url, {"e164": "+14155550143"}, format="json").status_code == 400
        assert client.delete(url).status_code == 204
        assert set(AuditLog.objects.filter(action__startswith="phone_number.").values_list("action", flat=True)) == {
            "phone_number.created", "phone_number.updated", "phone_number.deleted"}

    def test_duplicate_and_foreign_agent_are_refused(self, api: Any, admin_a: Any, org_b: Any) -> None:
        from calls.tests.factories import make_ready_agent

        make_phone_number(org_b, e164="+14155550150", carrier="twilio")
        foreign = make_ready_agent(org_b)
        client = api(admin_a)
        dup = client.post("/api/v1/numbers/", {"e164": "+14155550150", "carrier": "twilio"}, format="json")
        assert dup.status_code == 400 and "already registered" in dup.json()["error"]["fields"]["e164"][0]
        other = client.post("/api/v1/numbers/", {"e164": "+14155550151", "carrier": "twilio",
                                                 "inbound_agent": str(foreign.public_id)}, format="json")
        assert other.status_code == 400 and "inbound_agent" in other.json()["error"]["fields"]

    def test_import_from_twilio_points_webhooks_here(self, api: Any, admin_a: Any, fake_twilio: Any,
                                                     twilio_org: Any, org_b: Any) -> None:
        mine = fake_twilio.add_number("+14155550160", "Front desk")
        fake_twilio.add_number("+14155550161")
        theirs = fake_twilio.add_number("+14155550162")
        make_phone_number(org_b, e164="+14155550162", carrier="twilio")
        response = api(admin_a).post("/api/v1/numbers/import/", {"carrier": "twilio"}, format="json")
        assert response.status_code == 200, response.json()
        body = response.json()
        assert {n["e164"] for n in body["created"]} == {"+14155550160", "+14155550161"}
        assert body["skipped"] == [{"e164": "+14155550162", "reason": "registered by another organisation"}]
        assert fake_twilio.numbers[mine]["voice_url"] == "https://voice.example.com/webhooks/twilio/voice"
        assert fake_twilio.numbers[theirs]["voice_url"] == ""
        number = PhoneNumber.objects.get(e164="+14155550160")
        assert number.org == twilio_org and number.carrier_number_id == mine and number.label == "Front desk"
        again = api(admin_a).post("/api/v1/numbers/import/", {"carrier": "twilio"}, format="json").json()
        assert again["created"] == [] and len(again["updated"]) == 2

    def test_import_from_plivo(self, api: Any, admin_a: Any, fake_plivo: Any, plivo_org: Any) -> None:
        fake_plivo.add_number("+14155550170")
        response = api(admin_a).post("/api/v1/numbers/import/", {"carrier": "plivo"}, format="json")
        assert response.status_code == 200 and len(response.json()["created"]) == 1
        (app,) = fake_plivo.applications.values()
        assert app["answer_url"] == "https://voice.example.com/webhooks/plivo/answer"

    def test_import_without_credential_is_a_clear_error(self, api: Any, admin_a: Any) -> None:
        response = api(admin_a).post("/api/v1/numbers/import/", {"carrier": "plivo"}, format="json")
        assert response.status_code == 400 and "plivo credential" in response.json()["error"]["message"]

    def test_import_needs_admin(self, api: Any, editor_a: Any, outsider: Any) -> None:
        assert api(editor_a).post("/api/v1/numbers/import/", {"carrier": "twilio"}, format="json").status_code == 403
        assert api().post("/api/v1/numbers/import/", {"carrier": "twilio"}, format="json").status_code == 401


class TestWebCallsApi:
    def test_start_a_web_call(self, api: Any, editor_a: Any, viewer_a: Any, outsider: Any, agent_a: Any) -> None:
        from calls.services.streams import authorize_stream_sync

        response = api(editor_a).post("/api/v1/calls/web/", {"agent": str(agent_a.public_id)}, format="json")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["direction"] == "web" and body["status"] == "in_progress"
        assert body["websocket_path"] == f"/ws/web/{body['id']}"  # no secret in the URL
        assert authorize_stream_sync(body["id"], body["stream_token"])
        assert api(viewer_a).post("/api/v1/calls/web/", {"agent": str(agent_a.public_id)},
                                  format="json").status_code == 403
        foreign = api(outsider).post("/api/v1/calls/web/", {"agent": str(agent_a.public_id)}, format="json")
        assert foreign.status_code == 400 and "agent" in foreign.json()["error"]["fields"]

    def test_missing_variable_is_named(self, api: Any, editor_a: Any, org_a: Any) -> None:
        from calls.tests.factories import make_ready_agent

        agent = make_ready_agent(org_a, name="Strict", system_prompt="Confirm {{slot}}.")
        response = api(editor_a).post("/api/v1/calls/web/", {"agent": str(agent.public_id)}, format="json")
        assert response.status_code == 400 and "slot" in response.json()["error"]["fields"]["variables"][0]


def test_deleting_an_organisation_removes_its_recording_files(org_a: Any, settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    call = make_call(org_a)
    recording = Recording(call=call, duration_ms=10)
    recording.file.save("r.wav", ContentFile(b"RIFF"), save=True)
    stored = tmp_path / recording.file.name
    assert stored.exists()
    org_a.delete()
    assert not stored.exists() and not Recording.objects.exists()


def test_event_admin_shows_members_their_org_only(login: Any, owner_a: Any, org_a: Any, org_b: Any) -> None:
    mine = CallEvent.objects.create(org=org_a, kind="webhook.bad_signature", at=timezone.now())
    CallEvent.objects.create(org=org_b, kind="webhook.bad_signature", at=timezone.now())
    CallEvent.objects.create(org=None, kind="webhook.unknown_number", at=timezone.now())
    response = login(owner_a).get("/admin/calls/callevent/")
    assert response.status_code == 200
    assert [e.pk for e in response.context["cl"].queryset] == [mine.pk]
