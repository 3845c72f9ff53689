"""Hostile tenant vs. the outbound guard (issue 11, item 3: SSRF).

A tenant types destinations (webhook endpoints, MCP servers, provider/carrier base URLs,
knowledge URLs) hoping the platform will call its own network. Every test here turns
``OUTBOUND_ALLOW_PRIVATE`` off (the test settings have it on for the local fakes) and
answers DNS with :func:`voiceplatform.outbound.using_resolver`, so names that do not
exist offline resolve to what the attacker wants. Where a request must actually arrive
(to prove *where* it went), only ``127.0.0.1/32`` is excepted through
``OUTBOUND_ALLOWED_NETWORKS``; every other non-public address stays refused.
"""
from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from integrations import webhooks
from integrations.models import WebhookDelivery
from integrations.services import create_webhook_endpoint
from integrations.testing.webhook_receiver import WebhookReceiver
from orgs.services import SYSTEM
from voiceplatform import outbound

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.215.14"
ONLY_LOOPBACK_ONE = ["127.0.0.1/32"]


class Dns:
    """A resolver the test controls: ``answers[name]`` is a list of answers, one per lookup."""

    def __init__(self, **answers: list[str] | list[list[str]]) -> None:
        self.answers = {k.replace("_", "-").replace("--", "."): v for k, v in answers.items()}
        self.lookups: list[str] = []

    def set(self, name: str, *answers: list[str]) -> Dns:
        self.answers[name] = list(answers)
        return self

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        queue = self.answers.get(host)
        if not queue:
            import socket

            raise socket.gaierror(-2, "Name or service not known")
        return queue.pop(0) if len(queue) > 1 else queue[0]


# --------------------------------------------------------------------------- the address rules


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f000001", "0177.1",
                                  "017700000001", "0x7f.0.0.1", "127.0.1"])
def test_odd_numeric_host_forms_are_refused(hostile: Any, host: str) -> None:
    with pytest.raises(outbound.OutboundRefused, match="numeric forms"):
        outbound.check_url(f"http://{host}/")
    # Even where private targets are allowed: no resolver reads them the same way.
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_url(f"http://{host}/", policy=outbound.Policy(allow_private=True))


