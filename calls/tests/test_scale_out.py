"""Two web processes behind nginx (deploy/nginx.conf), on one database and Redis.

- A carrier webhook answered by one process hands out a stream URL naming that process;
  the stream goes through the proxy and lands there, on the session prepared while the
  phone rang: one provider session for the call, none orphaned.
- A stream that still lands on the other process (the named one was unreachable) runs
  the call there, and the orphaned prepared session in the first process is closed within
  seconds, with no hang-up of the live call.
- Controls and limits hold across processes: the live calls page served by one process
  shows the transcript of a call running in the other; the API on that other process
  sends keypad tones (the stream resumes on the call's own process) and hangs the call up
  at the carrier; the org's concurrent-call limit and an API key's rate
  limit count calls and requests of both processes. With psycopg's pool (DB_POOL_MAX_SIZE)
  the two processes hold at most their pools' connections while all of it happens.
- A rolling restart: SIGTERM to the process holding a live call. It answers /readyz 503
  and turns new-call webhooks away (nginx retries them on the other process, which then
  takes the call); the live call goes on until the drain limit, then the agent says
  goodbye, the carrier leg is hung up, the call is stored with the reason
  ``server_shutdown``, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn
from calls.audio.mulaw import array_to_mulaw
from calls.models import Call, CallEvent
from calls.testing.fake_twilio import FakeTwilio
from calls.testing.media_client import CarrierMediaClient
from calls.testing.processes import WebNode, http_get, http_post
from calls.testing.proxy import SKIP_REASON, NginxProxy, nginx_binary
from calls.testing.signals import tone
from calls.tests.factories import make_phone_number, make_ready_agent
from orgs.services import SYSTEM, set_provider_credential
from voiceplatform.testing import subprocess_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(nginx_binary() is None, reason=SKIP_REASON)]

GREETING = array_to_mulaw(tone(0.6, hz=600, level=0.4))
DRAIN_LIMIT_S = 4.0
API_RATE_LIMIT = 4  # per minute and API key, counted across both processes
DB_POOL_MAX_SIZE = 4  # each web process holds at most this many database connections


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.web = {name: WebNode(name, directory / f"{name}.log", {}, drain_timeout_s=DRAIN_LIMIT_S)
                    for name in ("web1", "web2")}
        self.proxy = NginxProxy(directory / "nginx", {name: node.port for name, node in self.web.items()})
        self.media_root = directory / "media"

    def start(self) -> None:
        env = subprocess_env(PUBLIC_BASE_URL=self.proxy.base, MEDIA_ROOT=str(self.media_root),
                             API_RATE_LIMIT=f"{API_RATE_LIMIT}/min", DB_POOL_MAX_SIZE=str(DB_POOL_MAX_SIZE))
        for node in self.web.values():
            node.env = {**env, "NODE_ID": node.node}
            node.start()
        self.proxy.start()
        for node in self.web.values():
            node.wait_ready()

    def log(self) -> str:
        return "\n".join(f"--- {name}\n{node.log()}" for name, node in self.web.items()) + self.proxy.log()

    def stop(self) -> None:
        for node in self.web.values():
            if not node.exited():
                node.terminate()
        try:
            for node in self.web.values():
                wait_until(node.exited, f"{node.node} to exit", timeout=30)
        finally:
            for node in self.web.values():
                node.kill()
            self.proxy.stop()


@pytest.fixture(scope="module")
def cluster(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTwilio, Any]]:
    with FakeTwilio() as twilio, FakeOpenAIRealtime(turn_bytes=8000) as realtime:
        yield twilio, realtime


def _agent_number(org: Any, twilio: FakeTwilio, realtime: FakeOpenAIRealtime, e164: str) -> Any:
    set_provider_credential(org, SYSTEM, "twilio", {"account_sid": twilio.account_sid,
                                                    "auth_token": twilio.auth_token},
                            config={"base_url": twilio.base_url})
    set_provider_credential(org, SYSTEM, "openai", {"api_key": realtime.api_key},
                            config={"websocket_base_url": realtime.url})
    agent = make_ready_agent(org, provider="openai_realtime", first_message="Hello, this is Ada's bakery.")
    return make_phone_number(org, e164=e164, carrier="twilio", inbound_agent=agent)


def _ring(cluster: Cluster, twilio: FakeTwilio, number: Any, *, via: str, caller: str) -> tuple[int, ET.Element | None]:
    """Twilio's voice webhook for a new call, POSTed to ``via`` (a node's or the proxy's
    address; signed for the public URL, the proxy's, as Twilio signs it)."""
    params = twilio.voice_params(call_sid="CA" + caller[-10:].rjust(32, "0"), from_=caller, to=number.e164)
    signed_for = f"{cluster.proxy.base}/webhooks/twilio/voice"
    status, body = http_post(f"{via}/webhooks/twilio/voice", urlencode(params).encode(),
                             {"Content-Type": "application/x-www-form-urlencoded",
                              **twilio.webhook_headers(signed_for, params)})
    return status, (ET.fromstring(body).find("./Connect/Stream") if status == 200 else None)


