"""Every dashboard page of an org with one object of each kind, for the page-wide checks.

``populate(org)`` creates, with the apps' own test factories (which go through the services),
an agent, a call, a phone number, a campaign, a schedule, a knowledge base with a document,
an MCP server, a webhook endpoint and a LiveKit dispatch rule, and returns the URL of every page a member can open:
each navigation area, settings page and account page, and the detail/edit/create pages of
those objects. The browser test (test_browser.py) and the labelling test (test_layout.py)
walk the same list, so a page added here is checked both ways.
"""
from __future__ import annotations

from typing import Any

from django.urls import reverse


def populate(org: Any) -> list[str]:
    """Create one object of each kind in ``org``; the URLs of every dashboard page, nav areas first."""
    from batches.tests.factories import make_batch, make_scheduled_call
    from calls.tests.factories import (
        make_call,
        make_livekit_rule,
        make_phone_number,
        make_ready_agent,
        make_transfer_leg,
    )
    from integrations.tests.factories import make_mcp_server, make_webhook_endpoint
    from knowledge.tests.factories import make_document
    from simulations.models import ScenarioRun
    from simulations.tests.factories import make_suite_run

    agent = make_ready_agent(org, name="Front desk")
    number = make_phone_number(org, inbound_agent=agent)
    call = make_call(org, agent=agent, agent_version=agent.published_version, from_number=number.e164,
                     answer_outcome="voicemail")
    # a warm transfer that reached the caller: the call page's transfers panel and cost rows
    make_transfer_leg(org, call=call, duration_s=42, cost="0.01400", cost_currency="USD")
    batch = make_batch(org, agent=agent, from_number=number)
    schedule = make_scheduled_call(org, agent=agent, from_number=number)
    document = make_document(org)
    kb = document.knowledge_base
    server = make_mcp_server(org)
    endpoint = make_webhook_endpoint(org)
    test_run = make_suite_run(org)
    test_result = ScenarioRun.objects.get(suite_run=test_run)
    livekit_rule = make_livekit_rule(org, agent=agent, attributes={"department": "support"})
    return [
        # the navigation, in its order
        reverse("dashboard"), reverse("analytics:overview"), reverse("agents:list"), reverse("simulations:list"),
        reverse("calls:list"), reverse("calls:numbers"),
        reverse("batches:list"), reverse("batches:schedules"), reverse("knowledge:list"),
        reverse("integrations:servers"), reverse("integrations:endpoints"),
        reverse("orgs:settings"), reverse("orgs:members"), reverse("orgs:api-keys"), reverse("orgs:credentials"),
        reverse("orgs:audit-log"), reverse("privacy:settings"),
        # create / detail / edit pages
        reverse("agents:create"), reverse("agents:edit", args=[agent.public_id]),
        reverse("agents:versions", args=[agent.public_id]),
        reverse("analytics:agent", args=[agent.public_id]), reverse("analytics:campaign", args=[batch.public_id]),
        reverse("calls:detail", args=[call.public_id]), reverse("calls:live"),
        reverse("calls:livekit-rules"), reverse("calls:livekit-rule-create"),
        reverse("calls:livekit-rule", args=[livekit_rule.public_id]),
        f"{reverse('calls:web')}?agent={agent.public_id}",
        reverse("batches:create"), reverse("batches:detail", args=[batch.public_id]), reverse("batches:do-not-call"),
        reverse("batches:schedule-create"), reverse("batches:schedule", args=[schedule.public_id]),
        reverse("knowledge:detail", args=[kb.public_id]), reverse("knowledge:search", args=[kb.public_id]),
        reverse("knowledge:document", args=[kb.public_id, document.public_id]),
        reverse("integrations:server", args=[server.public_id]),
        reverse("integrations:endpoint", args=[endpoint.public_id]),
        reverse("orgs:create"),
        reverse("simulations:suite", args=[test_run.suite.public_id]),
        reverse("simulations:scenario-create", args=[test_run.suite.public_id]),
        reverse("simulations:scenario", args=[test_result.scenario.public_id]),  # type: ignore[union-attr]
        reverse("simulations:run", args=[test_run.public_id]),
        reverse("simulations:result", args=[test_result.public_id]),
        # the signed-in account pages (allauth, in the dashboard shell)
        reverse("account_email"), reverse("account_change_password"), reverse("mfa_index"),
    ]
