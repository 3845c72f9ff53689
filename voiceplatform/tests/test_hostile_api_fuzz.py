"""The committed OpenAPI schema, fuzzed against a live server by two hostile organisations.

Org A is fully populated: agents with published versions, numbers, calls with
transcripts, timelines and a recording, batches with entries, schedules, knowledge
bases with ingested documents, MCP servers and tool grants, webhook endpoints with
events and deliveries, provider credentials, invitations, API keys, audit entries.
Org B has the same kinds of objects, its own. Before the run every identifier and secret of org A
is read from the database (public ids in both UUID spellings, ``evt_`` ids, API key
prefixes, credential and webhook secrets, MCP auth headers, token hashes, member
e-mails, the names A gave its objects).

Then Schemathesis generates requests for every operation in ``openapi.yaml`` (valid
and invalid ones) and sends them over real HTTP with org B's admin API key. Path
ids are drawn from B's own objects of the route's kind (so the generated bodies reach
the serializers and services behind them), from A's objects, or generated; every UUID
in a generated body may be swapped for one of A's or B's ids, so foreign keys are
attacked too. Every response must be free of server errors and must contain none
of A's identifiers or secrets unless the request itself carried that value (an
error message may echo what the caller sent; that tells the caller nothing).

A second, exhaustive pass sends every operation with an id in its path, with org
A's key, at each of B's objects: each must be a 404.

The run is reproducible (a fixed seed per operation) and bounded (``EXAMPLES`` per
operation and generation mode); ``FUZZ_EXAMPLES`` and ``FUZZ_SEED`` widen it. Select
it with ``-m fuzz``; it runs in ``make test``.
"""
from __future__ import annotations

import os
import re
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from django.apps import apps
from django.core.files.base import ContentFile
from django.db.models import ForeignKey, Model
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from calls.testing.fake_twilio import FakeTwilio

pytestmark = [pytest.mark.fuzz]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "openapi.yaml"
# Examples per operation and generation mode: 115 operations x 2 modes x this, plus
# the explicit cases, keeps the whole run to a few minutes on a slow 2-core machine.
# A deeper run (say nightly): FUZZ_EXAMPLES=50.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
# Another value explores other requests (each value is as reproducible as the default).
SEED = os.environ.get("FUZZ_SEED", "0")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


# --- the two organisations ------------------------------------------------------------------

