"""Custom HTTP function tools against a real endpoint on 127.0.0.1 (the fake verifies every
signature with the README snippet a customer would paste): the signed request, arguments
generated from the tool's schema arriving intact, every failure coming back as a short
error for the model, validation on save, the API (write-only headers, one-time secret,
other orgs see 404), and a tool call during a real media session (fake OpenAI Realtime)
landing on the call's timeline."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings

# the schema → arguments strategy of the built-ins' contract tests
from calls.tests.test_tool_contracts import arguments_for
from integrations import http_tools
from integrations.http_tool_client import MAX_RESPONSE_BYTES, HttpToolSpec, call_http_tool, request_body
from integrations.models import HttpTool, HttpToolGrant
from integrations.testing.tool_endpoint import FakeToolEndpoint
from integrations.tests.factories import make_http_tool
from integrations.webhooks_signing import verify_signature
from orgs.models import AuditLog
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db

TOOLS = "/api/v1/http-tools/"
SECRET = "htsec_test-secret"
# Every logger at DEBUG for these tests; no record may show a signing secret or a header
# value (integrations/tests/conftest.py). Issue 11: "no secret in any log line".
LOG_SECRETS = (SECRET, "tool-secret", "very-secret", "other-secret", "query-secret")
LOG_SECRET_PATTERNS = (r"htsec_[A-Za-z0-9_-]{8,}",)  # the secrets the API makes as the tests run
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order": {"type": "string", "minLength": 1, "maxLength": 40},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
        "express": {"type": "boolean"},
        "channel": {"enum": ["phone", "web"]},
        "items": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    "required": ["order"],
    "additionalProperties": False,
}


@pytest.fixture
def endpoint() -> Iterator[FakeToolEndpoint]:
    with FakeToolEndpoint(secret=SECRET) as fake:
        yield cast(FakeToolEndpoint, fake)


def spec(endpoint: FakeToolEndpoint, path: str = "echo", *, method: str = "POST", timeout_s: float = 5.0,
         headers: dict[str, str] | None = None) -> HttpToolSpec:
    return HttpToolSpec(name="lookup_order", url=f"{endpoint.url}/{path}", method=method, timeout_s=timeout_s,
                        signing_secret=SECRET, headers=headers or {"Authorization": "Bearer tool-secret"})


# --------------------------------------------------------------------------- the request


def test_request_is_signed_with_the_documented_algorithm_and_carries_call_and_headers(endpoint: Any) -> None:
    outcome = asyncio.run(call_http_tool(spec(endpoint), {"order": "A1"}, call_id="call-123",
                                         variables={"customer": "Ada"}))
    assert outcome.ok and outcome.status == 200 and outcome.output["order_status"] == "shipped"
    (got,) = endpoint.received
    assert got.signature_ok  # the README snippet accepted it
    # and so does the library verifier, over exactly the documented body
    assert verify_signature(SECRET, got.raw, got.headers["x-vp-signature"])
    assert got.raw == request_body("lookup_order", {"order": "A1"}, "call-123", {"customer": "Ada"})
    assert got.document == {"tool": "lookup_order", "arguments": {"order": "A1"},
                            "call": {"id": "call-123", "variables": {"customer": "Ada"}}}
    assert got.headers["authorization"] == "Bearer tool-secret"
    assert got.headers["x-vp-tool"] == "lookup_order" and got.headers["x-vp-call-id"] == "call-123"
    assert got.headers["content-type"] == "application/json"


def test_a_tampered_body_or_another_secret_does_not_verify(endpoint: Any) -> None:
    asyncio.run(call_http_tool(spec(endpoint), {"order": "A1"}, call_id="c", variables={}))
    (got,) = endpoint.received
    from integrations.webhooks_signing import SignatureError

    with pytest.raises(SignatureError):
        verify_signature(SECRET, got.raw.replace(b"A1", b"B2"), got.headers["x-vp-signature"])
    with pytest.raises(SignatureError):
        verify_signature("htsec_other", got.raw, got.headers["x-vp-signature"])


def test_get_sends_the_signed_document_as_the_payload_parameter(endpoint: Any) -> None:
    outcome = asyncio.run(call_http_tool(spec(endpoint, method="GET"), {"order": "A1"}, call_id="c", variables={}))
    assert outcome.ok
    (got,) = endpoint.received
    assert got.method == "GET" and got.signature_ok and got.document["arguments"] == {"order": "A1"}


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(arguments=arguments_for(SCHEMA))
def test_arguments_generated_from_the_schema_reach_the_endpoint_intact(endpoint: Any, arguments: Any) -> None:
    outcome = asyncio.run(call_http_tool(spec(endpoint), arguments, call_id="c", variables={}))
    assert outcome.ok, outcome.error
    assert endpoint.received[-1].signature_ok
    assert endpoint.received[-1].document["arguments"] == arguments
    assert outcome.output["received"] == arguments


def test_text_answers_are_given_to_the_model_as_text(endpoint: Any) -> None:
    outcome = asyncio.run(call_http_tool(spec(endpoint, "text"), {}, call_id="c", variables={}))
    assert outcome.ok and outcome.output == "Order A1 ships on Friday."


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(("path", "timeout_s", "reason"), [
    ("fail", 5.0, "the endpoint answered HTTP 500"),
    ("badjson", 5.0, "the endpoint answered invalid JSON"),
    ("big", 5.0, f"the response was larger than {MAX_RESPONSE_BYTES // 1024} KB"),
    ("never", 1.0, "no answer within 1s"),
])
def test_failures_come_back_as_a_short_reason(endpoint: Any, path: str, timeout_s: float, reason: str) -> None:
    outcome = asyncio.run(call_http_tool(spec(endpoint, path, timeout_s=timeout_s), {}, call_id="c", variables={}))
    assert not outcome.ok and outcome.error == reason


def test_a_private_address_is_refused_at_call_time(endpoint: Any, settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = False
    outcome = asyncio.run(call_http_tool(spec(endpoint), {"order": "A1"}, call_id="c", variables={}))
    assert not outcome.ok and (outcome.error or "").startswith("the tool's address is not allowed:")
    assert "loopback" in (outcome.error or "") and endpoint.received == []


def test_an_unreachable_endpoint_is_an_error_not_an_exception() -> None:
    unreachable = HttpToolSpec(name="t", url="http://127.0.0.1:9/x", method="POST", timeout_s=2, signing_secret=SECRET)
    outcome = asyncio.run(call_http_tool(unreachable, {}, call_id="c", variables={}))
    assert not outcome.ok and (outcome.error or "").startswith("could not reach the endpoint")


# --------------------------------------------------------------------------- services


def test_create_validates_each_field_with_a_clear_error(org_a: Any) -> None:
    good: dict[str, Any] = dict(name="lookup_order", url="https://tools.example.com/t", parameters=SCHEMA)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"name": "2fast"}, "name", "starting with a letter"),
        ({"name": "end_call"}, "name", "built-in"),
        ({"parameters": {"type": "string"}}, "parameters", "object schema"),
        ({"parameters": {"type": "object", "properties": {"a": {"type": "strng"}}}}, "parameters",
         "Not a valid JSON Schema at properties/a/type"),
        ({"parameters": {"type": "object", "properties": {"a": {"$ref": "https://evil.example/s.json"}}}},
         "parameters", "$ref must point inside"),
        ({"url": "ftp://tools.example.com"}, "url", "https://"),
        ({"timeout_s": 90}, "timeout_s", "between 1 and 30"),
        ({"method": "TRACE"}, "method", "one of"),
        ({"headers": {"X-VP-Signature": "x"}}, "headers", "set by the platform"),
        ({"headers": {"Bad Name": "x"}}, "headers", "Invalid header name"),
    ]
    for change, field, words in cases:
        with pytest.raises(http_tools.HttpToolError) as caught:
            http_tools.create_http_tool(org_a, SYSTEM, **{**good, **change})
        assert caught.value.field == field and words in caught.value.message, (change, caught.value.message)
    http_tools.create_http_tool(org_a, SYSTEM, **good)
    with pytest.raises(http_tools.HttpToolError, match="already has a tool named") as dup:
        http_tools.create_http_tool(org_a, SYSTEM, **good)
    assert dup.value.field == "name"


def test_private_urls_are_refused_on_save_unless_the_development_setting_allows(org_a: Any, settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = False
    with pytest.raises(http_tools.HttpToolError, match="not allowed") as caught:
        http_tools.create_http_tool(org_a, SYSTEM, name="t", url="https://127.0.0.1/x")
    assert caught.value.field == "url"
    with pytest.raises(http_tools.HttpToolError, match="https://"):
        http_tools.create_http_tool(org_a, SYSTEM, name="t", url="http://tools.example.com/x")


def test_audit_has_header_names_never_values(org_a: Any) -> None:
    tool = http_tools.create_http_tool(org_a, SYSTEM, name="t", url="https://tools.example.com/x",
                                       headers={"Authorization": "Bearer very-secret"})
    http_tools.update_http_tool(tool, SYSTEM, headers={"X-Api-Key": "other-secret"}, timeout_s=3)
    entries = str(list(AuditLog.objects.filter(action__startswith="http_tool.").values_list("changes", flat=True)))
    assert "very-secret" not in entries and "other-secret" not in entries and tool.signing_secret not in entries
    assert "X-Api-Key" in entries
    tool.refresh_from_db()
    assert tool.headers == {"X-Api-Key": "other-secret"} and tool.timeout_s == 3


def test_sample_arguments_satisfy_the_schema() -> None:
    from calls.media.tools import argument_errors

    assert argument_errors(SCHEMA, http_tools.sample_arguments(SCHEMA)) == []


def test_the_model_gets_the_declared_spec_and_not_the_filler_line(org_a: Any) -> None:
    tool = make_http_tool(org_a, description="Look up an order", filler_text="One moment while I check.")
    declared = http_tools.function_spec(tool)
    assert declared["name"] == "lookup_order" and declared["parameters"] == tool.parameters
    # the platform says the line when the request is slow; a model told to say it would say it twice
    assert declared["description"] == "Look up an order"


# --------------------------------------------------------------------------- API


def test_api_create_returns_the_secret_once_and_never_the_headers(admin_a: Any, api: Any, endpoint: Any) -> None:
    client = api(admin_a)
    created = client.post(TOOLS, {"name": "lookup_order", "description": "Look up an order",
                                  "parameters": SCHEMA, "url": f"{endpoint.url}/echo", "timeout_s": 4,
                                  "headers": {"Authorization": "Bearer tool-secret"}}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["signing_secret"].startswith("htsec_") and "headers" not in body
    assert body["header_names"] == ["Authorization"]
    shown = client.get(f"{TOOLS}{body['id']}/").json()
    listed = client.get(TOOLS).content.decode()
    for text in (json.dumps(shown), listed):
        assert "tool-secret" not in text and body["signing_secret"] not in text
    # the Test button's request: signed with that secret, arguments from the schema
    endpoint.secret = body["signing_secret"]
    tested = client.post(f"{TOOLS}{body['id']}/test/").json()
    assert tested["ok"] and tested["status"] == 200 and tested["output"]["received"] == tested["arguments"]
    assert endpoint.received[-1].headers["authorization"] == "Bearer tool-secret"


def test_api_errors_name_the_field(admin_a: Any, api: Any) -> None:
    response = api(admin_a).post(TOOLS, {"name": "t", "url": "https://tools.example.com/x",
                                         "parameters": {"type": "array"}}, format="json")
    assert response.status_code == 400, response.content
    assert "object schema" in response.json()["error"]["fields"]["parameters"][0]


def test_api_grants_and_other_orgs_get_404(admin_a: Any, outsider: Any, api: Any, org_a: Any, org_b: Any) -> None:
    from agents.tests.factories import make_agent

    tool = make_http_tool(org_a)
    mine, theirs = make_agent(org_a), make_agent(org_b)
    client_a, client_b = api(admin_a), api(outsider)
    granted = client_a.post(f"{TOOLS}{tool.public_id}/agents/", {"agents": [str(mine.public_id)]}, format="json")
    assert granted.status_code == 200 and granted.json() == {"agents": [str(mine.public_id)]}
    assert client_a.post(f"{TOOLS}{tool.public_id}/agents/", {"agents": [str(theirs.public_id)]},
                         format="json").status_code == 404
    assert list(HttpToolGrant.objects.values_list("agent", flat=True)) == [mine.pk]
    for method, extra in (("get", {}), ("patch", {"data": {"timeout_s": 2}, "format": "json"}),
                          ("delete", {}), ("post", {})):
        path = f"{TOOLS}{tool.public_id}/" + ("test/" if method == "post" else "")
        assert getattr(client_b, method)(path, **extra).status_code == 404
    assert client_b.post(f"{TOOLS}{tool.public_id}/agents/", {"agents": [str(theirs.public_id)]},
                         format="json").status_code == 404
    assert str(tool.public_id) not in client_b.get(TOOLS).content.decode()
    assert HttpTool.objects.filter(pk=tool.pk).exists()
    # another org's agent is never offered the tool
    assert http_tools.tools_for_agent(org_b, theirs) == [] and http_tools.tools_for_agent(org_a, mine) == [tool]


# --------------------------------------------------------------------------- during a real call


def test_a_tool_call_in_a_media_session_reaches_the_endpoint_and_the_timeline(
        org_a: Any, endpoint: Any, tmp_path: Path) -> None:
    from agents.bridges.base import SessionConfig
    from agents.testing.fake_openai import FakeOpenAIRealtime
    from agents.testing.script import FunctionCall
    from calls.audio.vad import VadSettings
    from calls.media.result import SessionContext, ToolError
    from calls.testing.media_client import CarrierMediaClient
    from calls.testing.media_server import MediaTestServer

    ok_tool = make_http_tool(org_a, url=f"{endpoint.url}/echo?key=query-secret", parameters=SCHEMA,
                             signing_secret=SECRET)
    failing = make_http_tool(org_a, name="check_stock", url=f"{endpoint.url}/fail", signing_secret=SECRET,
                             parameters={"type": "object", "properties": {}})
    specs = [http_tools.function_spec(t) for t in (ok_tool, failing)]

    with FakeOpenAIRealtime(turn_bytes=10**9) as fake_server, MediaTestServer() as server:
        fake = cast(FakeOpenAIRealtime, fake_server)
        fake.script(
            FunctionCall(name="lookup_order", arguments={"order": "A1", "quantity": 2}, call_id="c1"),
            FunctionCall(name="check_stock", arguments={}, call_id="c2"),
        )
        holder: dict[str, str] = {}

        def build() -> SessionContext:
            cid = holder["id"]
            handlers = {t.name: http_tools.session_handler(http_tools.spec_of(t), call_id=cid,
                                                           variables={"customer": "Ada"}, error_cls=ToolError)
                        for t in (ok_tool, failing)}
            config = SessionConfig(instructions="Be brief.", first_message="Hello", speaks_first="agent",
                                   tools=specs, **fake.session_config_kwargs())
            return SessionContext(call_public_id=cid, provider="openai_realtime", config=config,
                                  vad=VadSettings(min_silence_ms=300), recording_path=tmp_path / "rec.wav",
                                  tools=cast(Any, handlers), mark_interval_ms=200)

        call_id, url = server.add_call("twilio", build)
        holder["id"] = call_id

        async def run() -> None:
            async with CarrierMediaClient.twilio(url) as call:
                await asyncio.to_thread(fake.wait_for, lambda m: m.get("item", {}).get("call_id") == "c2", timeout=20)
                await call.hang_up()

        asyncio.run(run())
        result = server.calls.wait_result(call_id)
        outputs = {m["item"]["call_id"]: m["item"]["output"] for m in fake.received_of("conversation.item.create")
                   if m.get("item", {}).get("type") == "function_call_output"}

    assert json.loads(outputs["c1"])["received"] == {"order": "A1", "quantity": 2}
    assert "check_stock failed: the endpoint answered HTTP 500" in outputs["c2"]
    first = endpoint.received[0]
    assert first.signature_ok and first.document["call"] == {"id": call_id, "variables": {"customer": "Ada"}}
    events = [(e.kind, e.data) for e in result.events if e.kind.startswith("http_tool.")]
    requests = [d for k, d in events if k == "http_tool.request"]
    responses = [d for k, d in events if k == "http_tool.response"]
    assert [r["name"] for r in requests] == ["lookup_order", "check_stock"]
    assert requests[0]["headers"] == ["Authorization"] and requests[0]["arguments"] == ["order", "quantity"]
    assert responses[0]["ok"] and responses[0]["status"] == 200 and responses[0]["size"] > 0
    assert responses[0]["request_size"] == len(first.raw)
    assert "latency_ms" in responses[0]
    assert responses[1] == {**responses[1], "ok": False, "status": 500, "error": "the endpoint answered HTTP 500"}
    assert requests[0]["url"] == f"{endpoint.url}/echo"
    assert "tool-secret" not in json.dumps([d for _k, d in events]) and "query-secret" not in json.dumps(events)
    results = {e.data["call_id"]: e.data for e in result.events if e.kind == "tool_result"}
    assert results["c1"]["ok"] and not results["c2"]["ok"]


@pytest.mark.django_db(transaction=True)
def test_a_call_offers_exactly_the_granted_enabled_tools_and_validates_arguments(
        org_a: Any, org_b: Any, endpoint: Any) -> None:
    """The real wiring (calls.services.session): the declared spec and the handler come
    together; the model's arguments are checked against the tool's schema by run_tool before
    any request; another org's tool, an ungranted one and a disabled one are not offered."""
    from agents.bridges.base import ToolCall
    from agents.services import publish_agent
    from calls.media.tools import run_tool
    from calls.services.session import load_session_context
    from calls.tests.factories import make_call, make_ready_agent

    agent = make_ready_agent(org_a, name="With HTTP tools")
    granted = make_http_tool(org_a, url=f"{endpoint.url}/echo", parameters=SCHEMA, signing_secret=SECRET,
                             timeout_s=20, filler_text="One moment.")
    disabled = make_http_tool(org_a, name="disabled_tool", enabled=False)
    make_http_tool(org_a, name="not_granted")
    foreign = make_http_tool(org_b, name="foreign_tool")
    for tool in (granted, disabled):
        http_tools.set_http_tool_agents(tool, SYSTEM, [agent])
    HttpToolGrant.objects.create(org=org_b, tool=foreign, agent=agent)  # a forged cross-org row is still ignored
    publish_agent(agent, SYSTEM)  # grants reach calls with the version they are published in
    agent.refresh_from_db()
    call = make_call(org_a, direction="web", status="in_progress", agent=agent, agent_version=agent.published_version,
                     variables={"customer": "Ada"})

    class Recorder:
        call_public_id = str(call.public_id)

        def __init__(self) -> None:
            self.events: list[tuple[str, dict[str, Any]]] = []

        def record(self, kind: str, **data: Any) -> None:
            self.events.append((kind, data))

    async def run() -> tuple[Any, Any, Any, Recorder]:
        context = await load_session_context(str(call.public_id))
        session = Recorder()
        bad = await run_tool(session, ToolCall(call_id="t1", name="lookup_order", arguments={"quantity": 0}),  # type: ignore[arg-type]
                             context, lambda: 0.0)
        good = await run_tool(session, ToolCall(call_id="t2", name="lookup_order", arguments={"order": "A9"}),  # type: ignore[arg-type]
                              context, lambda: 0.0)
        return context, bad, good, session

    context, bad, good, session = asyncio.run(run())
    names = [t["name"] for t in context.config.tools]
    assert "lookup_order" in names and "lookup_order" in context.tools
    assert not {"disabled_tool", "not_granted", "foreign_tool"} & (set(names) | set(context.tools))
    assert context.tool_timeout_s >= 21  # the tool's own 20 s answer reaches the model first
    assert context.fillers == {"lookup_order": "One moment."}  # said by the platform when it is slow
    assert "invalid arguments for lookup_order" in bad["error"] and "order" in bad["error"]
    assert good["received"] == {"order": "A9"}
    assert len(endpoint.received) == 1  # the invalid call never left the platform
    assert endpoint.received[0].document["call"] == {"id": str(call.public_id), "variables": {"customer": "Ada"}}
    assert [k for k, _ in session.events].count("http_tool.response") == 1


