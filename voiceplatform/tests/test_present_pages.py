"""Dashboard pages speak human (issue 13, points 7 and 8): no internal values, links instead of
setting paths, confirmations on destructive buttons, the preview and the search playground."""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from agents.services import publish_agent, update_agent
from batches.models import BatchEntry, DoNotCallNumber, EntryState
from batches.tests.factories import make_batch, make_scheduled_call
from calls.models import Recording
from calls.tests.factories import make_call, make_phone_number, make_ready_agent
from integrations.tests.factories import make_mcp_server, make_webhook_endpoint
from knowledge.tests.factories import make_document, make_knowledge_base
from orgs.models import Membership
from orgs.services import SYSTEM, create_api_key, set_provider_credential

pytestmark = pytest.mark.django_db

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def visible_text(page: str) -> str:
    """What a reader sees: the body without tags, attributes or scripts, whitespace collapsed."""
    body = page.split("<body", 1)[-1]
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def get(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def test_call_detail_shows_money_reasons_and_durations_for_people(org_a, owner_a, login):
    call = make_call(org_a, status="completed", end_reason="caller_hangup", duration_s=245,
                     provider_cost=Decimal("0E-8"), cost_breakdown={"provider": {
                         "provider": "openai_realtime", "model": "gpt-realtime", "currency": "USD", "amount": "0E-8",
                         "reason": "", "price_source": "list prices", "notes": [],
                         "lines": [{"kind": "audio_input", "quantity": 0, "unit": "1M tokens", "unit_price": "32",
                                    "subtotal": "0E-8"},
                                   {"kind": "text_input", "quantity": 300, "unit": "1M tokens", "unit_price": "4",
                                    "subtotal": "0.0012"}]}})
    Recording.objects.create(call=call, file="recordings/x.wav", duration_ms=24576)
    text = visible_text(get(login(owner_a), reverse("calls:detail", args=[call.public_id])))
    assert "0E-8" not in text and "$0.00" in text and "$0.0012" in text and "$32.00 / 1M tokens" in text
    assert "caller_hangup" not in text and "Caller hung up" in text
    assert "4 min 05 s" in text
    assert "24576" not in text and "24.6 s" in text
    assert "+1 415-555-0199" in text  # the callee, grouped for reading


def test_call_list_counts_and_labels(org_a, owner_a, login):
    make_call(org_a, status="no_answer", end_reason="no_answer", duration_s=0)
    page = get(login(owner_a), reverse("calls:list"))
    text = visible_text(page)
    assert "1 call" in text and "1 calls" not in text
    assert '<span class="badge bad">No answer</span>' in page
    assert "no_answer" not in text


def test_batch_detail_names_row_states_in_words(org_a, owner_a, login):
    DoNotCallNumber.objects.create(org=org_a, e164="+12125551001", reason="asked")
    batch = make_batch(org_a)
    BatchEntry.objects.filter(batch=batch, state=EntryState.PENDING).update(state=EntryState.IN_CALL)
    text = visible_text(get(login(owner_a), reverse("batches:detail", args=[batch.public_id])))
    assert "do_not_call" not in text and "in_call" not in text
    assert "On the do-not-call list" in text and "On a call" in text
    assert "Ready to launch" in text or "Running" in text


def test_batch_list_and_preview_states(org_a, owner_a, login):
    make_batch(org_a)
    page = get(login(owner_a), reverse("batches:list"))
    assert '<span class="badge neutral batch-status">Ready to launch</span>' in page
    create = get(login(owner_a), reverse("batches:create"))
    # The Preview button sends the form to #preview: the page comes back scrolled to the results.
    assert re.search(r'<button[^>]*value="preview"[^>]*formaction="#preview"', create)


def test_version_diff_names_knowledge_bases_instead_of_ids(org_a, owner_a, login):
    agent = make_ready_agent(org_a, name="Desk")
    kb = make_knowledge_base(org_a)
    kb.name = "Returns policy"
    kb.save()
    update_agent(agent, SYSTEM, knowledge_base_ids=[str(kb.public_id)], builtin_tools=["end_call", "search_knowledge"])
    publish_agent(agent, SYSTEM, note="kb")
    kb_id = str(kb.public_id)
    kb.delete()  # a version that names a deleted base still shows no bare id
    other = make_knowledge_base(org_a)
    other.name = "Opening hours"
    other.save()
    agent.refresh_from_db()
    update_agent(agent, SYSTEM, knowledge_base_ids=[str(other.public_id)], builtin_tools=["end_call"])
    page = get(login(owner_a), reverse("agents:versions", args=[agent.public_id]))
    text = visible_text(page)
    assert "Opening hours" in text and "Knowledge bases" in text and "a deleted knowledge base" in text
    assert "knowledge_base_ids" not in text and "search_knowledge" not in text and "builtin_tools" not in text
    assert kb_id not in page and str(other.public_id) not in page
    assert not UUID_RE.search(text.split("version history", 1)[-1])


def test_schedules_show_cron_in_words(org_a, owner_a, login):
    make_scheduled_call(org_a)
    text = visible_text(get(login(owner_a), reverse("batches:schedules")))
    assert "At 09:00, Monday through Friday" in text and "0 9 * * 1-5" in text


def test_pasted_text_documents_say_so_once(org_a, owner_a, login):
    document = make_document(org_a)
    text = visible_text(get(login(owner_a), reverse("knowledge:detail", args=[document.knowledge_base.public_id])))
    assert "Pasted text" in text and "Pasted text text" not in text and "Ready" in text


def test_missing_credential_links_to_the_credentials_page(org_a, owner_a, login):
    agent = make_ready_agent(org_a, provider="openai_realtime")
    page = get(login(owner_a), reverse("agents:edit", args=[agent.public_id]))
    assert f'<a href="{reverse("orgs:credentials")}">Settings → Provider credentials</a>' in page


def test_web_call_refusal_links_to_the_fix(org_a, owner_a, login):
    agent = make_ready_agent(org_a, provider="openai_realtime")
    page = login(owner_a).post(reverse("calls:web"), {"agent": str(agent.public_id)}).content.decode()
    assert "no OpenAI Realtime credential" in visible_text(page)
    assert f'<a href="{reverse("orgs:credentials")}">Settings → ' in page


def test_duplicate_number_error_has_no_prefix(org_a, owner_a, login):
    number = make_phone_number(org_a)
    page = login(owner_a).post(reverse("calls:numbers"), {"e164": number.e164, "carrier": "twilio"}).content.decode()
    assert "already registered" in page and "e164: " not in visible_text(page)


def test_destructive_buttons_ask_first_naming_the_object(org_a, owner_a, login):
    client = login(owner_a)
    set_provider_credential(org_a, SYSTEM, "openai", {"api_key": "sk-test-999999"})
    create_api_key(org_a, SYSTEM, "CRM sync")
    other = Membership.objects.create(org=org_a, user=type(owner_a).objects.create_user(
        username="bea", email="bea@a.test", password="x" * 12), role="editor")
    endpoint = make_webhook_endpoint(org_a)
    server = make_mcp_server(org_a)
    number = make_phone_number(org_a)
    cases = {
        reverse("orgs:credentials"): "Remove the OpenAI credential?",
        reverse("orgs:api-keys"): "Revoke the API key CRM sync",
        reverse("orgs:members"): f"Remove {other.user.email} from {org_a.name}?",
        reverse("integrations:endpoint", args=[endpoint.public_id]): f"Remove the webhook endpoint {endpoint.url}?",
        reverse("integrations:server", args=[server.public_id]): f"Remove the MCP server {server.name}?",
        reverse("calls:numbers"): f"Remove {number.e164} from this organisation?",
    }
    for url, question in cases.items():
        page = get(client, url)
        assert f"return confirm('{question}" in html.unescape(page), url


def test_search_playground_shows_progress_while_searching(org_a, owner_a, login):
    kb = make_knowledge_base(org_a)
    page = get(login(owner_a), reverse("knowledge:search", args=[kb.public_id]))
    assert 'hx-indicator="#search-progress"' in page and 'id="search-progress"' in page
    assert 'hx-target="#search-results"' in page and 'id="search-results"' in page