@pytest.mark.parametrize("host,reason", [
    ("127.0.0.1", "loopback"), ("[::1]", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("[fc00::1]", "private"), ("169.254.169.254", "link-local"),
    ("[fe80::1]", "link-local"), ("100.100.100.200", "carrier-grade NAT"), ("100.64.0.1", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"), ("[::]", "unspecified"), ("224.0.0.1", "multicast"), ("240.0.0.1", "reserved"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped"), ("[::ffff:169.254.169.254]", "IPv4-mapped"),
    ("[::127.0.0.1]", "IPv4-compatible"), ("[64:ff9b::7f00:1]", "NAT64"), ("[2002:7f00:1::1]", "6to4"),
])
def test_non_public_addresses_are_refused_with_the_reason(hostile: Any, host: str, reason: str) -> None:
    with pytest.raises(outbound.OutboundRefused, match=reason):
        outbound.check_url(f"http://{host}/x")


def test_a_name_with_any_private_record_is_refused(hostile: Any) -> None:
    with outbound.using_resolver(Dns().set("mixed.customer.test", [PUBLIC, "10.0.0.7"])):
        with pytest.raises(outbound.OutboundRefused, match="resolves to 10.0.0.7, a private address"):
            outbound.check_url("https://mixed.customer.test/")


# --------------------------------------------------------------------------- webhooks


def test_webhook_endpoint_in_cgnat_range_is_refused_at_save(hostile: Any, owner_a: Any, api: Any) -> None:
    client = api(owner_a)
    refused = client.post("/api/v1/webhook-endpoints/", {"url": "http://100.100.100.200/latest/meta-data",
                                                         "events": ["call.ended"]}, format="json")
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert "webhook URL is not allowed" in message and "100.100.100.200" in message
    assert "carrier-grade NAT" in message


def test_webhook_refused_at_send_when_dns_moves_to_private(hostile: Any, org_a: Any) -> None:
    dns = Dns().set("hooks.customer.test", [PUBLIC])
    with WebhookReceiver() as receiver, outbound.using_resolver(dns):
        port = receiver.hook_url.split(":")[2].split("/")[0]
        endpoint = create_webhook_endpoint(org_a, SYSTEM, url=f"http://hooks.customer.test:{port}/hook",
                                           events=["batch.completed"])
        dns.set("hooks.customer.test", ["100.100.100.200"])  # after saving, the name moves
        event = webhooks.emit(org_a, "batch.completed", {"n": 1})
        delivery = WebhookDelivery.objects.get(event=event, endpoint=endpoint)
        webhooks.attempt_delivery(delivery.pk)
        attempt = delivery.attempts.get()
        assert attempt.status_code is None
        assert "refused by the outbound policy" in attempt.error and "carrier-grade NAT" in attempt.error
        assert receiver.received == []


def test_webhook_connects_to_the_address_it_checked(hostile: Any, org_a: Any) -> None:
    """DNS rebinding: the first answer passes the check, later answers point elsewhere.
    The delivery arrives at the first (checked) address and the name is looked up once."""
    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    dns = Dns()
    with WebhookReceiver() as receiver, outbound.using_resolver(dns):
        port = receiver.hook_url.split(":")[2].split("/")[0]
        dns.set("hooks.customer.test", ["127.0.0.1"])
        endpoint = create_webhook_endpoint(org_a, SYSTEM, url=f"http://hooks.customer.test:{port}/hook",
                                           events=["batch.completed"])
        receiver.secret = endpoint.secret
        dns.lookups.clear()
        dns.set("hooks.customer.test", ["127.0.0.1"], ["127.0.0.2"], ["169.254.169.254"])
        event = webhooks.emit(org_a, "batch.completed", {"n": 1})
        delivery = WebhookDelivery.objects.get(event=event, endpoint=endpoint)
        webhooks.attempt_delivery(delivery.pk)
        assert delivery.attempts.get().status_code == 200
        assert [r.event_type for r in receiver.received] == ["batch.completed"]
        assert dns.lookups == ["hooks.customer.test"]  # one resolution: nothing resolved the name again


# --------------------------------------------------------------------------- provider / carrier base URLs


@pytest.mark.parametrize("provider,field,secrets", [
    ("openai", "websocket_base_url", {"api_key": "sk-x"}),
    ("openai", "base_url", {"api_key": "sk-x"}),
    ("gemini", "base_url", {"api_key": "g-x"}),
    ("hume", "base_url", {"api_key": "h-x"}),
    ("twilio", "base_url", {"account_sid": "AC" + "0" * 32, "auth_token": "t" * 32}),
    ("plivo", "base_url", {"auth_id": "MA" + "0" * 18, "auth_token": "t" * 32}),
])
def test_provider_base_url_pointing_at_this_server_is_refused(hostile: Any, owner_a: Any, api: Any,
                                                              live_server: Any, provider: str, field: str,
                                                              secrets: dict[str, str]) -> None:
    this_server = live_server.url.replace("http://", "ws://" if field == "websocket_base_url" else "http://")
    refused = api(owner_a).post("/api/v1/credentials/", {"provider": provider, "secrets": secrets,
                                                         "config": {field: this_server}}, format="json")
    assert refused.status_code == 400, refused.content
    message = refused.json()["error"]["message"]
    assert f"The {provider} {field} is not allowed" in message and "loopback address" in message


def test_provider_base_url_is_refused_in_the_admin_and_the_dashboard(hostile: Any, admin_a: Any, org_a: Any,
                                                                     login: Any) -> None:
    from orgs.models import ProviderCredential

    client = login(admin_a)
    admin = client.post("/admin/orgs/providercredential/add/", {
        "provider": "openai", "config": '{"base_url": "http://169.254.169.254/v1"}',
        "new_secrets": '{"api_key": "sk-abcdefgh12345678"}'})
    assert admin.status_code == 200
    assert "The openai base_url is not allowed: the address 169.254.169.254, a link-local address" in \
        admin.content.decode()
    dashboard = client.post("/settings/credentials/", {
        "provider": "gemini", "gemini-secret_api_key": "g-abcdefgh12345678", "gemini-config_base_url": "http://[::ffff:10.0.0.1]/"})
    assert dashboard.status_code == 400
    assert "The gemini base_url is not allowed" in dashboard.content.decode()
    assert not ProviderCredential.objects.for_org(org_a).exists()


def test_openai_bridge_refuses_a_base_url_that_moved_and_uses_the_pinned_address(hostile: Any) -> None:
    from agents.bridges import create_bridge
    from agents.bridges.base import ProviderError, SessionConfig
    from agents.testing.fake_openai import FakeOpenAIRealtime

    with FakeOpenAIRealtime() as fake:
        base = f"ws://realtime.customer.test:{fake.port}/v1"
        dns = Dns().set("realtime.customer.test", ["127.0.0.1"])

        async def connect() -> Any:
            bridge = create_bridge("openai_realtime", SessionConfig(
                instructions="x", credentials={"api_key": fake.api_key}, base_url=base, connect_attempts=1))
            await bridge.connect()
            return bridge

        with outbound.using_resolver(dns):
            with pytest.raises(ProviderError) as refused:
                asyncio.run(connect())
            assert refused.value.code == "base_url_refused" and "loopback address" in refused.value.message
            assert fake.handshakes == []
            # Allowed for 127.0.0.1 only: the name exists only in our resolver, so the SDK
            # can have reached the fake only over the socket the guard connected.
            hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
            dns.set("realtime.customer.test", ["127.0.0.1"], ["169.254.169.254"])

            async def connect_and_close() -> None:
                bridge = await connect()
                await bridge.close()

            asyncio.run(connect_and_close())
        assert len(fake.handshakes) == 1 and dns.lookups.count("realtime.customer.test") == 2


def test_carrier_base_url_is_checked_when_the_sdk_calls(hostile: Any) -> None:
    from calls.carriers import get_carrier
    from calls.carriers.base import CarrierError

    dns = Dns().set("api.carrier.test", ["10.9.8.7"])
    carrier = get_carrier("twilio", {"account_sid": "AC" + "0" * 32, "auth_token": "t" * 32,
                                     "base_url": "http://api.carrier.test"}, public_base_url="https://voice.test")
    with outbound.using_resolver(dns), pytest.raises(CarrierError, match="10.9.8.7, a private address"):
        carrier.hangup("CA" + "0" * 32)


# --------------------------------------------------------------------------- redirects, time, size


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, Any] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.routes.get(self.path, self.routes.get("*"))(self)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.routes.get(self.path, self.routes.get("*"))(self)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_site() -> Iterator[tuple[str, dict[str, Any]]]:
    routes: dict[str, Any] = {}
    handler = type("H", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://site.customer.test:{server.server_port}", routes
    finally:
        server.shutdown()
        server.server_close()


def _redirect(to: str) -> Any:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return handle


def _trickle(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    try:
        for _ in range(1000):  # one byte, then a pause shorter than any per-read timeout
            h.wfile.write(b"x")
            h.wfile.flush()
            threading.Event().wait(0.3)
    except OSError:
        pass


def _big(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.end_headers()  # no Content-Length: the body is read until the cap
    try:
        for _ in range(64):
            h.wfile.write(b"y" * 65536)
    except OSError:
        pass
    h.close_connection = True


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:{port}/",
                                    "http://[::ffff:127.0.0.1]:{port}/", "http://0x7f.1:{port}/"])
def test_redirects_to_private_addresses_are_refused(hostile: Any, local_site: Any, target: str) -> None:
    from knowledge.fetching import FetchError, fetch_url

    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    base, routes = local_site
    port = base.rsplit(":", 1)[1]
    routes["/start"] = _redirect(target.format(port=port))
    routes["/"] = lambda h: h.send_error(500, "must never be reached")
    with outbound.using_resolver(Dns().set("site.customer.test", ["127.0.0.1"])):
        with pytest.raises(FetchError, match="refused") as refused:
            fetch_url(f"{base}/start", max_bytes=10_000, timeout=10)
        # The guarded client refuses the same hop when it follows redirects itself.
        with outbound.sync_client(follow_redirects=True) as client, pytest.raises(outbound.OutboundRefused):
            client.get(f"{base}/start")
    assert isinstance(refused.value.__cause__, outbound.OutboundRefused)


def test_trickling_server_is_cut_off_at_the_total_deadline(hostile: Any, local_site: Any) -> None:
    from knowledge.fetching import FetchError, fetch_url

    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    base, routes = local_site
    routes["/slow"] = _trickle
    with outbound.using_resolver(Dns().set("site.customer.test", ["127.0.0.1"])):
        started = time.monotonic()
        with outbound.sync_client(outbound.Policy(total_timeout_s=1.0), timeout=30) as client:
            with pytest.raises(outbound.OutboundDeadline):
                client.get(f"{base}/slow")  # each byte comes well within the 30 s read timeout
        with pytest.raises(FetchError, match="took longer than 1 s") as cut:
            fetch_url(f"{base}/slow", max_bytes=10_000, timeout=1)
        elapsed = time.monotonic() - started  # for the reader; not asserted (machine speed is an input)
    assert isinstance(cut.value.__cause__, (outbound.OutboundDeadline, httpx.TimeoutException)), elapsed


def test_trickling_webhook_receiver_does_not_hold_the_worker(hostile: Any, org_a: Any, local_site: Any) -> None:
    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    hostile.WEBHOOK_TIMEOUT_S = 1.0
    base, routes = local_site
    routes["/hook"] = _trickle  # headers at once, then 1000 bytes at one every 0.3 s
    with outbound.using_resolver(Dns().set("site.customer.test", ["127.0.0.1"])):
        endpoint = create_webhook_endpoint(org_a, SYSTEM, url=f"{base}/hook", events=["batch.completed"])
        event = webhooks.emit(org_a, "batch.completed", {"n": 1})
        delivery = WebhookDelivery.objects.get(event=event, endpoint=endpoint)
        webhooks.attempt_delivery(delivery.pk)
    attempt = delivery.attempts.get()
    assert attempt.status_code is None and attempt.error == "no response within 1s"


def test_trickling_carrier_base_url_is_cut_off_at_the_deadline(hostile: Any, local_site: Any,
                                                                monkeypatch: Any) -> None:
    from calls.carriers import get_carrier, twilio_carrier
    from calls.carriers.base import CarrierError

    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    monkeypatch.setattr(twilio_carrier, "REST_TIMEOUT_S", 1.0)
    base, routes = local_site
    routes["*"] = _trickle
    carrier = get_carrier("twilio", {"account_sid": "AC" + "0" * 32, "auth_token": "t" * 32, "base_url": base},
                          public_base_url="https://voice.test")
    with outbound.using_resolver(Dns().set("site.customer.test", ["127.0.0.1"])):
        with pytest.raises(CarrierError, match="took longer than its total time limit of 1 s"):
            carrier.hangup("CA" + "0" * 32)


def test_response_bigger_than_the_cap_is_refused(hostile: Any, local_site: Any) -> None:
    from knowledge.fetching import FetchError, fetch_url

    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    base, routes = local_site
    routes["/big"] = _big
    with outbound.using_resolver(Dns().set("site.customer.test", ["127.0.0.1"])):
        with outbound.sync_client(outbound.Policy(max_response_bytes=100_000)) as client:
            with pytest.raises(outbound.OutboundTooLarge, match="100,000 bytes"):
                client.get(f"{base}/big")
        with pytest.raises(FetchError, match="file too large: the page is larger than 50,000 bytes as received, "
                                             "limit 50,000 bytes") as cut:
            fetch_url(f"{base}/big", max_bytes=50_000, timeout=10)
        assert cut.value.code == "too_large"


def test_aiohttp_session_bounds_the_body_it_reads(hostile: Any, local_site: Any) -> None:
    """The aiohttp session (livekit-api) caps what ``read()``/``json()`` take in, like the
    httpx clients: a body past the cap is refused before it is kept."""
    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    base, routes = local_site
    routes["/big"] = _big  # 4 MB, no Content-Length
    routes["/small"] = lambda h: (h.send_response(200), h.send_header("Content-Length", "2"), h.end_headers(),
                                  h.wfile.write(b"{}"))

    async def fetch(path: str) -> bytes:
        async with outbound.aiohttp_session(outbound.Policy(max_response_bytes=100_000)) as session:
            async with session.get(f"{base}{path}") as response:
                return await response.read()

    with outbound.using_resolver(Dns().set("site.customer.test", ["127.0.0.1"])):
        with pytest.raises(outbound.OutboundTooLarge, match="limit of 100,000 bytes"):
            asyncio.run(fetch("/big"))
        assert asyncio.run(fetch("/small")) == b"{}"


def _compressed(body: bytes, coding: str, seen: list[str] | None = None) -> Any:
    def handle(h: BaseHTTPRequestHandler) -> None:
        if seen is not None:
            seen.append(h.headers.get("Accept-Encoding", ""))
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Encoding", coding)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return handle


def test_a_gzip_bomb_is_cut_off_at_the_cap_once_decompressed(hostile: Any, local_site: Any) -> None:
    """The cap counts what the body inflates to, not only the bytes on the wire: 8 MB of
    zeros arrive as an 8 KB gzip body, far under the cap, and the client would decompress
    all of it (a 10 MB cap's worth of gzip is 10 GB)."""
    import gzip

    from knowledge.fetching import FetchError, fetch_url

    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    base, routes = local_site
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))
    assert len(bomb) < 10_000
    asked: list[str] = []
    routes["/bomb"] = _compressed(bomb, "gzip", asked)
    routes["/deflate-bomb"] = _compressed(zlib.compress(b"\0" * (8 * 1024 * 1024)), "deflate")
    page = b"<html><body><p>Opening hours: nine to five.</p></body></html>" * 100
    routes["/page"] = _compressed(gzip.compress(page), "gzip")
    routes["/brotli"] = _compressed(b"\x0b\x02\x80hello\x03", "br")
    routes["/twice"] = _compressed(gzip.compress(gzip.compress(page)), "gzip, gzip")
    with outbound.using_resolver(Dns().set("site.customer.test", ["127.0.0.1"])):
        with pytest.raises(FetchError, match="file too large: the page is larger than 100,000 bytes once "
                                             "decompressed, limit 100,000 bytes") as cut:
            fetch_url(f"{base}/bomb", max_bytes=100_000, timeout=10)
        assert cut.value.code == "too_large"
        assert asked == ["gzip, deflate"]  # only codings the guard can count (no br, no zstd)
        with outbound.sync_client(outbound.Policy(max_response_bytes=100_000)) as client:
            with pytest.raises(outbound.OutboundTooLarge, match="100,000 bytes once decompressed"):
                client.get(f"{base}/deflate-bomb")
            for unaskable in ("/brotli", "/twice"):
                with pytest.raises(outbound.OutboundTooLarge, match="which was not accepted"):
                    client.get(f"{base}{unaskable}")
            # Compression within the cap still works as before.
            assert client.get(f"{base}/page").content == page
        assert fetch_url(f"{base}/page", max_bytes=100_000, timeout=10).data == page