@dataclass
class Tenant:
    org: Any
    key: str  # admin API key, plaintext
    marker: str  # a word in the names of this org's objects
    ids: dict[type[Model], list[str]] = field(default_factory=dict)
    fake: Any = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _populate(org: Any, marker: str, fake: FakeTwilio) -> None:
    """Objects of every kind the API exposes, made through the services and the
    factories the isolation matrix uses."""
    from agents.services import publish_agent, update_agent
    from agents.tests.factories import make_agent
    from batches.tests.factories import make_batch, make_dnc, make_scheduled_call
    from calls.models import Recording, TranscriptTurn
    from calls.services.timeline import add_event
    from calls.tests.factories import make_call, make_livekit_rule, make_phone_number, make_ready_agent
    from integrations.models import (
        McpServer,
        McpToolGrant,
        WebhookDelivery,
        WebhookEndpoint,
        WebhookEvent,
    )
    from knowledge import services as knowledge
    from orgs.services import (
        SYSTEM,
        create_api_key,
        invite_member,
        record_audit,
        set_provider_credential,
    )

    set_provider_credential(org, SYSTEM, "twilio", {"account_sid": fake.account_sid, "auth_token": fake.auth_token},
                            {"base_url": fake.base_url})
    set_provider_credential(org, SYSTEM, "openai", {"api_key": f"sk-{marker}-{uuid.uuid4().hex}"},
                            {"base_url": "http://127.0.0.1:9/v1"})
    create_api_key(org, SYSTEM, f"{marker} ci key", "viewer")
    invite_member(org, SYSTEM, f"new-{marker}@example.test", "editor")

    kb = knowledge.create_knowledge_base(org, SYSTEM, name=f"{marker} handbook")
    document = knowledge.add_document(kb, SYSTEM, knowledge.SourceInput(
        text=f"The {marker} office opens at nine. Parking is behind the {marker} building."), title=f"{marker} faq")
    knowledge.ingest_version(str(document.latest_version.public_id), org)  # what the worker runs

    # Outbound destinations are a closed local port: "test" actions fail fast, offline.
    server = McpServer.objects.create(org=org, name=f"{marker} tools", url=f"http://127.0.0.1:9/{marker}/mcp",
                                      auth_headers={"Authorization": f"Bearer mcp-{marker}-{uuid.uuid4().hex}"})
    agent = make_ready_agent(org, name=f"{marker} support")
    update_agent(agent, SYSTEM, knowledge_base_ids=[str(kb.public_id)], mcp_server_ids=[str(server.public_id)])
    publish_agent(agent, SYSTEM, note=f"{marker} v2")
    McpToolGrant.objects.create(org=org, agent=agent, server=server, tool_name="send_message")
    from integrations.models import HttpTool, HttpToolGrant

    http_tool = HttpTool.objects.create(
        org=org, name="lookup_order", description=f"Look up a {marker} order.",
        url=f"https://127.0.0.1:9/{marker}/tool", parameters={"type": "object", "properties": {"order": {"type": "string"}}},
        headers={"Authorization": f"Bearer tool-{marker}-{uuid.uuid4().hex}"}, signing_secret=HttpTool.new_secret())
    HttpToolGrant.objects.create(org=org, agent=agent, tool=http_tool)
    from agents.experiments.services import ArmSpec, create_experiment, start_experiment

    start_experiment(create_experiment(agent, SYSTEM, name=f"{marker} greeting test", arms=[ArmSpec(1), ArmSpec(2)]),
                     SYSTEM)
    create_experiment(agent, SYSTEM, name=f"{marker} next test", arms=[ArmSpec(2), ArmSpec(1, 3)])
    draft = make_agent(org, name=f"{marker} draft")

    number = make_phone_number(org, label=f"{marker} main line", inbound_agent=agent)
    make_livekit_rule(org, name=f"{marker} livekit rule", agent=agent, attributes={"team": f"{marker} team"})
    fake.add_number(number.e164, friendly_name=f"{marker} main line")
    calls = []
    for status in ("completed", "in_progress"):
        calls.append(call := make_call(org, agent=agent, agent_version=agent.published_version, phone_number=number,
                         carrier="twilio", carrier_call_id=f"CA{uuid.uuid4().hex}", status=status,
                         from_number=number.e164, variables={"customer_name": f"{marker} customer"}))
        add_event(call, "call.started", note=f"{marker} started")
        add_event(call, "tool.called", tool="search_knowledge")
        for index, (role, text) in enumerate((("agent", f"Hello from {marker}."), ("caller", "When do you open?"))):
            TranscriptTurn.objects.create(call=call, index=index, role=role, text=text, start_ms=index * 1000,
                                          end_ms=index * 1000 + 900)
    Recording.objects.create(call=calls[0], file=ContentFile(b"RIFF\x24\x00\x00\x00WAVEfmt ", name="r.wav"),
                             duration_ms=1000, size_bytes=12)

    endpoint = WebhookEndpoint.objects.create(org=org, url=f"http://127.0.0.1:9/{marker}/hook", events=["call.ended"],
                                              secret=WebhookEndpoint.new_secret(), description=f"{marker} CRM")
    event = WebhookEvent.objects.create(org=org, type="call.ended", payload={"call": {"id": str(calls[0].public_id)}})
    WebhookDelivery.objects.create(org=org, event=event, endpoint=endpoint)
    record_audit(org, SYSTEM, "fuzz.prepared", target=draft)
    make_batch(org, name=f"{marker} campaign")
    make_scheduled_call(org, name=f"{marker} check-in")
    make_scheduled_call(org, name=f"{marker} reminder", kind="one_time")
    make_dnc(org)
    from simulations.tests.factories import make_suite_run

    make_suite_run(org)

    from privacy.models import RetentionPolicy

    RetentionPolicy.objects.create(org=org, transcripts_days=90)
    RetentionPolicy.objects.create(org=org, agent=agent, recordings_days=30)


