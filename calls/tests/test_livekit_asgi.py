"""The API sends an agent into a LiveKit room from a real Daphne process: the view
schedules the agent on the server's event loop (`dispatch_agent`), the agent joins
the fake LiveKit room with the real SDK, greets the human, and the call completes
in Postgres when the human leaves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, Until
from calls.audio.mulaw import array_to_mulaw
from calls.models import Call, Status
from calls.testing.fake_livekit_rtc import FakeLiveKitServer
from calls.testing.processes import Processes, free_port, http_post, server_argv
from calls.testing.signals import tone
from calls.tests.factories import make_ready_agent
from calls.tests.test_livekit_transport import loud_ms
from orgs.models import ProviderCredential
from orgs.services import SYSTEM, create_api_key, set_provider_credential
from voiceplatform.testing import subprocess_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def daphne(django_db_setup: Any, tmp_path: Path) -> Iterator[tuple[str, Processes]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes = Processes(tmp_path / "daphne.log")
    processes.spawn(server_argv("daphne", port), subprocess_env(PUBLIC_BASE_URL=base, MEDIA_ROOT=str(tmp_path)))
    try:
        processes.wait_healthy(base)
        yield base, processes
    finally:
        processes.stop()


def test_the_api_sends_the_agent_into_the_room_from_the_server_process(
    daphne: tuple[str, Processes], org_a: Any
) -> None:
    base, processes = daphne
    openai = FakeOpenAIRealtime(turn_bytes=8000)
    with openai, FakeLiveKitServer(room="support-1", human_identity="visitor-7") as livekit:
        set_provider_credential(org_a, SYSTEM, "openai", {"api_key": openai.api_key},
                                config={"websocket_base_url": openai.url})
        ProviderCredential.objects.create(org=org_a, provider="livekit", secrets={
            "url": livekit.url, "api_key": livekit.api_key, "api_secret": livekit.api_secret})
        agent = make_ready_agent(org_a, provider="openai_realtime", first_message="Hello from the room.")
        openai.script(Until(livekit.agent_track_answered, "the agent's track to be negotiated"),
                      AgentTurn(audio=array_to_mulaw(tone(1.0, hz=600, level=0.4)), transcript="Hello from the room."))
        _key, api_key = create_api_key(org_a, SYSTEM, "livekit", "editor")

        body = json.dumps({"agent": str(agent.public_id), "room": "support-1", "participant": "visitor-7"})
        status, reply = http_post(f"{base}/api/v1/calls/livekit/", body.encode(),
                                  {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
        assert status == 201, reply
        call = Call.objects.get(public_id=json.loads(reply)["id"])

        wait_until(lambda: loud_ms(livekit.heard(), 600) >= 700, "the human to hear the greeting",
                   log_tail=processes.log)
        assert livekit.joins[0].identity == call.livekit_agent_identity
        livekit.human_leaves()

        def completed() -> bool:
            call.refresh_from_db()
            return call.status == Status.COMPLETED

        wait_until(completed, "the call to complete", log_tail=processes.log)
    assert call.end_reason == "caller_hangup"
    assert list(call.turns.values_list("role", "text")) == [("agent", "Hello from the room.")]