# --------------------------------------------------------------------------- admin


def test_admin_adds_through_the_service_and_never_shows_header_values(admin_a: Any, org_a: Any, login: Any,
                                                                      settings: Any) -> None:
    client = login(admin_a)
    form = {"name": "lookup_order", "description": "Look up", "parameters": json.dumps(SCHEMA),
            "url": "https://tools.example.com/t", "method": "POST", "timeout_s": "5", "filler_text": "",
            "enabled": "on"}
    added = client.post("/admin/integrations/httptool/add/", form, follow=True)
    assert added.status_code == 200, added.content[:2000]
    tool = HttpTool.objects.for_org(org_a).get()
    assert tool.signing_secret in added.content.decode()  # shown once, on creation
    assert AuditLog.objects.for_org(org_a).filter(action="http_tool.created").exists()
    http_tools.update_http_tool(tool, SYSTEM, headers={"Authorization": "Bearer admin-hidden"})
    page = client.get(f"/admin/integrations/httptool/{tool.pk}/change/").content.decode()
    assert "Authorization" in page and "admin-hidden" not in page and tool.signing_secret not in page

    bad = client.post("/admin/integrations/httptool/add/", {**form, "name": "other", "parameters": '{"type": "array"}'})
    assert bad.status_code == 200 and "parameters: Parameters must be an object schema" in bad.content.decode()
    settings.OUTBOUND_ALLOW_PRIVATE = False
    private = client.post("/admin/integrations/httptool/add/", {**form, "name": "other", "url": "https://10.0.0.8/x"})
    assert private.status_code == 200 and "a private address" in private.content.decode()
    assert HttpTool.objects.for_org(org_a).count() == 1
