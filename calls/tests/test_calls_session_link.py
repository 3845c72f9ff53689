"""The consumer's entry points: authorize_stream, load_session_context,
record_session_result (persisting transcript, events, latency, recording) — and the
post-call analysis task with the org's OpenAI credential against a fake API."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import pytest

from calls.media.result import SessionEvent, SessionResult, TranscriptTurn
from calls.models import Call, CallEvent, Recording
from calls.services.lifecycle import record_session_result, record_session_result_sync
from calls.services.placement import place_outbound_call
from calls.services.session import build_session_context, load_session_context, recording_temp_path
from calls.services.streams import authorize_stream, issue_stream_target
from calls.services.timeline import live_updates, push_live_update
from calls.tasks import analyze_call
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.calls_fixtures import store_credential
from orgs.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)


def _wav(path: Path, seconds: float) -> None:
    frames = int(8000 * seconds)
    data = b"\x00\x00\x00\x00" * frames
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, 2, 8000,
                         32000, 4, 16, b"data", len(data))
    path.write_bytes(header + data)


def _placed(number: Any, agent: Any, owner: Any) -> Call:
    return place_outbound_call(number.org, agent, "+14155557777", number, {"customer_name": "Ada"},
                               Actor(user=owner))


def _result(call: Call, recording: str | None = None) -> SessionResult:
    return SessionResult(
        call_public_id=str(call.public_id), transport="twilio",
        transcript=[
            TranscriptTurn("agent", "Hello Ada, how can I help?", 0, 1800),
            TranscriptTurn("caller", "I'd like to move my delivery to Friday.", 2500, 4800),
            TranscriptTurn("agent", "Done, it's moved to Friday.", 5400, 7000, interrupted=True),
            TranscriptTurn("caller", "Thanks!", 7200, 7600),
            TranscriptTurn("agent", "Bye!", 8000, 8500),
        ],
        events=[SessionEvent("barge_in", 6500, {"heard_ms": 1100}), SessionEvent("tool.end_call", 8100, {})],
        latencies_ms=[600.0, 400.0],
        recording_path=recording, end_reason="agent_hangup", error=None, usage={"input_tokens": 321},
        duration_ms=8600,
    )


def test_authorize_stream_checks_token_and_liveness(fake_twilio: Any, twilio_number: Any, agent_a: Any,
                                                   owner_a: Any) -> None:
    call = _placed(twilio_number, agent_a, owner_a)
    target = issue_stream_target(call)
    assert asyncio.run(authorize_stream(str(call.public_id), target.token))
    wrong = target.token[:-1] + ("1" if target.token[-1] == "0" else "0")
    assert not asyncio.run(authorize_stream(str(call.public_id), wrong))
    assert not asyncio.run(authorize_stream("not-a-uuid", target.token))
    Call.objects.filter(pk=call.pk).update(status="completed")
    assert not asyncio.run(authorize_stream(str(call.public_id), target.token))


def test_session_context_is_built_from_the_recorded_version(fake_twilio: Any, twilio_number: Any,
                                                            agent_a: Any, owner_a: Any) -> None:
    call = _placed(twilio_number, agent_a, owner_a)
    # editing the draft after the call was placed does not change what the call runs
    agent_a.system_prompt = "Something else entirely."
    agent_a.save()
    context = asyncio.run(load_session_context(str(call.public_id)))
    assert context.provider == "echo"
    assert context.config.instructions == "You help Ada with order unknown."
    assert context.max_duration_s == agent_a.max_call_duration_s
    assert context.hangup is not None and context.transfer is not None and context.send_dtmf is not None
    assert str(context.recording_path).endswith(f"{call.public_id}.wav")
    asyncio.run(context.hangup("agent_hangup"))
    call.refresh_from_db()
    assert fake_twilio.calls[call.carrier_call_id]["status"] == "completed" and call.end_reason == "agent_hangup"


def test_hangup_of_a_call_the_caller_already_left_is_quiet(fake_twilio: Any, twilio_number: Any, agent_a: Any,
                                                            owner_a: Any) -> None:
    call = _placed(twilio_number, agent_a, owner_a)
    fake_twilio.calls[call.carrier_call_id]["status"] = "completed"  # the caller hung up first
    context = build_session_context(str(call.public_id))
    asyncio.run(context.hangup("agent_hangup"))
    assert CallEvent.objects.filter(call=call, kind="carrier.already_ended").exists()
    assert not CallEvent.objects.filter(call=call, kind="carrier.hangup_failed").exists()


def test_provider_error_hangup_speaks_an_apology(fake_twilio: Any, twilio_number: Any, agent_a: Any,
                                                 owner_a: Any) -> None:
    call = _placed(twilio_number, agent_a, owner_a)
    context = build_session_context(str(call.public_id))
    Call.objects.filter(pk=call.pk).update(status="in_progress")
    asyncio.run(context.hangup("provider_error"))
    assert "technical difficulties" in fake_twilio.calls[call.carrier_call_id]["twiml"][-1]
    call.refresh_from_db()
    assert call.end_reason == "provider_error"


def test_provider_error_before_answer_just_cancels(fake_twilio: Any, twilio_number: Any, agent_a: Any,
                                                   owner_a: Any) -> None:
    call = _placed(twilio_number, agent_a, owner_a)
    asyncio.run(build_session_context(str(call.public_id)).hangup("provider_error"))
    assert fake_twilio.calls[call.carrier_call_id]["status"] == "completed"
    assert len(fake_twilio.calls[call.carrier_call_id]["twiml"]) == 1  # no apology to nobody


def test_live_updates_round_trip_through_the_cache(fake_twilio: Any, twilio_number: Any, agent_a: Any,
                                                   owner_a: Any) -> None:
    call = _placed(twilio_number, agent_a, owner_a)
    cid = str(call.public_id)
    push_live_update(cid, "transcript", {"role": "caller", "text": "hi"})
    push_live_update(cid, "transcript_delta", {"role": "agent", "text": "Hel"})  # word-level: skipped
    for n in range(3):
        push_live_update(cid, "transcript", {"role": "agent", "text": f"line {n}"})
    assert [u["data"]["text"] for u in live_updates(cid)] == ["hi", "line 0", "line 1", "line 2"]
    assert [u["data"]["text"] for u in live_updates(cid, limit=2)] == ["line 1", "line 2"]
    record_session_result_sync(cid, _result(call))
    assert live_updates(cid) == []


@pytest.fixture
def eager_celery() -> Any:
    conf = analyze_call.app.conf
    before = conf.task_always_eager
    conf.task_always_eager = True
    yield
    conf.task_always_eager = before


def test_record_session_result_persists_everything_and_runs_analysis(
    fake_twilio: Any, twilio_number: Any, agent_a: Any, owner_a: Any, fake_openai: Any, eager_celery: Any,
    settings: Any, tmp_path: Path,
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    store_credential(twilio_number.org, "openai", fake_openai.credentials)
    agent_a.analysis_schema = {"type": "object", "properties": {"new_day": {"type": "string"}}}
    agent_a.success_criteria = "The delivery was rescheduled."
    agent_a.save()
    from agents.services import publish_agent
    from orgs.services import SYSTEM

    publish_agent(agent_a, SYSTEM)
    agent_a.refresh_from_db()
    call = _placed(twilio_number, agent_a, owner_a)
    fake_openai.reply_json({"summary": "Caller moved the delivery to Friday.", "fields": {"new_day": "Friday"},
                            "success": {"achieved": True, "reason": "Rescheduled."}})
    wav = recording_temp_path(str(call.public_id))
    _wav(wav, 2.0)
    record_session_result_sync(str(call.public_id), _result(call, str(wav)))

    call.refresh_from_db()
    turns = list(call.turns.order_by("index"))
    assert [t.role for t in turns] == ["agent", "caller", "agent", "caller", "agent"]
    assert [t.latency_ms for t in turns] == [None, None, 600.0, None, 400.0]
    assert turns[2].interrupted
    # the session's length is kept with its usage (per-minute pricing)
    assert (call.latency_p50_ms, call.end_reason, call.usage) == (500.0, "agent_hangup",
                                                                  {"input_tokens": 321, "session_ms": 8600})
    barge = CallEvent.objects.get(call=call, kind="barge_in")
    assert barge.offset_ms == 6500 and barge.data == {"heard_ms": 1100}
    recording = Recording.objects.get(call=call)
    assert recording.duration_ms == 2000 and recording.file.name.startswith(f"recordings/{call.org.public_id}/")
    assert not wav.exists() and (tmp_path / recording.file.name).exists()
    # the analysis ran with the org's credential on the fake
    (request,) = fake_openai.requests
    assert request.json["response_format"]["json_schema"]["schema"]["properties"]["fields"]["properties"] == {
        "new_day": {"type": "string"}}
    assert "I'd like to move my delivery to Friday." in request.json["messages"][1]["content"]
    assert (call.analysis_status, call.analysis["fields"], call.analysis["success"]["achieved"]) == (
        "done", {"new_day": "Friday"}, True)

    # a second delivery of the same result changes nothing
    record_session_result_sync(str(call.public_id), _result(call))
    assert call.turns.count() == 5 and CallEvent.objects.filter(call=call, kind="session.ended").count() == 1


def test_analysis_failures_are_stored_with_their_reason_and_it_can_be_rerun(
    fake_twilio: Any, twilio_number: Any, agent_a: Any, owner_a: Any, fake_openai: Any, eager_celery: Any,
    api: Any,
) -> None:
    call = _placed(twilio_number, agent_a, owner_a)
    fake_openai.reply_text("this is not json")
    with_no_credential = call.org
    record_session_result_sync(str(call.public_id), _result(call))
    call.refresh_from_db()
    # No key: the analysis could not run, so it is skipped with the reason (issue 13), not failed.
    assert call.analysis_status == "skipped" and "no OpenAI key" in call.analysis_error
    assert with_no_credential == call.org

    store_credential(call.org, "openai", fake_openai.credentials)
    response = api(owner_a).post(f"/api/v1/calls/{call.public_id}/analyze/")
    assert response.status_code == 200
    call.refresh_from_db()
    assert call.analysis_status == "failed" and "not JSON" in call.analysis_error

    fake_openai.reply_json({"summary": "ok", "fields": {}, "success": {"achieved": "yes", "reason": "x"}})
    analyze_call.apply(args=[str(call.org.public_id), str(call.public_id)])
    call.refresh_from_db()
    assert call.analysis_status == "failed" and "success/achieved" in call.analysis_error

    fake_openai.reply_json({"summary": "ok", "fields": {}, "success": {"achieved": False, "reason": "no"}})
    assert analyze_call.apply(args=[str(call.org.public_id), str(call.public_id)]).get() == "done"
    call.refresh_from_db()
    assert call.analysis_status == "done" and call.analysis["summary"] == "ok"


def test_web_call_completes_from_the_session(org_a: Any, agent_a: Any) -> None:
    from calls.tests.factories import make_call

    call = make_call(org_a, direction="web", status="in_progress", agent=agent_a,
                     agent_version=agent_a.published_version)
    record_session_result_sync(str(call.public_id), _result(call))
    call.refresh_from_db()
    assert (call.status, call.duration_s, call.end_reason) == ("completed", 8, "agent_hangup")


def test_session_tools_send_sms_transfer_and_dtmf_through_the_carrier(fake_twilio: Any, twilio_number: Any,
                                                                       owner_a: Any) -> None:
    from calls.media.result import ToolError
    from calls.tests.factories import make_ready_agent

    agent = make_ready_agent(twilio_number.org, name="Texter", builtin_tools=["send_sms", "transfer_call",
                                                                              "send_dtmf"],
                             transfer_destinations=[{"label": "Desk", "number": "sip:desk@example.com"}])
    call = _placed(twilio_number, agent, owner_a)
    context = build_session_context(str(call.public_id))
    result = asyncio.run(context.tools["send_sms"]({"body": "Your code is 1234"}, None))
    (message,) = fake_twilio.messages.values()
    assert result["message_id"] == message["sid"]
    assert (message["to"], message["from"], message["body"]) == ("+14155557777", twilio_number.e164,
                                                                 "Your code is 1234")
    with pytest.raises(ToolError, match="^the message is empty"):
        asyncio.run(context.tools["send_sms"]({"body": " "}, None))
    with pytest.raises(ToolError, match="not been answered"):
        asyncio.run(context.transfer("Desk"))
    Call.objects.filter(pk=call.pk).update(status="in_progress")
    with pytest.raises(ToolError, match="^“\\+14155550123” is not one of this agent's transfer destinations \\(Desk\\)"):
        asyncio.run(context.transfer("+14155550123"))
    asyncio.run(context.transfer("desk"))
    assert "<Sip>sip:desk@example.com</Sip>" in fake_twilio.calls[call.carrier_call_id]["twiml"][-1]
    asyncio.run(context.send_dtmf("42#"))
    twiml = fake_twilio.calls[call.carrier_call_id]["twiml"][-1]
    assert '<Play digits="42#" />' in twiml and f'/ws/twilio/{call.public_id}"' in twiml
    assert CallEvent.objects.filter(call=call, kind="sms.sent").exists()
    assert CallEvent.objects.filter(call=call, kind="dtmf.sent").exists()


def test_web_calls_get_no_carrier_actions(org_a: Any, agent_a: Any) -> None:
    from calls.tests.factories import make_call

    call = make_call(org_a, direction="web", status="in_progress", agent=agent_a,
                     agent_version=agent_a.published_version)
    context = build_session_context(str(call.public_id))
    assert context.hangup is None and context.transfer is None and context.send_dtmf is None
    assert context.tools == {}


def test_knowledge_search_tool_is_wired_for_agents_with_bases(org_a: Any) -> None:
    from calls.tests.factories import make_call, make_ready_agent
    from knowledge.tests.factories import make_knowledge_base

    base = make_knowledge_base(org_a)
    plain = make_ready_agent(org_a, name="No KB", builtin_tools=["search_knowledge"])
    with_kb = make_ready_agent(org_a, name="KB", builtin_tools=["search_knowledge"],
                               knowledge_base_ids=[str(base.public_id)])
    for agent, wired in ((plain, False), (with_kb, True)):
        call = make_call(org_a, direction="web", status="in_progress", agent=agent,
                         agent_version=agent.published_version)
        context = build_session_context(str(call.public_id))
        assert ("search_knowledge" in context.tools) is wired
    # the handler validates the model's arguments before touching any index
    assert asyncio.run(context.tools["search_knowledge"]({"query": " "}, None)) == {
        "error": "query must be a non-empty string"}


def test_mcp_tools_are_offered_during_the_call_and_closed_after(org_a: Any) -> None:
    from calls.services.session import _TOOLBOXES
    from calls.tests.factories import make_call, make_ready_agent
    from integrations.mcp_servers.telegram import TelegramConfig, build_server
    from integrations.models import McpServer
    from integrations.testing.fake_telegram import FakeTelegram
    from integrations.testing.mcp import serve_mcp

    with FakeTelegram(tokens={"7:BOT"}) as fake:
        config = TelegramConfig(caller_tokens=frozenset({"platform-token"}), api_base=fake.url)
        with serve_mcp(build_server(config), config) as url:
            server = McpServer.objects.create(org=org_a, name="Telegram", url=f"{url}/mcp",
                                              auth_headers={"Authorization": "Bearer platform-token",
                                                            "X-Telegram-Bot-Token": "7:BOT"})
            broken = McpServer.objects.create(org=org_a, name="Gone", url="http://127.0.0.1:9/mcp")
            agent = make_ready_agent(org_a, name="With tools",
                                     mcp_server_ids=[str(server.public_id), str(broken.public_id)])
            call = make_call(org_a, direction="web", status="in_progress", agent=agent,
                             agent_version=agent.published_version)

            async def run() -> tuple[list[str], list[str], bool]:
                context = await load_session_context(str(call.public_id))
                names = [t["name"] for t in context.config.tools]
                handlers = sorted(context.tools)
                await record_session_result(str(call.public_id), _result(call))
                return names, handlers, str(call.public_id) in _TOOLBOXES

            names, handlers, still_open = asyncio.run(run())
    assert names and all(n.startswith("telegram__") for n in names)
    assert set(names) <= set(handlers)
    assert not still_open  # closed when the call's result was recorded
    left_out = CallEvent.objects.get(call=call, kind="mcp.unavailable").data
    assert left_out["servers"] == ["gone"] and list(left_out["errors"]) == ["gone"]
    assert "connection to http://127.0.0.1:9/mcp refused" in left_out["errors"]["gone"]
