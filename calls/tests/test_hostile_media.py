"""Adversarial tests of the media streams, the keypad and abandoned web calls
(issue 11): what a token holder, a careless log reader or a closed browser tab
can do to a call.

- A stream token opens one live socket per call: a second socket with the same
  token, even through another `web` process (uvicorn and Daphne subprocesses
  sharing the test database and Redis), is closed with 4403 and recorded, and
  the first call goes on untouched (one session, one recording, all of it). Plivo
  and browser streams, by either form of the URL (/ws/… and the scale-out
  /ws/n/<node>/…), go through the same gate.
- The token is in no log line: an end-to-end inbound Twilio call and a browser
  call run against servers logging at DEBUG (uvicorn's and Daphne's access logs
  included), and every line they wrote is searched for it.
- The claim is a lease in the database: released when the socket's session has
  ended (a later socket may connect again), lapsing if its process died.
- A session prepared while the phone rang in one process steps aside (no hang-up,
  no result) when the carrier's socket went to another process.
- Keypad digits (PINs, card numbers) reach the agent but are stored only if the
  agent keeps them.
- A web call whose browser never connects is ended after a minute, freeing its
  concurrent-call slot (time is moved, not waited for).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.utils import timezone

from agents.bridges.base import SessionConfig
from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn
from calls.audio.mulaw import array_to_mulaw
from calls.media.result import STREAM_BUSY, STREAM_GRANTED, STREAM_REFUSED, SessionContext, SessionResult
from calls.models import Call, CallEvent, Recording, Status, TranscriptTurn
from calls.services import streams
from calls.services.errors import ConcurrencyLimitReached
from calls.services.lifecycle import expire_stale_calls, record_session_result_sync, transition
from calls.services.placement import start_web_call
from calls.services.session import build_session_context
from calls.services.streams import (
    STREAM_CLAIM_LEASE,
    claim_stream_sync,
    issue_stream_target,
    release_stream_claim_sync,
    renew_stream_claim_sync,
)
from calls.services.timeline import live_updates
from calls.tasks import expire_unconnected_web_call_task
from calls.testing.fake_twilio import FakeTwilio
from calls.testing.media_client import CarrierMediaClient
from calls.testing.media_server import InMemoryCalls, MediaTestServer
from calls.testing.processes import Processes, free_port, http_get, http_post, server_argv
from calls.testing.signals import speech_mulaw, tone
from calls.tests.factories import make_phone_number, make_ready_agent
from orgs.models import AuditLog
from orgs.services import SYSTEM, create_api_key, set_provider_credential
from voiceplatform.testing import subprocess_env, wait_until

CALLER = "+14155559876"


class WebProcesses:
    """Two `web` processes on one database and Redis, as production runs them behind a
    balancer: uvicorn (production's server) and Daphne (`make run`'s), both logging at
    DEBUG with their access logs on, each to its own file."""

    def __init__(self, directory: Path) -> None:
        self.uvicorn_port = free_port()
        self.daphne_port = free_port()
        self.media_root = directory / "media"
        self.servers = {kind: Processes(directory / f"{kind}.log") for kind in ("uvicorn", "daphne")}

    @property
    def uvicorn(self) -> str:
        return f"127.0.0.1:{self.uvicorn_port}"

    @property
    def daphne(self) -> str:
        return f"127.0.0.1:{self.daphne_port}"

    def start(self) -> None:
        # Carriers are told to call the uvicorn process (PUBLIC_BASE_URL).
        env = subprocess_env(PUBLIC_BASE_URL=f"http://{self.uvicorn}", MEDIA_ROOT=str(self.media_root),
                             LOG_LEVEL="DEBUG", PYTHONUNBUFFERED="1")  # Daphne's access log writes unflushed
        self.servers["uvicorn"].spawn(server_argv("uvicorn", self.uvicorn_port, debug=True), env)
        self.servers["daphne"].spawn(server_argv("daphne", self.daphne_port, debug=True), env)
        self.servers["uvicorn"].wait_healthy(f"http://{self.uvicorn}")
        self.servers["daphne"].wait_healthy(f"http://{self.daphne}")

    def logs(self) -> str:
        """Everything both servers wrote (stdout and stderr)."""
        return "".join(server.log(tail=0) for server in self.servers.values())

    def flushed_logs(self) -> str:
        """The logs once both servers have written every line about what came before: each
        is sent one last request, and its access line is waited for."""
        marker = uuid.uuid4().hex
        for address in (self.uvicorn, self.daphne):
            http_get(f"http://{address}/flush-{marker}")
        wait_until(lambda: self.logs().count(marker) >= 2, "both servers' access lines")
        return self.logs()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="module")
def web(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProcesses]:
    processes = WebProcesses(tmp_path_factory.mktemp("web"))
    processes.start()
    try:
        yield processes
    finally:
        processes.stop()


def _live_inbound_call(org: Any, agent: Any) -> tuple[Call, str]:
    """An answered inbound Twilio call of ``agent`` and its freshly issued stream token."""
    now = timezone.now()
    call = Call.objects.create(
        org=org, direction="inbound", from_number=CALLER, to_number="+14155550100", agent=agent,
        agent_version=agent.published_version, carrier="twilio", carrier_call_id="CA" + "e" * 32,
        status=Status.IN_PROGRESS, queued_at=now, answered_at=now,
    )
    return call, issue_stream_target(call).token


def _kinds(call: Call) -> list[str]:
    return list(CallEvent.objects.filter(call=call).order_by("id").values_list("kind", flat=True))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_second_socket_with_the_same_token_is_refused_and_the_first_call_is_untouched(
    web: WebProcesses, org_a: Any
) -> None:
    agent = make_ready_agent(org_a, name="Echo")
    call, token = _live_inbound_call(org_a, agent)
    params = {"call_id": str(call.public_id), "token": token}
    first_url = f"ws://{web.uvicorn}/ws/twilio/{call.public_id}"
    other_process = f"ws://{web.daphne}/ws/twilio/{call.public_id}"
    speech = speech_mulaw(1.5, seed=5)

    async def talk() -> tuple[CarrierMediaClient, list[int | None]]:
        refused: list[int | None] = []
        async with CarrierMediaClient.twilio(first_url, parameters=params) as first:
            await first.play(speech_mulaw(0.6, seed=4))
            await first.wait_for_audio(ms=300, timeout=20)  # the echo agent answers: the session is live
            # The same token from another process, then from the same one: both refused.
            for url in (other_process, first_url):
                async with CarrierMediaClient.twilio(url, parameters=params) as second:
                    refused.append(await second.wait_closed(timeout=20))
            before = len(first.log.received)
            await first.play(speech)
            await first.wait_caller_audio_sent()
            await first.wait_until(lambda: len(first.log.received) >= before + len(speech) // 2, timeout=20,
                                   what="the first call's audio to keep flowing")
            await first.hang_up()
        return first, refused

    first, refused = asyncio.run(talk())
    assert refused == [4403, 4403], web.logs()[-3000:]
    wait_until(lambda: "session.ended" in _kinds(call), "the first session's result")
    kinds = _kinds(call)
    assert kinds.count("stream.duplicate_refused") == 2
    assert kinds.count("stream_started") == 1  # one session: no second provider session was opened
    refusals = CallEvent.objects.filter(call=call, kind="stream.duplicate_refused")
    assert {e.data["transport"] for e in refusals} == {"twilio"} and all(e.source == "media" for e in refusals)
    call.refresh_from_db()
    # the refused sockets did not end or hang up the real call, and it ended as the caller hung up
    assert call.status == Status.IN_PROGRESS and call.end_reason == "caller_hangup"
    recording = Recording.objects.get(call=call)
    # the whole call is in the recording (not truncated by a second session reopening it)
    assert recording.duration_ms >= 2100 and (web.media_root / recording.file.name).exists()

    # Once the first socket's session has ended and released the stream, a carrier
    # reconnecting with the same (still current) token is let in again.
    wait_until(lambda: Call.objects.filter(pk=call.pk, stream_claim="").exists(), "the claim to be released")

    async def reconnect() -> int:
        async with CarrierMediaClient.twilio(other_process, parameters=params) as again:
            await again.play(speech_mulaw(0.5, seed=6))
            await again.wait_for_audio(ms=200, timeout=20)
            await again.hang_up()
            return len(again.log.received)

    assert asyncio.run(reconnect()) > 0
    # The server finishes the reconnected session (the claim, taken when its socket was
    # let in, is released only once the session is over) before the test's database is
    # flushed under it.
    wait_until(lambda: Call.objects.filter(pk=call.pk, stream_claim="").exists(), "the claim to be released again")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_no_log_line_of_an_end_to_end_call_holds_its_stream_token(
    web: WebProcesses, org_a: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeTwilio() as twilio:
        set_provider_credential(org_a, SYSTEM, "twilio", {"account_sid": twilio.account_sid,
                                                          "auth_token": twilio.auth_token},
                                config={"base_url": twilio.base_url})
        agent = make_ready_agent(org_a, name="Echo")
        number = make_phone_number(org_a, e164="+14155550100", carrier="twilio", inbound_agent=agent)

        # 1. An inbound Twilio call: signed webhook → TwiML → media stream → hang-up → status.
        base = f"http://{web.uvicorn}"
        params = twilio.voice_params(call_sid="CA" + "9" * 32, from_=CALLER, to=number.e164)
        voice_url = f"{base}/webhooks/twilio/voice"
        status, body = http_post(voice_url, urlencode(params).encode(),
                             {"Content-Type": "application/x-www-form-urlencoded",
                              **twilio.webhook_headers(voice_url, params)})
        assert status == 200, web.logs()[-3000:]
        stream = ET.fromstring(body).find("./Connect/Stream")
        assert stream is not None
        custom = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        phone_token = custom["token"]
        call = Call.objects.get(public_id=custom["call_id"])
        assert phone_token not in stream.get("url", "")

        async def phone() -> None:
            async with CarrierMediaClient.twilio(stream.get("url", ""), parameters=custom) as media:
                await media.play(speech_mulaw(0.8, seed=7))
                await media.wait_for_audio(ms=400, timeout=20)
                await media.send_dtmf("7")
                await media.hang_up()

        asyncio.run(phone())
        wait_until(lambda: "session.ended" in _kinds(call), "the phone call's session result")
        status_url = f"{base}/webhooks/twilio/status"
        done = twilio.status_params(call_sid=call.carrier_call_id, status="completed", sequence=3, duration=2)
        status, _ = http_post(status_url, urlencode(done).encode(),
                          {"Content-Type": "application/x-www-form-urlencoded",
                           **twilio.webhook_headers(status_url, done)})
        assert status == 204, web.logs()[-3000:]

    # 2. A browser call through the other process (Daphne), started with an API key.
    _key, api_key = create_api_key(org_a, SYSTEM, "web", "editor")
    status, reply = http_post(f"http://{web.daphne}/api/v1/calls/web/",
                          json.dumps({"agent": str(agent.public_id)}).encode(),
                          {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    assert status == 201, reply
    started = json.loads(reply)
    web_token = started["stream_token"]
    web_call = Call.objects.get(public_id=started["id"])
    assert web_token not in started["websocket_path"]
    pcm = tone(0.6, hz=440, sample_rate=16000).astype("<i2").tobytes()

    async def browser() -> None:
        from websockets.asyncio.client import connect

        async with connect(f"ws://{web.daphne}{started['websocket_path']}",
                           origin=f"http://{web.daphne}") as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"event": "start", "sampleRate": 16000, "token": web_token}))
            for offset in range(0, len(pcm), 640):
                await ws.send(pcm[offset:offset + 640])
                await asyncio.sleep(0.02)
            await ws.send(json.dumps({"event": "stop"}))

    asyncio.run(browser())
    wait_until(lambda: "session.ended" in _kinds(web_call), "the web call's session result")

    # 3. The token once more, now the call has ended: refused (a logged refusal, with no token in it).
    async def late() -> int | None:
        async with CarrierMediaClient.twilio(stream.get("url", ""), parameters=custom) as media:
            return await media.wait_closed(timeout=20)

    assert asyncio.run(late()) == 4403

    logs = web.flushed_logs()
    # The capture works: both servers logged the sockets' paths at INFO and our own records at DEBUG.
    assert f"/ws/twilio/{call.public_id}" in logs and f"/ws/web/{web_call.public_id}" in logs
    assert '"level": "DEBUG"' in logs and "media stream refused" in logs
    for token in (phone_token, web_token):
        assert token not in logs
        # In this process too (the fake carrier's own websockets library logs the frames
        # it sends; that is the carrier's side of the wire, not the platform's).
        ours = [r for r in caplog.records if not r.name.startswith("websockets")]
        assert not [r for r in ours if token in r.getMessage() or token in repr(r.__dict__)]


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (make test installs it)")
@pytest.mark.django_db(transaction=True)
def test_the_web_call_page_sends_its_token_in_the_first_message_not_the_url(
    web: WebProcesses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's "talk to this agent" page in a real browser (fake microphone)."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model
    from django.db import connections
    from playwright.sync_api import sync_playwright

    from orgs.services import create_organization

    password = "Web-call-pw-77"
    user = get_user_model().objects.create_user("caller@web.test", "caller@web.test", password)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    org = create_organization("Web Call Org", user)
    agent = make_ready_agent(org, name="Echo")
    base = f"http://{web.uvicorn}"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
    flags = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--use-fake-ui-for-media-stream",
             "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=flags, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.goto(f"{base}/accounts/login/")
            page.fill("input[name=login]", user.email)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/dashboard/")
            page.goto(f"{base}/calls/web/?agent={agent.public_id}")
            page.click("form.web-call-start button[type=submit]")
            page.wait_for_selector("#web-call-status:text('connected')", timeout=20000)
            call = Call.objects.get(org=org, direction="web")
            token = page.get_attribute("#web-call", "data-stream-token") or ""
            assert token and sockets == [f"ws://{web.uvicorn}/ws/web/{call.public_id}"]  # no token in the URL
            wait_until(lambda: Call.objects.filter(pk=call.pk, stream_connected_at__isnull=False).exists(),
                       "the browser's socket to authenticate")
            page.click("#web-call-hangup")
            page.wait_for_selector("#web-call-status:text-is('ended')", timeout=20000)
            assert errors == []
        finally:
            browser.close()
            # The ORM calls above ran inside Playwright's dispatcher context, with their own
            # connection: closed here, or it outlives the test database.
            connections.close_all()
    wait_until(lambda: "session.ended" in _kinds(call), "the browser call's result")
    call.refresh_from_db()
    # Once "provider_error" on a loaded machine (a send to the closed socket; see
    # test_a_send_to_a_socket_the_caller_already_closed_ends_the_call_as_a_hang_up):
    # should it fail again, the timeline and the servers' lines about the call say why.
    timeline = list(CallEvent.objects.filter(call=call).order_by("id").values_list("kind", "data"))
    assert (call.status, call.end_reason) == (Status.COMPLETED, "caller_hangup"), (
        call.error, timeline, [line for line in web.logs().splitlines() if str(call.public_id) in line][-40:])
    assert token not in web.flushed_logs()


# --------------------------------------------------------------- the claim itself

@pytest.mark.django_db
def test_the_stream_claim_is_one_socket_at_a_time_a_lease_and_refuses_quietly(org_a: Any) -> None:
    agent = make_ready_agent(org_a)
    call, token = _live_inbound_call(org_a, agent)
    cid = str(call.public_id)
    with time_machine.travel(datetime(2026, 12, 5, 12, 0, tzinfo=UTC), tick=False) as clock:
        assert claim_stream_sync(cid, token, "twilio", "first") == STREAM_GRANTED
        assert claim_stream_sync(cid, token, "plivo", "second") == STREAM_BUSY
        assert claim_stream_sync(cid.replace("-", ""), token, "twilio", "third") == STREAM_BUSY  # same call
        # a wrong token, an unknown call: refused, and nothing written (anyone can knock)
        assert claim_stream_sync(cid, "f" * 48, "twilio", "x") == STREAM_REFUSED
        assert claim_stream_sync(cid, "", "twilio", "x") == STREAM_REFUSED
        assert claim_stream_sync("not-a-call", token, "twilio", "x") == STREAM_REFUSED
        assert _kinds(call).count("stream.duplicate_refused") == 2
        # a live socket renews its lease, so it outlasts the first lease term
        clock.shift(STREAM_CLAIM_LEASE.total_seconds() - 5)
        assert renew_stream_claim_sync(cid, "first") and not renew_stream_claim_sync(cid, "second")
        clock.shift(10)
        assert claim_stream_sync(cid, token, "twilio", "late") == STREAM_BUSY
        # a socket whose process died stops renewing: its lease lapses and the stream can be taken
        clock.shift(STREAM_CLAIM_LEASE.total_seconds())
        assert claim_stream_sync(cid, token, "twilio", "after-crash") == STREAM_GRANTED
        assert not renew_stream_claim_sync(cid, "first")
        release_stream_claim_sync(cid, "first")  # a stale release changes nothing
        assert claim_stream_sync(cid, token, "twilio", "y") == STREAM_BUSY
        release_stream_claim_sync(cid, "after-crash")
        assert claim_stream_sync(cid, token, "twilio", "reconnect") == STREAM_GRANTED
        # a rotated token (new markup) retires the old one
        new_token = issue_stream_target(call).token
        release_stream_claim_sync(cid, "reconnect")
        assert claim_stream_sync(cid, token, "twilio", "z") == STREAM_REFUSED
        assert claim_stream_sync(cid, new_token, "twilio", "z") == STREAM_GRANTED
        # markup that itself replaces the stream (Twilio's DTMF resume) hands the claim to its socket
        resumed = issue_stream_target(call, replaces_stream=True).token
        assert claim_stream_sync(cid, resumed, "twilio", "resumed") == STREAM_GRANTED
        assert not renew_stream_claim_sync(cid, "z")
        release_stream_claim_sync(cid, "z")  # the old socket's late release leaves the new claim alone
        assert claim_stream_sync(cid, resumed, "twilio", "w") == STREAM_BUSY
        release_stream_claim_sync(cid, "resumed")
        Call.objects.filter(pk=call.pk).update(status=Status.COMPLETED)
        assert claim_stream_sync(cid, resumed, "twilio", "ended") == STREAM_REFUSED
    call.refresh_from_db()
    assert call.stream_connected_at == datetime(2026, 12, 5, 12, 0, tzinfo=UTC)  # the first socket's time


@pytest.mark.django_db
def test_a_token_holder_looping_on_a_busy_stream_writes_a_bounded_number_of_events(org_a: Any) -> None:
    from calls.services.streams import MAX_DUPLICATE_EVENTS

    call, token = _live_inbound_call(org_a, make_ready_agent(org_a))
    assert claim_stream_sync(str(call.public_id), token, "twilio", "first") == STREAM_GRANTED
    for n in range(MAX_DUPLICATE_EVENTS + 15):
        assert claim_stream_sync(str(call.public_id), token, "twilio", f"dup{n}") == STREAM_BUSY
    assert _kinds(call).count("stream.duplicate_refused") == MAX_DUPLICATE_EVENTS


class DatabaseStreamGate(InMemoryCalls):
    """The media test server's hooks with the production stream gate: the token check
    and the one-socket claim in the database (calls.services.streams); contexts and
    results stay in memory."""

    async def claim(self, call_id: str, token: str, transport: str, claim_id: str) -> str:
        return await streams.claim_stream(call_id, token, transport, claim_id)

    async def renew_claim(self, call_id: str, claim_id: str) -> bool:
        return await streams.renew_stream_claim(call_id, claim_id)

    async def release_claim(self, call_id: str, claim_id: str) -> None:
        await streams.release_stream_claim(call_id, claim_id)


def _closing(func: Any) -> Any:
    """``func`` for a worker thread: its database connection is closed afterwards."""
    from django.db import connection

    def run(*args: Any) -> Any:
        try:
            return func(*args)
        finally:
            connection.close()

    return run


def _start_message(transport: str, call_id: str, token: str) -> str:
    if transport == "web":
        return json.dumps({"event": "start", "sampleRate": 16000, "token": token})
    return json.dumps({"event": "start", "sequenceNumber": 1, "extra_headers": f"token={token},call_id={call_id}",
                       "start": {"callId": str(uuid.uuid4()), "streamId": str(uuid.uuid4()), "tracks": ["inbound"],
                                 "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}}})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("transport", ["plivo", "web"])
def test_plivo_and_web_streams_take_one_socket_whichever_node_prefix_the_url_has(org_a: Any,
                                                                                  transport: str) -> None:
    """The scale-out URLs (/ws/n/<node>/…) lead to the same consumers and the same gate:
    a second socket with the call's token, by the other form of the URL, gets a 4403 and
    a ``stream.duplicate_refused`` event; the first stays in; a token in such a URL is
    refused at the upgrade."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    agent = make_ready_agent(org_a)
    call, token = _live_inbound_call(org_a, agent)
    cid = str(call.public_id)
    gate = DatabaseStreamGate()
    gate.contexts[cid] = SessionContext(call_public_id=cid, provider="echo", config=SessionConfig(speaks_first="caller"))
    origin = {"origin": "http://127.0.0.1:8000"} if transport == "web" else {}  # a dashboard page
    with MediaTestServer(gate) as server:
        base = f"ws://127.0.0.1:{server.port}/ws"
        first_url, second_url = f"{base}/n/web-2/{transport}/{cid}", f"{base}/{transport}/{cid}"

        async def sockets() -> tuple[int | None, bool]:
            async with connect(first_url, **origin) as first:  # type: ignore[arg-type]
                await first.send(_start_message(transport, cid, token))
                await asyncio.to_thread(_closing(wait_until), lambda: Call.objects.filter(pk=call.pk).exclude(
                    stream_claim="").exists(), "the first socket to hold the stream")
                async with connect(second_url, **origin) as second:  # type: ignore[arg-type]
                    await second.send(_start_message(transport, cid, token))
                    try:
                        while True:
                            await asyncio.wait_for(second.recv(), 20)
                    except ConnectionClosed:
                        pass
                    code = second.close_code
                await first.ping()  # the first socket is still open and served
                still_in = await asyncio.to_thread(_closing(
                    lambda: Call.objects.filter(pk=call.pk).exclude(stream_claim="").exists()))
                await first.send(json.dumps({"event": "stop"}))
            # a token in a node-prefixed URL: refused at the upgrade (it is in some access log now)
            try:
                async with connect(f"{first_url}/{token}", **origin):  # type: ignore[arg-type]
                    pass
            except InvalidStatus as exc:
                assert exc.response.status_code == 403
            else:
                raise AssertionError("a token in the URL was let in")
            return code, still_in

        code, still_in = asyncio.run(sockets())
        gate.wait_result(cid)
    assert code == 4403 and still_in
    refusals = CallEvent.objects.filter(call=call, kind="stream.duplicate_refused")
    assert [e.data["transport"] for e in refusals] == [transport]