def _org_paths(model: type[Model]) -> list[str]:
    """Lookups from ``model`` to its organisation (direct, or through one foreign key)."""
    names = {f.name for f in model._meta.get_fields()}
    if "org" in names:
        return ["org"]
    return [f"{f.name}__org" for f in model._meta.get_fields()
            if isinstance(f, ForeignKey) and "org" in {g.name for g in f.related_model._meta.get_fields()}]


def _ids_by_model(org: Any) -> dict[type[Model], list[str]]:
    from orgs.models import Organization

    found: dict[type[Model], list[str]] = {Organization: [str(org.public_id)]}
    for model in apps.get_models():
        if "public_id" not in {f.name for f in model._meta.get_fields()} or model is Organization:
            continue
        ids: set[str] = set()
        for path in _org_paths(model):
            ids |= {str(v) for v in model.objects.filter(**{path: org}).values_list("public_id", flat=True)}
        if ids:
            found[model] = sorted(ids)
    return found


def _secrets_of(org: Any) -> set[str]:
    """Everything of ``org`` that no other org may ever read."""
    from django.contrib.auth import get_user_model

    from calls.models import Call
    from integrations.models import HttpTool, McpServer, WebhookEndpoint
    from orgs.models import ApiKey, Invitation, ProviderCredential

    values: set[str] = set()
    for public_id in (i for ids in _ids_by_model(org).values() for i in ids):
        values |= {public_id, uuid.UUID(public_id).hex}
    values |= set(ApiKey.objects.filter(org=org).values_list("prefix", flat=True))
    values |= set(ApiKey.objects.filter(org=org).values_list("key_hash", flat=True))
    values |= set(Invitation.objects.filter(org=org).values_list("token_hash", flat=True))
    values |= set(Invitation.objects.filter(org=org).values_list("email", flat=True))
    values |= {h for h in Call.objects.filter(org=org).values_list("stream_token_hash", flat=True) if h}
    values |= {c for c in Call.objects.filter(org=org).values_list("carrier_call_id", flat=True) if c}
    for credential in ProviderCredential.objects.filter(org=org):
        values |= {str(v) for v in credential.secrets.values() if v}
    for server in McpServer.objects.filter(org=org):
        values |= {str(v) for v in server.auth_headers.values() if v}
    values |= {e.secret for e in WebhookEndpoint.objects.filter(org=org)}
    for tool in HttpTool.objects.filter(org=org):
        values |= {tool.signing_secret} | {str(v) for v in tool.headers.values() if v}
    values |= set(get_user_model().objects.filter(memberships__org=org).values_list("email", flat=True))
    return {v for v in values if len(v) >= 8}


# --- the checks -----------------------------------------------------------------------------

def _request_text(case: Any) -> str:
    return " ".join(str(part) for part in (case.path_parameters, case.query, case.body, case.headers))