def _stream(stream: ET.Element) -> tuple[str, dict[str, str]]:
    return stream.get("url", ""), {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}


def _kinds(call: Call) -> list[str]:
    return list(CallEvent.objects.filter(call=call).values_list("kind", flat=True))


def test_the_stream_lands_on_the_process_that_prepared_its_session(cluster: Cluster, fakes: Any,
                                                                       org_a: Any) -> None:
    twilio, realtime = fakes
    number = _agent_number(org_a, twilio, realtime, "+14155550301")
    realtime.script(AgentTurn(audio=GREETING, transcript="Hello, this is Ada's bakery."))

    status, stream = _ring(cluster, twilio, number, via=cluster.web["web1"].base, caller="+14155559001")
    assert status == 200 and stream is not None, cluster.log()
    url, custom = _stream(stream)
    call = Call.objects.get(public_id=custom["call_id"])
    assert url == f"{cluster.proxy.ws_base}/ws/n/web1/twilio/{call.public_id}"
    wait_until(lambda: realtime.connection_count == 1, "the session to be prepared while ringing", timeout=15)

    async def talk() -> CarrierMediaClient:
        async with CarrierMediaClient.twilio(url, parameters=custom) as media:
            await media.wait_for_audio(ms=500, timeout=15)
            await media.hang_up()
        return media

    asyncio.run(talk())
    wait_until(lambda: "session.ended" in _kinds(call), "the session result", timeout=20, log_tail=cluster.log)
    assert realtime.connection_count == 1  # the stream took the prepared session: no second one
    assert f"GET /ws/n/web1/twilio/{call.public_id} HTTP/1.1\" 101" in cluster.proxy.access_log()
    call.refresh_from_db()
    assert call.end_reason == "caller_hangup" and "session.hangup" not in _kinds(call)


def test_an_orphaned_prepared_session_is_closed_within_seconds(cluster: Cluster, fakes: Any, org_a: Any) -> None:
    twilio, realtime = fakes
    number = _agent_number(org_a, twilio, realtime, "+14155550302")
    realtime.script(AgentTurn(audio=GREETING, transcript="Hello."), AgentTurn(audio=GREETING, transcript="Hello."))

    status, stream = _ring(cluster, twilio, number, via=cluster.web["web1"].base, caller="+14155559002")
    assert status == 200 and stream is not None, cluster.log()
    url, custom = _stream(stream)
    call = Call.objects.get(public_id=custom["call_id"])
    wait_until(lambda: realtime.open_connections == 1, "web1 to prepare the session", timeout=15)
    # The stream reaches web2 instead (as when nginx falls back from an unreachable web1).
    misrouted = url.replace(cluster.proxy.ws_base, f"ws://127.0.0.1:{cluster.web['web2'].port}")

    async def talk() -> None:
        async with CarrierMediaClient.twilio(misrouted, parameters=custom) as media:
            await media.wait_for_audio(ms=500, timeout=15)
            # web2 runs the call; web1's idle session closes within seconds, not at 60 s
            await media.wait_until(lambda: realtime.connection_count == 2 and realtime.open_connections == 1,
                                   timeout=10, what="web1's orphaned session to close")
            await media.hang_up()

    asyncio.run(talk())
    wait_until(lambda: "session.ended" in _kinds(call), "the session result", timeout=20, log_tail=cluster.log)
    call.refresh_from_db()
    assert "session.hangup" not in _kinds(call) and call.end_reason == "caller_hangup"
    assert "prepared session closed" in cluster.web["web1"].log(0)