def test_livekit_url_is_pinned_when_the_credential_is_tested(hostile: Any, org_a: Any) -> None:
    """livekit-api runs on aiohttp: its session resolves each host once through the guard
    and connects to that address (a name that moves to a private address is refused)."""
    from calls.testing.fake_livekit import FakeLiveKit
    from orgs.credential_checks import check_credential
    from orgs.models import ProviderCredential

    with FakeLiveKit() as fake_server:
        fake: Any = fake_server
        port = fake.url.rsplit(":", 1)[1]
        credential = ProviderCredential.objects.create(
            org=org_a, provider="livekit",
            secrets={**fake.credentials(), "url": f"http://livekit.customer.test:{port}"})
        dns = Dns().set("livekit.customer.test", ["127.0.0.1"])
        with outbound.using_resolver(dns):
            refused = check_credential(credential)
            assert refused.kind == "other" and "loopback address" in refused.message and fake.requests == []
            # 127.0.0.1 allowed: the name exists only in our resolver, so the request reached
            # the fake over the address the guard checked; the next answer moves it away.
            hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
            dns.set("livekit.customer.test", ["127.0.0.1"], ["169.254.169.254"])
            assert check_credential(credential).kind == "ok" and len(fake.requests) == 1
            moved = check_credential(credential)
            assert moved.kind == "other" and "169.254.169.254" in moved.message and len(fake.requests) == 1