def not_a_server_error_unless_upstream(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis's ``not_a_server_error``, except a 502/503 whose error body says which
    upstream (the carrier, an AI provider) refused: that is the documented answer when,
    say, the carrier no longer knows a call our database still holds as live."""
    if response.status_code in (502, 503):
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            error = None
        if isinstance(error, dict) and error.get("message"):
            return None
    return not_a_server_error(ctx, response, case)


def make_no_foreign_data_check(foreign: set[str], marker: str) -> Any:
    def no_foreign_data(ctx: Any, response: Any, case: Any) -> None:
        """No identifier or secret of the other org, unless the request carried it."""
        body = response.content.decode("latin-1")
        sent = _request_text(case)
        leaked = sorted(v for v in foreign if v in body and v not in sent)
        if marker in body and marker not in sent:
            leaked.append(f"name containing {marker!r}")
        if leaked:
            raise AssertionError(f"response to org B carries org A's {leaked[:5]}")

    return no_foreign_data


def make_foreign_path_is_404_check(foreign_ids: set[str]) -> Any:
    def foreign_path_is_not_found(ctx: Any, response: Any, case: Any) -> None:
        """A request naming the other org's object in its path is refused as not found
        (a malformed request may be refused as such first; nothing else)."""
        named = {str(v) for v in (case.path_parameters or {}).values()} & foreign_ids
        if named and response.status_code not in (400, 404, 405, 406, 415):
            raise AssertionError(f"{response.status_code} for org A's object {sorted(named)} (expected 404)")

    return foreign_path_is_not_found


# --- path parameters ------------------------------------------------------------------------

def _model_of(path: str) -> type[Model] | None:
    """The model behind an API route, from its view (a UUID stands in for each id)."""
    try:
        match = resolve(re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path))
    except Resolver404:
        return None
    cls = getattr(match.func, "cls", None)
    model = getattr(cls, "model", None)
    if model is None and getattr(cls, "queryset", None) is not None:
        model = cls.queryset.model
    return model


def _path_choices(operation: Any, tenants: list[Tenant]) -> list[dict[str, str]]:
    """Concrete path parameters made of the tenants' real ids (empty when the path has none)."""
    from knowledge.models import Document, KnowledgeBase
    from orgs.models import Provider

    names = [p.name for p in operation.path_parameters]
    if not names:
        return []
    if names == ["provider"]:
        return [{"provider": p} for p in Provider.values]
    choices: list[dict[str, str]] = []
    for tenant in tenants:
        if "kb_public_id" in names:
            for kb_id in tenant.ids.get(KnowledgeBase, []):
                docs = Document.objects.filter(knowledge_base__public_id=kb_id)
                for doc_id in [str(d) for d in docs.values_list("public_id", flat=True)] or [str(uuid.uuid4())]:
                    choices.append({"kb_public_id": kb_id, **({"public_id": doc_id} if "public_id" in names else {})})
            continue
        if "agent_public_id" in names:  # an agent's experiments
            from agents.models import Experiment

            experiments = Experiment.objects.filter(public_id__in=tenant.ids.get(Experiment, [])).select_related("agent")
            for experiment in experiments:
                choices.append({"agent_public_id": str(experiment.agent.public_id),
                                **({"public_id": str(experiment.public_id)} if "public_id" in names else {})})
            continue
        model = _model_of(operation.path)
        for public_id in tenant.ids.get(model, []) if model is not None else []:
            choices.append({names[0]: public_id})
    return choices


# --- the run --------------------------------------------------------------------------------

@dataclass
class Findings:
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: "<operation> [<mode>]" → requests sent
    sent: dict[str, int] = field(default_factory=dict)
    #: operations with ids in their path → requests aimed at a real object of either org
    on_real_objects: dict[str, int] = field(default_factory=dict)

    def record(self, response: Any, label: str = "", real_object: bool = False) -> None:
        self.requests += 1
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        self.sent[label] = self.sent.get(label, 0) + 1
        if real_object:
            operation = label.rsplit(" [", 1)[0]
            self.on_real_objects[operation] = self.on_real_objects.get(operation, 0) + 1

    def uncovered(self, schema: Any) -> list[str]:
        """Operations of ``schema`` this run did not exercise: no schema-valid request
        sent, or (for a route with an id) none aimed at a real object of either org."""
        missing = []
        for operation in _operations(schema):
            if not self.sent.get(f"{operation.label} [{GenerationMode.POSITIVE.value}]"):
                missing.append(f"{operation.label}: no request")
            elif operation.path_parameters and not self.on_real_objects.get(operation.label):
                missing.append(f"{operation.label}: no request at a real object")
        return missing


def _swap_ids(value: Any, draw: Any, pool: list[str]) -> Any:
    """Each UUID in a generated body may become a real id of either org."""
    if isinstance(value, dict):
        return {k: _swap_ids(v, draw, pool) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap_ids(v, draw, pool) for v in value]
    if isinstance(value, str) and UUID_RE.fullmatch(value):
        return draw(st.sampled_from([value, *pool]))
    return value


def _operations(schema: Any) -> Iterator[Any]:
    for result in schema.get_all_operations():
        yield result.ok()


def _fuzz_operation(operation: Any, base_url: str, attacker: Tenant, victim: Tenant, checks: list[Any],
                    findings: Findings, session: requests.Session) -> None:
    path_choices = _path_choices(operation, [attacker, victim])
    body_pool = [i for t in (attacker, victim) for ids in t.ids.values() for i in ids[:3]]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        label = f"{operation.label} [{mode.value}]"
        strategies = [operation.as_strategy(generation_mode=mode)]
        strategies += [operation.as_strategy(generation_mode=mode, path_parameters=p) for p in path_choices]
        started = time.monotonic()
        try:
            _probe(label, st.one_of(strategies), base_url, attacker, checks, findings, session, body_pool,
                   {frozenset(p.items()) for p in path_choices})()
        except Exception as exc:  # noqa: BLE001 - recorded as a finding unless generation itself could not proceed
            if "Unsatisfiable" not in type(exc).__name__ and "cannot be negated" not in str(exc):
                findings.failures.setdefault(f"{label} error", repr(exc))
        findings.seconds[label] = time.monotonic() - started


def _probe(label: str, strategy: Any, base_url: str, attacker: Tenant, checks: list[Any], findings: Findings,
           session: requests.Session, body_pool: list[str], real_paths: set[frozenset[Any]]) -> Any:
    """The Hypothesis test for one operation and generation mode; failures are recorded
    (not raised) so one run reports every operation that fails."""

    # A fixed seed per operation and mode: the same requests on every run (and
    # different streams for different operations, unlike ``derandomize``).
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @seed(zlib.crc32(f"{SEED}:{label}".encode()))
    @given(case=strategy, data=st.data())
    def probe(case: Any, data: Any) -> None:
        if isinstance(case.body, (dict, list)):
            case.body = _swap_ids(case.body, data.draw, body_pool)
        if case.query:
            case.query = _swap_ids(dict(case.query), data.draw, body_pool)
        response = case.call(base_url=base_url, headers=attacker.headers, session=session, timeout=30)
        real = frozenset({k: str(v) for k, v in (case.path_parameters or {}).items()}.items()) in real_paths
        findings.record(response, label, real_object=real)
        try:
            case.validate_response(response, checks=checks, headers=attacker.headers)
        except FailureGroup as exc:
            findings.failures.setdefault(f"{label} {sorted(type(f).__name__ for f in exc.exceptions)}", str(exc))
        except AssertionError as exc:
            findings.failures.setdefault(f"{label} leak", str(exc))

    return probe


@pytest.fixture
def tenants(transactional_db: Any, settings: Any, tmp_path: Path, monkeypatch: Any) -> Iterator[tuple[Tenant, Tenant]]:
    from django.contrib.auth import get_user_model

    from orgs.models import ApiKey, Membership, Organization
    from orgs.services import SYSTEM, create_api_key
    from voiceplatform.drf import ApiKeyRateThrottle

    settings.MEDIA_ROOT = str(tmp_path / "media")
    # The run sends thousands of requests with one key; the limit itself is tested elsewhere.
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "1000000/min"})
    with FakeTwilio() as fake_a, FakeTwilio() as fake_b:
        made = []
        for name, marker, fake in (("Org A", "alphazulu", fake_a), ("Org B", "bravoyank", fake_b)):
            org = Organization.objects.create(name=f"{marker} org", slug=name.lower().replace(" ", "-"))
            for role in ("owner", "viewer"):
                user = get_user_model().objects.create_user(f"{role}@{marker}.test", f"{role}@{marker}.test", "pw")
                Membership.objects.create(org=org, user=user, role=role)
            _populate(org, marker, fake)
            key, plaintext = create_api_key(org, SYSTEM, f"{marker} fuzz key", "admin")
            made.append(Tenant(org=org, key=plaintext, marker=marker, fake=fake))
            made[-1].ids = _ids_by_model(org)
            # The run's own key is not offered to DELETE /api-keys/{id} (its other keys are).
            made[-1].ids[ApiKey].remove(str(key.public_id))
        yield made[0], made[1]