def test_a_rolling_restart_drains_the_live_call_and_takes_new_calls_elsewhere(cluster: Cluster, fakes: Any,
                                                                                 org_a: Any) -> None:
    twilio, realtime = fakes
    number = _agent_number(org_a, twilio, realtime, "+14155550303")
    goodbye = AgentTurn(audio=GREETING[:2400], transcript="Sorry, I have to go. Goodbye.")
    # the second call's greeting may come before or after the drain's goodbye: both say it
    realtime.script(AgentTurn(audio=GREETING, transcript="Hello."), goodbye, goodbye)
    web1 = cluster.web["web1"]

    status, stream = _ring(cluster, twilio, number, via=web1.base, caller="+14155559003")
    assert status == 200 and stream is not None, cluster.log()
    url, custom = _stream(stream)
    live = Call.objects.get(public_id=custom["call_id"])

    async def talk_through_restart() -> CarrierMediaClient:
        async with CarrierMediaClient.twilio(url, parameters=custom) as media:
            await media.wait_for_audio(ms=500, timeout=15)
            web1.terminate()
            await media.wait_until(lambda: http_get(f"{web1.base}/readyz") == 503, timeout=10,
                                   what="web1 to report itself not ready")
            # web1 itself turns a new call away before doing anything
            refused, refused_stream = await asyncio.to_thread(_ring, cluster, twilio, number, via=web1.base,
                                                              caller="+14155559007")
            assert refused == 503 and refused_stream is None
            # A new call meanwhile: through the proxy, web1 turns it away and web2 takes it.
            other_status, other = await asyncio.to_thread(_ring, cluster, twilio, number, via=cluster.proxy.base,
                                                          caller="+14155559004")
            assert other_status == 200 and other is not None, cluster.log()
            assert "/ws/n/web2/" in _stream(other)[0]
            assert media.log.close_code is None  # still talking: nothing cut before the limit
            await media.wait_closed(timeout=DRAIN_LIMIT_S + 15)
        return media

    media = asyncio.run(talk_through_restart())
    wait_until(web1.exited, "web1 to exit after its drain", timeout=20, log_tail=cluster.log)
    assert web1.proc is not None and web1.proc.returncode == 0, web1.log()
    # the rolling restart goes on: web1 comes back and serves again
    web1.start()
    web1.wait_ready()
    wait_until(lambda: "session.ended" in _kinds(live), "the drained call's result", timeout=20)
    live.refresh_from_db()
    assert live.end_reason == "server_shutdown"
    assert not Call.objects.filter(org=org_a, from_number="+14155559007").exists()  # nothing written
    agent_lines = list(live.turns.filter(role="agent").values_list("text", flat=True))
    assert agent_lines[-1] == "Sorry, I have to go. Goodbye."  # the goodbye was spoken, then the hang-up
    hangups = [r for r in twilio.requests_to("POST", rf".*/Calls/{live.carrier_call_id}\.json")
               if r.value("Status") == "completed"]
    assert len(hangups) == 1
    assert media.log.close_code == 1000
    assert "drain finished" in web1.log(0)


def _api(method: str, url: str, key: str, body: dict[str, Any] | None = None) -> int:
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body or {}).encode() if method == "POST" else None
    request = urllib.request.Request(url, method=method, data=data,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_controls_limits_and_the_live_view_work_across_processes(cluster: Cluster, fakes: Any, org_a: Any,
                                                                  owner_a: Any) -> None:
    from django.test import Client

    from orgs.services import create_api_key

    twilio, realtime = fakes
    number = _agent_number(org_a, twilio, realtime, "+14155550304")
    org_a.max_concurrent_calls = 1
    org_a.save(update_fields=["max_concurrent_calls"])
    realtime.script(AgentTurn(audio=GREETING, transcript="Hello, this is Ada's bakery."))
    web1, web2 = cluster.web["web1"], cluster.web["web2"]
    _key, api_key = create_api_key(org_a, SYSTEM, "scale", "editor")
    browser = Client()
    browser.force_login(owner_a)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"

    status, stream = _ring(cluster, twilio, number, via=web1.base, caller="+14155559005")
    assert status == 200 and stream is not None, cluster.log()
    url, custom = _stream(stream)
    call = Call.objects.get(public_id=custom["call_id"])
    sid = call.carrier_call_id
    twilio.calls[sid] = {"sid": sid, "to": number.e164, "from": "+14155559005", "status": "in-progress",
                         "direction": "inbound", "twiml": []}

    async def talk() -> None:
        async with CarrierMediaClient.twilio(url, parameters=custom) as media:
            await media.wait_for_audio(ms=500, timeout=15)
            # the live calls page of web2 shows what web1's session heard and said
            await media.wait_until(lambda: "Hello, this is Ada&#x27;s bakery." in _page(web2.base + "/calls/live/",
                                                                                        cookie),
                                   timeout=15, what="web2's live page to show web1's call")
            # one live call is the org's limit: web2 turns a second call away
            second, second_stream = await asyncio.to_thread(_ring, cluster, twilio, number, via=web2.base,
                                                            caller="+14155559006")
            assert second == 200 and second_stream is None
            # keypad tones and the hang-up through web2's API; the API key's requests count
            # against one limit whichever process serves them
            calls_url = f"{web2.base}/api/v1/calls/{call.public_id}"
            codes = [await asyncio.to_thread(_api, "GET", f"{web1.base}/api/v1/calls/", api_key),
                     await asyncio.to_thread(_api, "POST", f"{calls_url}/dtmf/", api_key, {"digits": "12"}),
                     await asyncio.to_thread(_api, "POST", f"{calls_url}/hangup/", api_key),
                     await asyncio.to_thread(_api, "GET", f"{web1.base}/api/v1/calls/", api_key),
                     await asyncio.to_thread(_api, "GET", f"{web2.base}/api/v1/calls/", api_key)]
            assert codes == [200] * API_RATE_LIMIT + [429]
            # the tones went to the carrier, and the stream resumes where the session lives
            (dtmf_twiml,) = twilio.calls[sid]["twiml"]
            assert 'digits="12"' in dtmf_twiml and f"/ws/n/web1/twilio/{call.public_id}" in dtmf_twiml
            # the connection budget: the pools of both processes, plus this test's own two
            assert await asyncio.to_thread(_database_connections) <= 2 * DB_POOL_MAX_SIZE + 2
            # the hang-up from web2 reached the carrier; Twilio then ends the stream
            assert twilio.calls[sid]["status"] == "completed"
            await media.hang_up()

    asyncio.run(talk())
    wait_until(lambda: "session.ended" in _kinds(call), "the session result", timeout=20, log_tail=cluster.log)
    rejected = Call.objects.filter(org=org_a, from_number="+14155559006").get()
    assert rejected.end_reason == "concurrency_limit"
    assert "call.hangup_requested" in _kinds(call)


def _page(url: str, cookie: str) -> str:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url, headers={"Cookie": cookie}), timeout=15) as response:
        return str(response.read().decode())


