"""The "talk to this agent" page offers LiveKit as the transport when the org has a
LiveKit credential: the form shows the choice, POST makes the room call (as the API
does) and renders the page that joins it with the vendored livekit-client and a token
for this room only; the page's live state and transcript come from the call's live
updates, for members of the call's org only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.staticfiles import finders
from livekit import api

from calls.models import Call, Direction, Status, TranscriptTurn
from calls.services.timeline import push_live_update
from calls.tests.factories import make_ready_agent
from orgs.models import ProviderCredential
from voiceplatform import outbound

pytestmark = pytest.mark.django_db

SECRET = "s" * 40


def _attr(html: str, name: str) -> str:
    return html.split(f'{name}="', 1)[1].split('"', 1)[0]


def _store_livekit(org: Any, url: str = "wss://lk.example.test") -> None:
    ProviderCredential.objects.create(org=org, provider="livekit",
                                      secrets={"url": url, "api_key": "APIkey", "api_secret": SECRET})


def test_the_form_offers_livekit_only_when_the_org_has_it(login: Any, editor_a: Any, org_a: Any) -> None:
    agent = make_ready_agent(org_a)
    page = login(editor_a).get(f"/calls/web/?agent={agent.public_id}").content.decode()
    assert 'name="transport"' not in page
    # Without the credential a forged choice is refused with the reason, and no call is made.
    refused = login(editor_a).post("/calls/web/", {"agent": str(agent.public_id), "transport": "livekit"})
    assert refused.status_code == 400 and "no LiveKit credential" in refused.content.decode()
    assert not Call.objects.exists()
    _store_livekit(org_a)
    page = login(editor_a).get(f"/calls/web/?agent={agent.public_id}").content.decode()
    assert 'value="livekit"' in page and 'value="web" checked' in page


def test_choosing_livekit_starts_a_room_call_and_renders_the_joining_page(
    login: Any, editor_a: Any, viewer_a: Any, outsider: Any, org_a: Any
) -> None:
    agent = make_ready_agent(org_a)
    _store_livekit(org_a)
    with outbound.using_resolver(lambda host, port: ["203.0.113.7"]):
        response = login(editor_a).post("/calls/web/", {"agent": str(agent.public_id), "transport": "livekit",
                                                        "var_customer_name": "Cy"})
    assert response.status_code == 200
    html = response.content.decode()
    call = Call.objects.get()
    assert call.direction == Direction.LIVEKIT and call.status == Status.IN_PROGRESS
    assert call.variables == {"customer_name": "Cy"} and call.livekit_participant.startswith("browser-")
    assert _attr(html, "data-url") == "wss://lk.example.test" and _attr(html, "data-room") == call.livekit_room
    claims = api.TokenVerifier("APIkey", SECRET).verify(_attr(html, "data-token"))
    assert claims.identity == call.livekit_participant
    assert claims.video is not None and claims.video.room == call.livekit_room and claims.video.room_join
    assert not claims.video.room_admin and not claims.video.can_publish_data
    assert SECRET not in html
    # The vendored SDK, served from this site (no CDN), and the page's script.
    assert "vendor/livekit-client/livekit-client.umd.js" in html and "calls/livekit-call.js" in html
    assert "calls/webcall.js" not in html and "https://cdn" not in html
    assert finders.find("vendor/livekit-client/livekit-client.umd.js") and finders.find("calls/livekit-call.js")
    assert login(viewer_a).post("/calls/web/", {"agent": str(agent.public_id), "transport": "livekit"}).status_code == 403
    assert login(outsider).post("/calls/web/", {"agent": str(agent.public_id), "transport": "livekit"}).status_code == 404
    assert Call.objects.count() == 1


def test_a_server_url_the_outbound_guard_refuses_starts_no_call(login: Any, editor_a: Any, org_a: Any,
                                                                hostile: Any) -> None:
    agent = make_ready_agent(org_a)
    _store_livekit(org_a, "wss://metadata.internal.test")
    with outbound.using_resolver(lambda host, port: ["169.254.169.254"]):
        response = login(editor_a).post("/calls/web/", {"agent": str(agent.public_id), "transport": "livekit"})
    assert response.status_code == 400 and "LiveKit server cannot be used" in response.content.decode()
    assert not Call.objects.exists()


def test_the_live_panel_shows_the_calls_state_and_transcript_to_its_org_only(
    login: Any, viewer_a: Any, outsider: Any, org_a: Any
) -> None:
    agent = make_ready_agent(org_a)
    call = Call.objects.create(org=org_a, agent=agent, direction=Direction.LIVEKIT, status=Status.IN_PROGRESS,
                               livekit_room="r1", livekit_participant="browser-1")
    push_live_update(str(call.public_id), "transcript", {"role": "agent", "text": "Hello from the room."})
    push_live_update(str(call.public_id), "transcript", {"role": "caller", "text": "Where is my order?"})
    url = f"/calls/web/?call={call.public_id}"
    live = login(viewer_a).get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Agent:</strong> <span>Hello from the room." in live and "You:</strong> <span>Where is my order?" in live
    assert 'hx-trigger="every 2s"' in live and 'data-final="false"' in live
    call.status, call.end_reason = Status.COMPLETED, "caller_hangup"
    call.save(update_fields=["status", "end_reason"])
    done = login(viewer_a).get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-final="true"' in done and "hx-trigger" not in done  # polling stops
    assert "Where is my order?" not in done  # once over: the stored transcript, not the live cache
    TranscriptTurn.objects.create(call=call, index=0, role="agent", text="Hello from the room.", start_ms=0, end_ms=900)
    done = login(viewer_a).get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Agent:</strong> <span>Hello from the room." in done
    assert login(outsider).get(url, HTTP_HX_REQUEST="true").status_code == 404
    assert login(viewer_a).get("/calls/web/?call=nope", HTTP_HX_REQUEST="true").status_code == 404