@pytest.mark.timeout(1200)
def test_schema_fuzz_by_another_org_finds_no_server_error_and_no_leak(tenants: tuple[Tenant, Tenant],
                                                                      live_server: Any) -> None:
    from agents.models import Agent

    org_a, org_b = tenants
    foreign = _secrets_of(org_a.org) | {org_a.key}
    schema = schemathesis.openapi.from_path(SCHEMA_PATH)
    leak_check = make_no_foreign_data_check(foreign, org_a.marker)
    checks = [not_a_server_error_unless_upstream, leak_check,
              make_foreign_path_is_404_check({i for ids in org_a.ids.values() for i in ids})]

    # The leak check sees org A's data where it is (A reading its own agents), and not in B's own.
    agents = schema["/api/v1/agents/"]["GET"]
    own = agents.Case()
    for tenant, leaks in ((org_a, True), (org_b, False)):
        response = own.call(base_url=live_server.url, headers=tenant.headers)
        assert response.status_code == 200 and len(response.json()["results"]) == Agent.objects.filter(
            org=tenant.org).count()
        if leaks:
            with pytest.raises(AssertionError, match="org A's"):
                leak_check(None, response, own)
        else:
            leak_check(None, response, own)

    findings = Findings()
    started = time.monotonic()
    with requests.Session() as session:
        for operation in _operations(schema):
            _fuzz_operation(operation, live_server.url, org_b, org_a, checks, findings, session)
    elapsed = time.monotonic() - started
    print(f"\nschema fuzz: {findings.requests} requests in {elapsed:.0f} s, statuses {sorted(findings.statuses.items())}")
    print("slowest:", sorted(findings.seconds.items(), key=lambda kv: -kv[1])[:10])
    assert findings.requests > 500
    # Every operation of the committed schema was exercised (one added since is too):
    # a schema-valid request, and for a route with an id one aimed at a real object.
    assert not findings.uncovered(schema), findings.uncovered(schema)
    # Enough of the generated requests got past validation to mean something.
    assert sum(n for s, n in findings.statuses.items() if s < 300) > 100
    assert not findings.failures, "\n\n".join(f"{k}\n{v}" for k, v in sorted(findings.failures.items()))[:20000]