def _database_connections() -> int:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def test_a_session_prepared_for_a_call_that_ends_while_ringing_is_closed_within_seconds(
        cluster: Cluster, fakes: Any, org_a: Any) -> None:
    twilio, realtime = fakes
    number = _agent_number(org_a, twilio, realtime, "+14155550305")
    realtime.script(AgentTurn(audio=GREETING, transcript="Hello."))

    status, stream = _ring(cluster, twilio, number, via=cluster.web["web1"].base, caller="+14155559008")
    assert status == 200 and stream is not None, cluster.log()
    call = Call.objects.get(public_id=_stream(stream)[1]["call_id"])
    wait_until(lambda: realtime.open_connections == 1, "web1 to prepare the session", timeout=15)
    # the caller hangs up before the stream opens; Twilio's status callback reaches web2
    url = f"{cluster.proxy.base}/webhooks/twilio/status"
    params = twilio.status_params(call_sid=call.carrier_call_id, status="canceled", sequence=1, duration=0)
    status, _ = http_post(f"{cluster.web['web2'].base}/webhooks/twilio/status", urlencode(params).encode(),
                          {"Content-Type": "application/x-www-form-urlencoded", **twilio.webhook_headers(url, params)})
    assert status == 204, cluster.log()
    wait_until(lambda: realtime.open_connections == 0, "web1's idle session to close", timeout=10,
               log_tail=cluster.log)
    assert not twilio.requests_to("POST", rf".*/Calls/{call.carrier_call_id}\.json")  # no hang-up of an ended call


def test_an_outbound_call_placed_through_one_process_streams_to_it(cluster: Cluster, fakes: Any,
                                                                    org_a: Any) -> None:
    import json

    from orgs.services import create_api_key

    twilio, realtime = fakes
    number = _agent_number(org_a, twilio, realtime, "+14155550306")
    realtime.script(AgentTurn(audio=GREETING, transcript="Hello, this is Ada's bakery."))
    _key, api_key = create_api_key(org_a, SYSTEM, "scale-out", "editor")
    web2 = cluster.web["web2"]
    body = json.dumps({"agent": str(number.inbound_agent.public_id), "to": "+14155559009",
                       "from_number": number.e164}).encode()
    status, reply = http_post(f"{web2.base}/api/v1/calls/", body,
                              {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    assert status == 201, reply
    call = Call.objects.get(public_id=json.loads(reply)["id"])
    (placed,) = twilio.calls.values()
    stream = ET.fromstring(placed["twiml"][0]).find("./Connect/Stream")
    assert stream is not None
    url, custom = _stream(stream)
    assert url == f"{cluster.proxy.ws_base}/ws/n/web2/twilio/{call.public_id}"
    wait_until(lambda: realtime.connection_count == 1, "web2 to prepare the session at placement", timeout=15)

    async def talk() -> None:
        async with CarrierMediaClient.twilio(url, parameters=custom) as media:
            await media.wait_for_audio(ms=500, timeout=15)
            await media.hang_up()

    asyncio.run(talk())
    wait_until(lambda: "session.ended" in _kinds(call), "the session result", timeout=20, log_tail=cluster.log)
    assert realtime.connection_count == 1  # the greeting was ready on answer, and no second session