# ------------------------------------------------------------------ keypad digits

PIN = "4271"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("keep", [False, True])
def test_keypad_digits_reach_the_agent_but_are_stored_only_if_it_keeps_them(
    org_a: Any, settings: Any, tmp_path: Path, keep: bool
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    greeting = array_to_mulaw(tone(0.5, hz=600, level=0.4))
    with FakeOpenAIRealtime(turn_bytes=8000) as realtime:
        set_provider_credential(org_a, SYSTEM, "openai", {"api_key": realtime.api_key},
                                config={"websocket_base_url": realtime.url})
        agent = make_ready_agent(org_a, name="Bank", provider="openai_realtime", first_message="Your PIN, please.",
                                 keep_keypad_digits=keep)
        realtime.script(AgentTurn(audio=greeting, transcript="Your PIN, please."),
                        AgentTurn(audio=greeting, transcript="Thank you, one moment."))
        call, _token = _live_inbound_call(org_a, agent)
        cid = str(call.public_id)
        context = build_session_context(cid)
        assert context.keep_keypad_digits is keep
        with MediaTestServer() as server:
            _, token = server.calls.add_call(context, call_id=cid)

            async def press() -> None:
                async with CarrierMediaClient.twilio(server.url("twilio", cid, token)) as media:
                    await media.wait_for_audio(ms=500, timeout=20)
                    for key in PIN + "#":
                        await media.send_dtmf(key)
                    await media.wait_until(lambda: realtime.user_texts() != [], what="the entry to reach the model")
                    await media.wait_for_audio(ms=1000, timeout=20)  # the agent's answer
                    await media.hang_up()

            asyncio.run(press())
            result = server.calls.wait_result(cid)
        # the model was told which keys were pressed, whatever the agent keeps
        assert realtime.user_texts() == ["[The caller pressed keypad keys: 4 2 7 1 #]"]

    live = json.dumps(live_updates(cid))  # the dashboard's live view, while the call runs
    record_session_result_sync(cid, result)
    with_status = Call.objects.get(pk=call.pk)
    transition(with_status, Status.COMPLETED, duration_s=5)  # → call.finalized → call.ended webhook
    from integrations.webhooks import payload_for

    entry = AuditLog.objects.get(org=org_a, action="call.finalized", target_id=cid)
    stored = {
        "events": json.dumps(list(CallEvent.objects.filter(call=call).values("kind", "data"))),
        "transcript": json.dumps(list(TranscriptTurn.objects.filter(call=call).values_list("text", flat=True))),
        "webhook": json.dumps(payload_for(entry)),
        "live": live,
    }
    keys = [e.data for e in CallEvent.objects.filter(call=call, kind="dtmf").order_by("offset_ms", "id")]
    caller_turns = list(TranscriptTurn.objects.filter(call=call, role="caller").values_list("text", flat=True))
    assert CallEvent.objects.get(call=call, kind="keypad_entry").data == {"keys": 5, "ended_by": "terminator"}
    if keep:
        assert [k["digit"] for k in keys] == list(PIN + "#")
        assert caller_turns == ["[The caller pressed keypad keys: 4 2 7 1 #]"]
        assert "4 2 7 1" in stored["webhook"]
    else:
        assert keys == [{}] * 5  # five presses, no keys
        assert caller_turns == ["[The caller pressed 5 keypad keys]"]
        for where, text in stored.items():
            assert "4 2 7 1" not in text and '"digit"' not in text, where


@pytest.mark.django_db
def test_keeping_keypad_digits_is_an_explicit_agent_setting_off_by_default(org_a: Any, editor_a: Any,
                                                                           api: Any) -> None:
    from django.urls import reverse

    from agents.models import Agent, AgentVersion

    client = api(editor_a)
    created = client.post(reverse("api:agent-list"), {"name": "Bank", "provider": "echo"}, format="json")
    assert created.status_code == 201 and created.json()["keep_keypad_digits"] is False
    agent = Agent.objects.get(public_id=created.json()["id"])
    assert client.post(reverse("api:agent-publish", kwargs={"public_id": agent.public_id}), {},
                       format="json").status_code == 201
    # a version published before the setting existed is not an unpublished change of every agent
    version = AgentVersion.objects.get(agent=agent)
    older = {k: v for k, v in version.config.items() if k != "keep_keypad_digits"}
    AgentVersion.objects.filter(pk=version.pk).update(config=older)
    agent.refresh_from_db()
    assert agent.has_unpublished_changes is False
    changed = client.patch(reverse("api:agent-detail", kwargs={"public_id": agent.public_id}),
                           {"keep_keypad_digits": True}, format="json")
    assert changed.status_code == 200 and changed.json()["keep_keypad_digits"] is True
    assert changed.json()["has_unpublished_changes"] is True


# ------------------------------------------------------------ abandoned web calls

@pytest.mark.django_db
def test_a_web_call_whose_browser_never_connects_is_ended_after_a_minute_and_frees_its_slot(org_a: Any) -> None:
    org_a.max_concurrent_calls = 2
    org_a.save()
    agent = make_ready_agent(org_a)
    with time_machine.travel(datetime(2026, 12, 5, 12, 0, tzinfo=UTC), tick=False) as clock:
        abandoned = start_web_call(org_a, agent, SYSTEM)
        connected = start_web_call(org_a, agent, SYSTEM)
        with pytest.raises(ConcurrencyLimitReached):
            start_web_call(org_a, agent, SYSTEM)
        # the second browser connects (its socket claims the stream), the first never does
        assert claim_stream_sync(str(connected.call.public_id), connected.stream_token, "web", "tab") == STREAM_GRANTED
        org_id = str(org_a.public_id)
        clock.shift(59)
        assert expire_unconnected_web_call_task.apply(args=(org_id, str(abandoned.call.public_id))).get() is False
        clock.shift(2)
        assert expire_unconnected_web_call_task.apply(args=(org_id, str(abandoned.call.public_id))).get() is True
        assert expire_unconnected_web_call_task.apply(args=(org_id, str(connected.call.public_id))).get() is False
        abandoned.call.refresh_from_db()
        assert (abandoned.call.status, abandoned.call.end_reason, abandoned.call.duration_s) == (
            Status.FAILED, "web_never_connected", 0)
        assert abandoned.call.finalized_at is not None  # no session will ever report: the call.ended webhook goes
        # its token no longer opens anything, and the slot is free again
        assert claim_stream_sync(str(abandoned.call.public_id), abandoned.stream_token, "web", "late") == STREAM_REFUSED
        third = start_web_call(org_a, agent, SYSTEM)
        # the beat sweep catches one whose own expiry task was lost
        clock.shift(61)
        assert expire_stale_calls() == 1
        third.call.refresh_from_db()
        connected.call.refresh_from_db()
        assert third.call.end_reason == "web_never_connected" and connected.call.status == Status.IN_PROGRESS


# ------------------------------------------- pre-connect with several web processes

def test_a_prepared_session_whose_stream_went_to_another_process_steps_aside() -> None:
    hangups: list[str] = []

    async def hangup(reason: str) -> None:
        hangups.append(reason)

    async def taken_elsewhere() -> bool:
        return True

    with MediaTestServer() as server:
        holder: dict[str, str] = {}
        call_id, _ = server.add_call("twilio", lambda: SessionContext(
            call_public_id=holder["id"], provider="echo", config=SessionConfig(speaks_first="caller"),
            stream_wait_s=0.3, hangup=hangup, stream_elsewhere=taken_elsewhere))
        holder["id"] = call_id
        server.prepare("twilio", call_id)  # the answer webhook warmed a session up in this process
        result = server.calls.wait_result(call_id)
    # the carrier's socket landed on another process: the call there must not be hung up
    assert result.end_reason == "stream_elsewhere" and hangups == []


@pytest.mark.django_db(transaction=True)  # the check runs in a pool thread, on its own connection
def test_the_database_says_when_a_call_s_stream_is_held_elsewhere_and_a_stepped_aside_result_is_not_kept(
    org_a: Any,
) -> None:
    call, token = _live_inbound_call(org_a, make_ready_agent(org_a))
    cid = str(call.public_id)
    context = build_session_context(cid)
    assert context.stream_elsewhere is not None and asyncio.run(context.stream_elsewhere()) is False
    assert claim_stream_sync(cid, token, "twilio", "other-process") == STREAM_GRANTED
    assert asyncio.run(context.stream_elsewhere()) is True
    aside = SessionResult(call_public_id=cid, transport="twilio", transcript=[], events=[], latencies_ms=[],
                          recording_path=None, end_reason="stream_elsewhere", error=None, usage={}, duration_ms=0)
    record_session_result_sync(cid, aside)
    assert "session.ended" not in _kinds(call)  # the other process's session will report the call