@pytest.mark.timeout(600)
def test_every_id_route_is_a_404_for_another_orgs_ids(tenants: tuple[Tenant, Tenant], live_server: Any) -> None:
    org_a, org_b = tenants
    schema = schemathesis.openapi.from_path(SCHEMA_PATH)
    foreign_ids = {i for ids in org_b.ids.values() for i in ids}
    wrong: list[str] = []
    tried = 0
    with requests.Session() as session:
        for operation in _operations(schema):
            names = [p.name for p in operation.path_parameters]
            if not names or names == ["provider"]:
                continue
            choices = _path_choices(operation, [org_b])
            # Also A's own knowledge base with B's document: the pair must match.
            if "kb_public_id" in names and "public_id" in names:
                from knowledge.models import KnowledgeBase

                choices += [{"kb_public_id": kb, "public_id": c["public_id"]}
                            for kb in org_a.ids[KnowledgeBase] for c in choices[:1]]
            # And A's own agent with B's experiment.
            if "agent_public_id" in names and "public_id" in names:
                from agents.models import Agent

                choices += [{"agent_public_id": agent, "public_id": c["public_id"]}
                            for agent in org_a.ids[Agent][:1] for c in choices[:1]]
            assert choices, f"org B has no object for {operation.label}"
            for params in choices:
                url = live_server.url + operation.path.format(**params)
                response = session.request(operation.method.upper(), url, headers=org_a.headers, json={}, timeout=30)
                tried += 1
                if response.status_code != 404:
                    wrong.append(f"{operation.method.upper()} {url} → {response.status_code} {response.text[:200]}")
                assert not any(i in response.text for i in foreign_ids - set(params.values())), url
    print(f"\nforeign ids in paths: {tried} requests with org A's key at org B's objects")
    assert tried > 60
    assert not wrong, "\n".join(wrong)


def test_the_coverage_check_names_every_operation_a_run_did_not_reach() -> None:
    """The check the fuzz run ends with: an operation of openapi.yaml (one added later
    included) that got no request, or none at a real object, is named."""
    schema = schemathesis.openapi.from_path(SCHEMA_PATH)
    operations = list(_operations(schema))
    assert len(operations) > 100
    assert len(Findings().uncovered(schema)) == len(operations)
    reached = Findings()
    for operation in operations:
        reached.sent[f"{operation.label} [{GenerationMode.POSITIVE.value}]"] = 1
        if operation.path_parameters:
            reached.on_real_objects[operation.label] = 1
    assert reached.uncovered(schema) == []
    with_id = next(o for o in operations if o.path_parameters)
    del reached.on_real_objects[with_id.label]
    assert reached.uncovered(schema) == [f"{with_id.label}: no request at a real object"]
