"""Contract tests: every tool the model is offered is driven with arguments generated
from the very JSON schema the model is given (hypothesis-jsonschema), through the
session's real tool dispatch (``calls.media.tools.run_tool`` on a prepared
``CallSession`` whose context came from the database), against the local carrier,
knowledge and MCP fakes.

- Every schema-valid argument set is accepted (never a "missing"/"invalid argument"
  error, never an internal failure) and produces the tool's declared effect (a carrier
  transfer to the configured number, DTMF played, an SMS to the caller or a named
  recipient, a knowledge result, an MCP call) or a clear domain error.
- Invalid argument sets are refused before any handler runs, with an error that names
  the field, and have no effect.
- A transfer number the model invents is refused (tool error + timeline event); so is a
  tool the agent was not given.
- The built-ins are enumerated from their registry (``agents.builtin_tools.BUILTIN_TOOLS``):
  a tool added there is driven by the generic contract test below at once, and fails
  ``test_every_registered_built_in_has_an_effect_test`` until a test of its declared
  effect is named in ``EFFECT_TESTS``. Custom HTTP tools are driven the same way, with
  the spec the call offers them under.

On the old code ``transfer_call`` (declared ``destination``, read ``to``/``number``)
and ``send_sms`` (declared ``body``, read ``text``/``message``) failed every
schema-valid call, and undeclared built-ins (transfer to any number) ran anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import itertools
import re
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from agents.bridges.base import ResponseDone, ToolCall
from agents.builtin_tools import BUILTIN_TOOLS
from calls.media.session import CallSession
from calls.media.tools import argument_errors, ecma_pattern, run_tool
from calls.media.transfer import warm_result
from calls.models import Call, CallEvent, TransferLeg
from calls.services.lifecycle import record_session_result
from calls.services.placement import place_outbound_call
from calls.services.session import close_mcp_tools, load_session_context
from calls.testing.fake_twilio import FakeTwilio
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.factories import make_call, make_ready_agent
from orgs.services import SYSTEM, Actor

pytestmark = pytest.mark.django_db(transaction=True)
T = TypeVar("T")

CONTRACT = settings(max_examples=20, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# Every built-in the registry knows: a new one is in every test below that takes them all.
ALL_BUILTINS = sorted(BUILTIN_TOOLS)
DESTINATIONS = [
    {"label": "Sales", "number": "+1 (415) 555-0142", "description": "New orders and quotes"},
    {"label": "Front desk", "number": "sip:desk@pbx.example.com", "description": "A person at reception"},
    {"label": "London", "number": "+44 20 7183 8750"},
    {"label": "Supervisor", "number": "+14155550146", "mode": "warm", "description": "A person, warm transfer"},
]
TARGETS = {"Sales": "+14155550142", "Front desk": "sip:desk@pbx.example.com", "London": "+442071838750",
           "Supervisor": "+14155550146"}
WARM = {"Supervisor"}
RECIPIENTS = [{"label": "Manager", "number": "+14155550143", "description": "The shift manager"}]
CALLEE = "+14155557777"
# Failures a contract violation produces (as opposed to a clear domain error): the session
# refusing what the schema allows or a tool it offered, a handler that crashed or hung, one of
# our MCP servers crashing in a tool (the SDK's bare "Error executing tool <name>") or not
# answering, a missing argument or value.
CONTRACT_FAILURES = re.compile(
    r"^invalid arguments for |^unknown tool |^tool '[^']*' failed: |timed out|^Error executing tool \w+$"
    r"|MCP server at \S+ (?:did not answer|answered HTTP)|^talking to the MCP server at \S+ failed: "
    r"|no tool named|non-empty|missing")
# A vendor API behind a tool unreachable or dropping the connection (the transport failures
# of integrations.mcp_servers.base.Upstream): an outage, whatever the arguments were. The
# fakes here never have one unless they are broken (FakeServer.handler_errors says how).
UPSTREAM_TRANSPORT_FAILURE = re.compile(r"\b\w+ API (?:request failed: |unreachable \(|did not answer within )")


def arguments_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Every argument object ``schema`` allows.

    Property values come from hypothesis-jsonschema's ``from_schema``; the object
    around them is composed here, because hypothesis-jsonschema 0.23.1's own object
    strategy calls a Hypothesis internal (``many.more``) that the pinned Hypothesis no
    longer has. Each drawn object is checked against the schema, so this cannot
    generate what the schema forbids. Patterns are generated as JSON Schema means them
    (``$`` is the end of the string, not also before a final newline as in Python), which
    is how the session's validator reads them too (``calls.media.tools.ecma_pattern``).
    """
    schema = _as_ecma(schema)
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])

    def value(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
        return arguments_for(prop) if prop.get("type") == "object" and "properties" in prop else from_schema(prop)

    extra: dict[str, st.SearchStrategy[Any]] = {}
    if schema.get("additionalProperties", True) is not False:
        extra = {"unlisted_extra": st.one_of(st.none(), st.integers(), st.text(max_size=5))}
    strategy = st.fixed_dictionaries(
        {k: value(p) for k, p in properties.items() if k in required},
        optional={**{k: value(p) for k, p in properties.items() if k not in required}, **extra},
    )
    def checked(arguments: dict[str, Any]) -> dict[str, Any]:
        assert argument_errors(schema, arguments) == [], (schema, arguments)
        return arguments

    return strategy.map(checked)


def _as_ecma(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: ecma_pattern(v) if k == "pattern" and isinstance(v, str) else _as_ecma(v)
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [_as_ecma(v) for v in schema]
    return schema


class LoopThread:
    """One event loop in a thread for the whole test, so sessions and MCP toolboxes
    opened on it stay usable across hypothesis examples."""

    def __enter__(self) -> LoopThread:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def __exit__(self, *exc: Any) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(autouse=True)
def _collect_garbage_only_between_steps() -> Iterator[None]:
    """CPython before 3.12 can crash (gh-148891) when a collection that starts inside
    ``ContextVar.set`` runs a finalizer that sets a context variable. These tests hop
    between threads thousands of times (asgiref sets every context variable on each
    hop) while creating and dropping sessions, which made that crash show up in full
    runs; automatic collection is paused here and garbage collected at the end."""
    if sys.version_info >= (3, 12):
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    with LoopThread() as thread:
        yield thread


async def _no_finish(call_public_id: str, result: Any) -> None:
    return None


async def prepared_session(call: Call, transport: str = "twilio") -> CallSession:
    """A real call session, prepared as the consumer prepares it (context from the DB, bridge open)."""
    session = CallSession(str(call.public_id), transport, load_context=load_session_context, on_finish=_no_finish)
    await session.prepare()
    assert session.context is not None, session.events
    return session


_ids = itertools.count(1)


async def dispatch(session: CallSession, name: str, arguments: Any) -> Any:
    """The model calls ``name``: the session's own dispatch runs it."""
    assert session.context is not None
    return await run_tool(session, ToolCall(call_id=f"t{next(_ids)}", name=name, arguments=arguments),
                          session.context, time.monotonic)


async def close(session: CallSession) -> None:
    if not session.ending:
        await session.end("caller_hangup")


def spec_of(session: CallSession, name: str) -> dict[str, Any]:
    assert session.context is not None
    (spec,) = [t for t in session.context.config.tools if t["name"] == name]
    return copy.deepcopy(spec)


def assert_contract_kept(output: Any, upstream: Any = None) -> None:
    """No contract violation in a tool's ``output``. An upstream outage is not one, and is
    reported as what it is: the vendor fake ``upstream`` failing, with what its handlers raised."""
    error = output.get("error") if isinstance(output, dict) else None
    if not error:
        return
    crashed = getattr(upstream, "handler_errors", [])
    assert not UPSTREAM_TRANSPORT_FAILURE.search(error), (
        f"not a contract violation: the vendor API behind the tool failed at the transport ({error}); "
        f"the vendor fake's handlers raised {crashed!r}")
    assert not CONTRACT_FAILURES.search(error), output


@pytest.fixture
def phone_call(twilio_number: Any, owner_a: Any) -> Call:
    """An answered outbound Twilio call of an agent with every built-in tool."""
    from knowledge.services import create_knowledge_base

    base = create_knowledge_base(twilio_number.org, SYSTEM, name="Help")
    agent = make_ready_agent(twilio_number.org, name="Everything", builtin_tools=ALL_BUILTINS,
                             transfer_destinations=DESTINATIONS, sms_recipients=RECIPIENTS,
                             knowledge_base_ids=[str(base.public_id)])
    call = place_outbound_call(twilio_number.org, agent, CALLEE, twilio_number, {}, Actor(user=owner_a))
    Call.objects.filter(pk=call.pk).update(status="in_progress")
    call.refresh_from_db()
    return call


# --- what the model is offered ------------------------------------------------------------


def test_the_model_is_offered_exactly_the_tools_the_call_can_run(phone_call: Call, loop: LoopThread) -> None:
    session = loop.run(prepared_session(phone_call))
    specs = {t["name"]: t for t in session.context.config.tools}
    assert sorted(specs) == sorted(ALL_BUILTINS)
    destination = specs["transfer_call"]["parameters"]["properties"]["destination"]
    assert destination["enum"] == ["Sales", "Front desk", "London", "Supervisor"]
    # the model picks by name: no configured number or SIP URI is in what it is given
    assert not any(target in str(specs) for target in TARGETS.values())
    assert specs["send_sms"]["parameters"]["properties"]["to"]["enum"] == ["Manager"]
    loop.run(close(session))


def test_without_destinations_transfer_is_not_offered_and_an_invented_call_to_it_is_refused(
        twilio_number: Any, owner_a: Any, fake_twilio: Any, loop: LoopThread) -> None:
    agent = make_ready_agent(twilio_number.org, name="No transfer", builtin_tools=["transfer_call", "send_dtmf"])
    call = place_outbound_call(twilio_number.org, agent, CALLEE, twilio_number, {}, Actor(user=owner_a))
    Call.objects.filter(pk=call.pk).update(status="in_progress")
    session = loop.run(prepared_session(call))
    assert [t["name"] for t in session.context.config.tools] == ["send_dtmf"]
    twiml_before = list(fake_twilio.calls[call.carrier_call_id]["twiml"])
    output = loop.run(dispatch(session, "transfer_call", {"destination": "+14155550123"}))
    assert output == {"error": "unknown tool 'transfer_call': it is not available on this call"}
    assert fake_twilio.calls[call.carrier_call_id]["twiml"] == twiml_before  # nothing dialled
    loop.run(close(session))


def test_web_calls_offer_no_phone_tools(org_a: Any, loop: LoopThread) -> None:
    agent = make_ready_agent(org_a, name="Web", builtin_tools=ALL_BUILTINS, transfer_destinations=DESTINATIONS)
    call = make_call(org_a, direction="web", status="in_progress", agent=agent, agent_version=agent.published_version)
    session = loop.run(prepared_session(call, "web"))
    assert [t["name"] for t in session.context.config.tools] == ["end_call"]
    loop.run(close(session))


# --- schema-valid arguments: accepted, with the declared effect ---------------------------


def test_transfer_call_accepts_every_declared_destination_and_dials_its_configured_target(
        phone_call: Call, fake_twilio: Any, loop: LoopThread) -> None:
    probe = loop.run(prepared_session(phone_call))
    schema = spec_of(probe, "transfer_call")["parameters"]
    loop.run(close(probe))

    @CONTRACT
    @given(arguments_for(schema))
    @example({"destination": "Supervisor", "reason": "wants a person"})
    def check(arguments: dict[str, Any]) -> None:
        session = loop.run(prepared_session(phone_call))
        output = loop.run(dispatch(session, "transfer_call", arguments))
        label = arguments["destination"]
        target = TARGETS[label]
        if label in WARM:  # the human is dialled while the caller stays with the agent
            assert output == warm_result(label)
            leg = TransferLeg.objects.filter(call=phone_call).latest("id")
            assert (leg.destination, leg.target, leg.state, leg.started_by) == (label, target, "dialing", "agent")
            assert fake_twilio.calls[leg.carrier_call_id]["to"] == target
            assert not session.ending
            loop.run(close(session))  # the caller hangs up: the ringing leg is cancelled, not left open
            leg.refresh_from_db()
            assert leg.state == "canceled"
            return
        assert output == {"ok": True, "transferred_to": label}
        twiml = fake_twilio.calls[phone_call.carrier_call_id]["twiml"][-1]
        assert (f"<Sip>{target}</Sip>" if target.startswith("sip:") else f"<Number>{target}</Number>") in twiml
        assert Call.objects.get(pk=phone_call.pk).transfer_to == target
        assert CallEvent.objects.filter(call=phone_call, kind="call.transferred").latest("id").data == {
            "to": target, "destination": label}
        assert session.end_reason == "transferred"
        loop.run(session.wait())

    check()


def test_send_dtmf_accepts_every_declared_digit_string(phone_call: Call, fake_twilio: Any, loop: LoopThread) -> None:
    probe = loop.run(prepared_session(phone_call))
    schema = spec_of(probe, "send_dtmf")["parameters"]
    loop.run(close(probe))

    @CONTRACT
    @given(arguments_for(schema))
    def check(arguments: dict[str, Any]) -> None:
        session = loop.run(prepared_session(phone_call))
        before = CallEvent.objects.filter(call=phone_call, kind="dtmf.sent").count()
        output = loop.run(dispatch(session, "send_dtmf", arguments))
        assert output == {"ok": True, "sent": len(arguments["digits"])}
        assert f'<Play digits="{arguments["digits"]}" />' in fake_twilio.calls[phone_call.carrier_call_id]["twiml"][-1]
        assert CallEvent.objects.filter(call=phone_call, kind="dtmf.sent").count() == before + 1
        loop.run(close(session))

    check()


def test_send_sms_accepts_every_declared_message_and_texts_the_caller_or_a_named_recipient(
        phone_call: Call, fake_twilio: Any, loop: LoopThread) -> None:
    probe = loop.run(prepared_session(phone_call))
    schema = spec_of(probe, "send_sms")["parameters"]
    loop.run(close(probe))

    @CONTRACT
    @given(arguments_for(schema))
    def check(arguments: dict[str, Any]) -> None:
        session = loop.run(prepared_session(phone_call))
        output = loop.run(dispatch(session, "send_sms", arguments))
        assert output["ok"] is True, output
        message = fake_twilio.messages[output["message_id"]]
        expected = {"Manager": "+14155550143"}.get(arguments.get("to") or "", CALLEE)
        assert (message["to"], message["from"], message["body"]) == (expected, "+14155550100", arguments["body"])
        loop.run(close(session))

    check()


def test_end_call_accepts_every_declared_reason_and_ends_the_call_after_the_goodbye(
        org_a: Any, loop: LoopThread) -> None:
    agent = make_ready_agent(org_a, name="Ender", builtin_tools=["end_call"])

    def web_call() -> Call:
        return make_call(org_a, direction="web", status="in_progress", agent=agent,
                         agent_version=agent.published_version)

    probe = loop.run(prepared_session(web_call(), "web"))
    schema = spec_of(probe, "end_call")["parameters"]
    loop.run(close(probe))

    @CONTRACT
    @given(arguments_for(schema))
    def check(arguments: dict[str, Any]) -> None:
        session = loop.run(prepared_session(web_call(), "web"))
        call = ToolCall(call_id=f"t{next(_ids)}", name="end_call", arguments=arguments)
        output = loop.run(run_tool(session, call, session.context, time.monotonic))
        assert output == {"ok": True, "status": "ending call after the current message"}

        async def goodbye_done() -> Any:
            session.after_tool_result(call.call_id)  # as the session does once the result is sent
            assert not session.ending  # the goodbye is still to come
            session._on_response_done(ResponseDone())  # the provider finished its answer
            return await session.wait()

        assert loop.run(goodbye_done()).end_reason == "agent_hangup"

    check()


def test_search_knowledge_accepts_every_declared_query(phone_call: Call, loop: LoopThread) -> None:
    session = loop.run(prepared_session(phone_call))
    schema = spec_of(session, "search_knowledge")["parameters"]
    # The first search loads the local embedding model (seconds): not what this test measures.
    loop.run(session.context.tools["search_knowledge"]({"query": "warm up"}, session))

    @CONTRACT
    @given(arguments_for(schema))
    @example({"query": "\x00"})  # found by this test: Postgres text cannot hold NUL
    @example({"query": "refund\x00policy", "top_k": 10})
    def check(arguments: dict[str, Any]) -> None:
        output = loop.run(dispatch(session, "search_knowledge", arguments))
        assert "error" not in output and output["results"] == [], output  # the base is empty

    check()
    loop.run(close(session))


def test_collect_sensitive_input_accepts_its_declared_arguments_and_makes_the_next_entry_private(
        phone_call: Call, loop: LoopThread) -> None:
    probe = loop.run(prepared_session(phone_call))
    schema = spec_of(probe, "collect_sensitive_input")["parameters"]
    loop.run(close(probe))

    @CONTRACT
    @given(arguments_for(schema))
    def check(arguments: dict[str, Any]) -> None:
        session = loop.run(prepared_session(phone_call))
        assert not session.sensitive_input
        output = loop.run(dispatch(session, "collect_sensitive_input", arguments))
        assert output["ok"] is True and "private" in output["status"], output
        assert session.sensitive_input  # the next keypad entry is not stored; the caller's channel is muted
        assert [e.kind for e in session.events].count("sensitive_input_started") == 1
        loop.run(close(session))

    check()


# --- every registered built-in: driven by the generic contract, and by an effect test ---------

#: The test that checks each built-in's declared effect. A tool added to the registry
#: (agents.builtin_tools.BUILTIN_TOOLS) fails the check below until it is named here.
EFFECT_TESTS = {
    "end_call": "test_end_call_accepts_every_declared_reason_and_ends_the_call_after_the_goodbye",
    "transfer_call": "test_transfer_call_accepts_every_declared_destination_and_dials_its_configured_target",
    "send_dtmf": "test_send_dtmf_accepts_every_declared_digit_string",
    "search_knowledge": "test_search_knowledge_accepts_every_declared_query",
    "send_sms": "test_send_sms_accepts_every_declared_message_and_texts_the_caller_or_a_named_recipient",
    "collect_sensitive_input":
        "test_collect_sensitive_input_accepts_its_declared_arguments_and_makes_the_next_entry_private",
}


def test_every_registered_built_in_has_an_effect_test() -> None:
    assert sorted(EFFECT_TESTS) == ALL_BUILTINS, "name the test of the new tool's declared effect in EFFECT_TESTS"
    missing = [test for test in EFFECT_TESTS.values() if not callable(globals().get(test))]
    assert missing == []


# The first knowledge search loads the local embedding model (seconds), once per process.
WARM_UP: dict[str, dict[str, Any]] = {"search_knowledge": {"query": "warm up"}}


@pytest.mark.parametrize("tool", ALL_BUILTINS)
def test_every_registered_built_in_is_offered_on_a_phone_call_and_keeps_its_contract(
        tool: str, phone_call: Call, loop: LoopThread) -> None:
    """Whatever the registry holds: an agent given every built-in offers each on a phone
    call, and every argument set its declared schema allows is run by its handler (no
    "invalid arguments", "unknown tool", missing key or internal failure)."""
    probe = loop.run(prepared_session(phone_call))
    offered = [t["name"] for t in probe.context.config.tools]
    if tool in WARM_UP:  # one-off start-up work the tool timeout is not meant to cover
        loop.run(probe.context.tools[tool](WARM_UP[tool], probe))
    loop.run(close(probe))
    assert tool in offered, f"{tool} is in the registry but a phone call with every built-in does not offer it"

    @CONTRACT
    @given(st.data())
    def check(data: st.DataObject) -> None:
        session = loop.run(prepared_session(phone_call))
        # the spec this call offers (enums filled in from the agent's settings), not the base one
        arguments = data.draw(arguments_for(spec_of(session, tool)["parameters"]))
        output = loop.run(dispatch(session, tool, arguments))
        assert_contract_kept(output)
        assert not (isinstance(output, dict) and "error" in output), (arguments, output)
        loop.run(close(session))
        loop.run(session.wait())

    check()


# --- custom HTTP tools: the spec the call offers, through the same dispatch -------------------------

def test_http_tools_accept_every_argument_set_the_call_declares_for_them(org_a: Any, loop: LoopThread) -> None:
    from agents.services import publish_agent
    from integrations.http_tools import set_http_tool_agents
    from integrations.testing.tool_endpoint import FakeToolEndpoint
    from integrations.tests.factories import make_http_tool
    from integrations.tests.test_http_tools import SCHEMA, SECRET

    with FakeToolEndpoint(secret=SECRET) as endpoint:
        agent = make_ready_agent(org_a, name="With an HTTP tool", builtin_tools=["end_call"])
        tool = make_http_tool(org_a, url=f"{endpoint.url}/echo", parameters=SCHEMA, signing_secret=SECRET)
        set_http_tool_agents(tool, SYSTEM, [agent])
        publish_agent(agent, SYSTEM)
        agent.refresh_from_db()
        call = make_call(org_a, direction="web", status="in_progress", agent=agent,
                         agent_version=agent.published_version)
        session = loop.run(prepared_session(call, "web"))
        spec = spec_of(session, tool.name)
        assert spec["parameters"] == SCHEMA  # what the customer declared is what the model is given

        @CONTRACT
        @given(arguments_for(spec["parameters"]))
        def check(arguments: dict[str, Any]) -> None:
            received = len(endpoint.received)
            output = loop.run(dispatch(session, tool.name, arguments))
            assert_contract_kept(output)
            assert output["received"] == arguments, output
            assert len(endpoint.received) == received + 1 and endpoint.received[-1].signature_ok

        check()
        received = len(endpoint.received)
        refused = loop.run(dispatch(session, tool.name, {"order": "A1", "quantity": 0}))
        assert refused["error"].startswith(f"invalid arguments for {tool.name}: quantity: 0 is less than")
        assert len(endpoint.received) == received  # what the schema forbids never leaves the platform
        loop.run(close(session))


# --- invalid arguments: refused before the handler, naming the field, no effect -------------


def _wrong_type(prop: dict[str, Any]) -> Any:
    return "seven" if prop.get("type") == "integer" else 7


@pytest.mark.parametrize("tool", ALL_BUILTINS)
def test_invalid_arguments_are_refused_naming_the_field_with_no_effect(
        tool: str, phone_call: Call, fake_twilio: Any, loop: LoopThread) -> None:
    session = loop.run(prepared_session(phone_call))
    schema = spec_of(session, tool)["parameters"]
    valid = arguments_for(schema).example()
    cases: list[tuple[Any, str]] = [({**valid, "unexpected_field": 1}, "unexpected_field"),
                                    ([valid], "(arguments)")]
    cases += [({k: v for k, v in valid.items() if k != field}, field) for field in schema["required"]]
    cases += [({**valid, field: _wrong_type(prop)}, field) for field, prop in schema["properties"].items()]
    if tool == "transfer_call":
        cases.append(({"destination": "+14155550123"}, "destination"))  # a number the model made up
    if tool == "send_sms":
        cases += [({"body": "hi", "to": "+14155550123"}, "to"), ({"body": "   "}, "body"),
                  ({"body": "x" * 1601}, "body")]
    if tool == "send_dtmf":
        cases += [({"digits": "12A"}, "digits"), ({"digits": "1" * 33}, "digits"), ({"digits": ""}, "digits"),
                  # "$" ends the string in JSON Schema; Python's "$" also let a final newline through
                  ({"digits": "12\n"}, "digits")]
    state = (list(fake_twilio.calls[phone_call.carrier_call_id]["twiml"]), dict(fake_twilio.messages),
             CallEvent.objects.filter(call=phone_call).exclude(kind="call.transfer_refused").count())
    for arguments, field in cases:
        output = loop.run(dispatch(session, tool, arguments))
        error = output["error"]
        assert error.startswith(f"invalid arguments for {tool}: ") and f"{field}: " in error, (arguments, error)
    assert (list(fake_twilio.calls[phone_call.carrier_call_id]["twiml"]), dict(fake_twilio.messages),
            CallEvent.objects.filter(call=phone_call).exclude(kind="call.transfer_refused").count()) == state
    assert not session.ending
    refused = [e.data for e in session.events if e.kind == "tool_refused"]
    assert len(refused) == len(cases) and all(r["reason"] == "invalid arguments" for r in refused)
    loop.run(close(session))


def test_an_invented_transfer_number_is_refused_and_recorded_on_the_call(
        phone_call: Call, fake_twilio: Any, loop: LoopThread) -> None:
    session = loop.run(prepared_session(phone_call))
    twiml_before = list(fake_twilio.calls[phone_call.carrier_call_id]["twiml"])
    output = loop.run(dispatch(session, "transfer_call", {"destination": "+14155550123", "reason": "caller asked"}))
    assert output["error"].startswith("invalid arguments for transfer_call: destination: '+14155550123' is not one of")
    # past the schema (a stale spec, a direct call): the service refuses it too, with an event
    with pytest.raises(Exception, match="is not one of this agent's transfer destinations"):
        loop.run(session.context.transfer("+14155550123"))
    assert CallEvent.objects.filter(call=phone_call, kind="call.transfer_refused").count() == 1
    assert fake_twilio.calls[phone_call.carrier_call_id]["twiml"] == twiml_before
    assert Call.objects.get(pk=phone_call.pk).transfer_to == ""
    # the refusal quotes what the model sent (escaped)
    output = loop.run(dispatch(session, "transfer_call", {"destination": "Sa\x00les"}))
    assert "destination: 'Sa\\x00les' is not one of" in output["error"]
    loop.run(session.end("caller_hangup"))
    loop.run(record_session_result(str(phone_call.public_id), session.result))
    refused = CallEvent.objects.filter(call=phone_call, kind="tool_refused").order_by("offset_ms", "id")
    assert [(e.data["name"], e.data["fields"]) for e in refused] == [("transfer_call", ["destination"])] * 2
    results = CallEvent.objects.filter(call=phone_call, kind="tool_result").order_by("offset_ms", "id")
    assert [e.data["ok"] for e in results] == [False, False]
    assert "destination: '+14155550123' is not one of" in results[0].data["error"]
    assert "Sa\\x00les" in results[1].data["error"]


def test_a_tool_error_quoting_a_nul_byte_does_not_stop_the_timeline_being_stored(
        phone_call: Call, loop: LoopThread) -> None:
    from calls.media.result import ToolError

    async def parrot(arguments: dict[str, Any], session: Any) -> str:
        raise ToolError(f"no such order {arguments['order']}")  # as an MCP server might echo it

    session = loop.run(prepared_session(phone_call))
    session.context.tools = {**session.context.tools, "parrot": parrot}  # as MCP tools are added
    session.context.config.tools.append({"name": "parrot", "description": "", "parameters": {"type": "object"}})
    output = loop.run(dispatch(session, "parrot", {"order": "A\x00B"}))
    assert output == {"error": "no such order A\x00B"}  # the model hears it as it was
    loop.run(session.end("caller_hangup"))
    loop.run(record_session_result(str(phone_call.public_id), session.result))
    stored = CallEvent.objects.get(call=phone_call, kind="tool_result")
    assert stored.data["error"] == "no such order A\\x00B"
    assert CallEvent.objects.filter(call=phone_call, kind="session.ended").exists()


def test_sms_to_anyone_but_the_caller_or_a_named_recipient_is_refused(
        phone_call: Call, fake_twilio: Any, loop: LoopThread) -> None:
    from calls.media.result import ToolError

    session = loop.run(prepared_session(phone_call))
    sms = session.context.tools["send_sms"]
    with pytest.raises(ToolError, match="^“\\+447700900123” is not one of this agent's SMS recipients \\(Manager\\)"):
        loop.run(sms({"body": "hi", "to": "+447700900123"}, session))
    assert not fake_twilio.messages
    assert CallEvent.objects.filter(call=phone_call, kind="sms.refused").count() == 1
    loop.run(close(session))


# --- the MCP tool adapter -------------------------------------------------------------------

OWN_MCP_SERVERS = ["telegram", "gmail", "shopify", "whatsapp"]


@contextlib.contextmanager
def own_mcp_server(kind: str, tmp_path: Any) -> Iterator[tuple[Any, str, dict[str, str]]]:
    """(vendor fake, MCP URL, connection headers) of one of the project's own MCP servers."""
    from integrations.testing.mcp import serve_mcp

    caller = {"Authorization": "Bearer platform-token"}
    tokens = frozenset({"platform-token"})
    if kind == "telegram":
        from integrations.mcp_servers.telegram import TelegramConfig
        from integrations.mcp_servers.telegram import build_server as telegram
        from integrations.testing.fake_telegram import FakeTelegram

        with FakeTelegram(tokens={"7:BOT"}) as fake:
            config = TelegramConfig(caller_tokens=tokens, api_base=fake.url)
            with serve_mcp(telegram(config), config) as url:
                yield fake, url, {**caller, "X-Telegram-Bot-Token": "7:BOT"}
    elif kind == "gmail":
        from integrations.mcp_servers.gmail import GmailConfig
        from integrations.mcp_servers.gmail import build_server as gmail
        from integrations.testing.fake_gmail import FakeGmail

        with FakeGmail() as fake:
            gmail_config = GmailConfig(caller_tokens=tokens, api_base=fake.url, token_url=fake.token_url)
            with serve_mcp(gmail(gmail_config), gmail_config) as url:
                yield fake, url, {**caller, "X-Google-Client-Id": "cid.apps.googleusercontent.com",
                                  "X-Google-Client-Secret": "csecret", "X-Google-Refresh-Token": "1//refresh"}
    elif kind == "shopify":
        from integrations.mcp_servers.shopify import ShopifyConfig
        from integrations.mcp_servers.shopify import build_server as shopify
        from integrations.testing.fake_shopify import FakeShopify

        with FakeShopify() as fake:
            shopify_config = ShopifyConfig(caller_tokens=tokens, shop_url_template=fake.shop_url_template)
            with serve_mcp(shopify(shopify_config), shopify_config) as url:
                yield fake, url, {**caller, "X-Shopify-Shop": "acme.myshopify.com",
                                  "X-Shopify-Access-Token": "shpat_test"}
    else:
        from integrations.mcp_servers.whatsapp import WhatsAppConfig
        from integrations.mcp_servers.whatsapp import build_server as whatsapp
        from integrations.testing.fake_whatsapp import FakeWhatsApp

        with FakeWhatsApp() as fake:
            whatsapp_config = WhatsAppConfig(caller_tokens=tokens, api_base=fake.url, app_secret="meta-app-secret",
                                    verify_token="verify-me", store_path=str(tmp_path / "wa.sqlite3"))
            with serve_mcp(whatsapp(whatsapp_config), whatsapp_config) as url:
                yield fake, url, {**caller, "X-WhatsApp-Access-Token": fake.token,
                                  "X-WhatsApp-Phone-Number-Id": fake.phone_number_id}


@pytest.fixture(params=OWN_MCP_SERVERS)
def mcp_call(request: Any, org_a: Any, tmp_path: Any) -> Iterator[tuple[str, Call, Any]]:
    """A web call of an agent connected to one of the project's own MCP servers."""
    from integrations.models import McpServer

    with own_mcp_server(request.param, tmp_path) as (fake, url, headers):
        server = McpServer.objects.create(org=org_a, name=request.param.capitalize(), url=f"{url}/mcp",
                                          auth_headers=headers)
        agent = make_ready_agent(org_a, name="Messenger", mcp_server_ids=[str(server.public_id)])
        call = make_call(org_a, direction="web", status="in_progress", agent=agent,
                         agent_version=agent.published_version)
        yield request.param, call, fake


def test_mcp_tools_accept_every_argument_set_their_declared_schema_allows(
        mcp_call: tuple[str, Call, Any], loop: LoopThread) -> None:
    """Every tool of each of the project's own MCP servers, through the MCP tool adapter:
    what the declared schema allows is run (a vendor's refusal is a plain domain error,
    never the server's own argument validation disagreeing with what it declared)."""
    kind, call, fake = mcp_call
    session = loop.run(prepared_session(call, "web"))
    specs = [t for t in session.context.config.tools if t["name"].startswith(f"{kind}__")]
    assert specs, f"the {kind} server offered no tools"
    for spec in specs:
        @CONTRACT
        @given(arguments_for(spec["parameters"]))
        def check(arguments: dict[str, Any]) -> None:
            sent_before = len(fake.sent) if kind == "telegram" else 0
            crashes_before = len(fake.handler_errors)
            output = loop.run(dispatch(session, spec["name"], arguments))  # noqa: B023 - check() runs in this iteration
            assert_contract_kept(output, fake)
            # the vendor fake answered every request our server sent (a crash there once
            # closed the connection under the next request: a flaky ReadError)
            assert len(fake.handler_errors) == crashes_before, fake.handler_errors[crashes_before:]
            # the server's own argument validation never disagrees with what it declared
            assert not (isinstance(output, dict) and "validation error" in output.get("error", "").lower()), output
            if kind != "telegram":
                return
            if isinstance(output, dict):  # a domain error from Telegram, said plainly
                assert "Telegram API refused" in output["error"], output
                assert len(fake.sent) == sent_before
            elif spec["name"] == "telegram__send_message":  # noqa: B023 - check() runs in this iteration
                assert fake.sent[-1]["text"] == arguments["text"]

        check()
    if kind == "telegram":  # and what the schema forbids never reaches the server
        requests_before = len(fake.requests)
        output = loop.run(dispatch(session, "telegram__send_message", {"chat_id": 1001}))
        assert output["error"] == "invalid arguments for telegram__send_message: text: 'text' is a required property"
        output = loop.run(dispatch(session, "telegram__read_messages", {"limit": 0}))
        assert output["error"].startswith("invalid arguments for telegram__read_messages: limit: 0 is less than")
        assert len(fake.requests) == requests_before
    loop.run(close(session))
    loop.run(close_mcp_tools(str(call.public_id)))


# --- end to end: a real provider session over a real media socket ---------------------------


def test_a_realtime_model_transfers_by_name_and_an_invented_number_never_dials(
        twilio_number: Any, owner_a: Any, fake_twilio: Any) -> None:
    """The OpenAI Realtime bridge (real SDK, fake server) is given the enum; the model's
    function calls travel the carrier socket's session to the carrier's REST API."""
    from agents.testing.fake_openai import FakeOpenAIRealtime
    from agents.testing.script import FunctionCall
    from calls.services.session import build_session_context
    from calls.testing.media_client import CarrierMediaClient
    from calls.testing.media_server import MediaTestServer
    from orgs.services import set_provider_credential

    with FakeOpenAIRealtime(turn_bytes=10**9) as fake, MediaTestServer() as server:
        set_provider_credential(twilio_number.org, SYSTEM, "openai", {"api_key": fake.api_key},
                                config={"websocket_base_url": fake.url})
        agent = make_ready_agent(twilio_number.org, name="Realtime", provider="openai_realtime",
                                 first_message="Hello.", builtin_tools=["transfer_call"],
                                 transfer_destinations=DESTINATIONS)
        call = place_outbound_call(twilio_number.org, agent, CALLEE, twilio_number, {},
                                   Actor(user=owner_a))
        Call.objects.filter(pk=call.pk).update(status="in_progress")
        fake.script(
            FunctionCall(name="transfer_call", arguments={"destination": "+19005550100"}, call_id="invented"),
            FunctionCall(name="transfer_call", arguments={"destination": "Sales"}, call_id="named"),
        )
        cid = str(call.public_id)
        _, token = server.calls.add_call(build_session_context(cid), call_id=cid)

        async def run() -> None:
            async with CarrierMediaClient.twilio(server.url("twilio", cid, token)) as media:
                assert await media.wait_closed(timeout=30) == 1000  # the transfer ends our stream

        asyncio.run(run())
        result = server.calls.wait_result(cid)
    (update,) = [m for m in fake.received_of("session.update") if m["session"].get("tools")]
    (offered,) = update["session"]["tools"]
    assert offered["name"] == "transfer_call"
    assert offered["parameters"]["properties"]["destination"]["enum"] == ["Sales", "Front desk", "London", "Supervisor"]
    outputs = {m["item"]["call_id"]: m["item"]["output"] for m in fake.received_of("conversation.item.create")
               if m.get("item", {}).get("type") == "function_call_output"}
    assert "destination: '+19005550100' is not one of" in outputs["invented"]
    assert result.end_reason == "transferred"
    twiml = fake_twilio.calls[call.carrier_call_id]["twiml"]
    assert "+1900" not in "".join(twiml) and "<Number>+14155550142</Number>" in twiml[-1]
    assert Call.objects.get(pk=call.pk).transfer_to == "+14155550142"


def test_a_schema_referring_outside_itself_is_refused_without_fetching_anything() -> None:
    with FakeTwilio() as probe:  # any local HTTP server: the $ref must never be requested
        schema = {"type": "object", "properties": {"q": {"$ref": f"{probe.base_url}/schema.json"}}}
        (problem,) = argument_errors(schema, {"q": "x"})
        assert problem.startswith("(schema): the tool's declared schema refers to") and not probe.requests
    assert argument_errors({"type": "object", "properties": {"n": {"type": "wrong"}}}, {"n": 1})[0].startswith(
        "(schema): the tool's declared schema is invalid")
    local = {"type": "object", "$defs": {"Mode": {"enum": ["plain", "HTML"]}},
             "properties": {"mode": {"$ref": "#/$defs/Mode"}}, "required": ["mode"]}  # as pydantic writes them
    assert argument_errors(local, {"mode": "HTML"}) == []
    assert argument_errors(local, {"mode": "bold"}) == ["mode: 'bold' is not one of ['plain', 'HTML']"]


def test_a_nul_character_in_a_warm_transfers_reason_does_not_fail_the_transfer(phone_call: Call, loop: LoopThread) -> None:
    """Found by the contract run: a NUL in a free-text argument (a warm transfer's reason)
    reached Postgres, which cannot store one, and the transfer failed."""
    from calls.models import TransferLeg

    session = loop.run(prepared_session(phone_call))
    output = loop.run(dispatch(session, "transfer_call", {"destination": "Supervisor", "reason": "bil\x00ling"}))
    assert_contract_kept(output)
    assert not (isinstance(output, dict) and "error" in output), output
    leg = TransferLeg.objects.get(call=phone_call)
    assert "\x00" not in leg.whisper
    loop.run(close(session))
    loop.run(session.wait())
