"""The experiments section in a real browser, as an editor uses it: create an
experiment from the agent page, start it, read the results table (bars and
statements) at phone and desktop width, end it with a winner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.utils import timezone

from voiceplatform.browsing import document_overflow, open_page, sign_in


def test_an_editor_runs_an_experiment_from_the_agent_page(transactional_db: Any, live_server: Any, browser: Any,
                                                          tmp_path: Path) -> None:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from agents.models import Experiment
    from agents.services import publish_agent
    from calls.tests.factories import make_call, make_ready_agent
    from orgs.services import SYSTEM, create_organization

    password = "Browser-test-pw-55"
    user = get_user_model().objects.create_user("editor@browser.test", "editor@browser.test", password)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    org = create_organization("Browser Org", user)
    agent = make_ready_agent(org, name="Front desk")
    agent.first_message = "Hi! Short and sweet."
    agent.save()
    publish_agent(agent, SYSTEM, note="short greeting")

    page, problems = open_page(browser, 1440, 900)
    sign_in(page, live_server.url, user.email, password)
    page.goto(f"{live_server.url}/agents/{agent.public_id}/#experiments")
    section = page.locator("#experiments")
    section.get_by_label("Name").fill("Greeting length")
    assert section.get_by_label("Arm A version").input_value() == "1"  # the previous version is the control
    assert section.get_by_label("Arm B version").input_value() == "2"
    section.get_by_label("weight").nth(1).fill("3")
    section.get_by_role("button", name="Create experiment").click()
    page.get_by_text("Created the experiment “Greeting length”").wait_for()
    section.get_by_role("button", name="Start").click()
    page.get_by_text("is running: new calls are split").wait_for()

    experiment = Experiment.objects.get(agent=agent)
    assert [(a.label, a.version.number, a.weight) for a in experiment.arms.all()] == [("A", 1, 1), ("B", 2, 3)]
    now = timezone.now()
    for arm, duration in ((experiment.arms.get(label="A"), 40), (experiment.arms.get(label="B"), 95)):
        for _ in range(12):
            make_call(org, agent=agent, agent_version=arm.version, experiment_arm=arm, answered_at=now,
                      duration_s=duration)

    for width, height in ((390, 844), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        table = page.locator("table.exp-results")
        table.wait_for()
        duration_row = table.locator("tr", has=page.get_by_role("rowheader", name="Duration"))
        assert "B's duration is higher than A's, significant at 95 %." in duration_row.inner_text()
        bars = duration_row.locator(".exp-bar > span")
        widths = [bars.nth(i).evaluate("e => e.getBoundingClientRect().width") for i in range(bars.count())]
        assert len(widths) == 2 and 0 < widths[0] < widths[1]  # 40 s against 95 s: B's bar is longer
        assert document_overflow(page) == 0
        page.locator("#experiments").screenshot(path=str(tmp_path / f"{width}-experiment.png"))

    # The control wins (say the shorter calls were the point): its version is published again.
    page.get_by_label("Winner").select_option("A")
    page.get_by_role("button", name="End experiment").click()
    page.get_by_text("version 1 (arm A) is now published").wait_for()
    agent.refresh_from_db()
    assert agent.published_version is not None and agent.published_version.number == 1
    problems.assert_none()
