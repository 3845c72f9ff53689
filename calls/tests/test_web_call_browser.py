"""The browser test call, as a user makes it: agents list → "Talk to this agent" → a live
web call with the echo agent on real Daphne (WebSockets), Postgres and Redis, in Debian's
Chromium whose fake microphone plays a WAV of synthetic speech (voiced syllables, then
silence, looped): the server's VAD hears the caller speak, the echo agent plays it back.

The screen must show the agent's own call variables, then during the call a moving timer,
the live transcript (the echo agent's greeting, rendered with the variable typed in), who
is speaking and the microphone level; mute and hang-up work; the end is shown as it really
was, and the link leads to the call's page with the stored transcript.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calls.models import Call, CallEvent
from calls.testing.processes import Processes, free_port, server_argv
from calls.testing.signals import speech_like
from calls.tests.factories import make_ready_agent
from voiceplatform.browsing import browser_with_microphone, open_page, sign_in
from voiceplatform.testing import subprocess_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "Web-call-pw-77"


@pytest.fixture
def talking_browser(monkeypatch: Any, tmp_path: Path) -> Iterator[Any]:
    """The shared ``browser`` set-up, its microphone speaking: 1.2 s of voice, 1.8 s of silence."""
    rate = 48000
    voice = np.concatenate([speech_like(1.2, sample_rate=rate, seed=2), np.zeros(int(1.8 * rate), np.int16)])
    with browser_with_microphone(monkeypatch, tmp_path / "caller.wav", voice.tobytes(), rate) as instance:
        yield instance


@pytest.fixture
def daphne(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes = Processes(tmp_path / "daphne.log")
    processes.spawn(server_argv("daphne", port), subprocess_env(PUBLIC_BASE_URL=base,
                                                                MEDIA_ROOT=str(tmp_path / "media")))
    try:
        processes.wait_healthy(base)
        yield base
    finally:
        processes.stop()


@pytest.fixture
def echo_org(transactional_db: Any) -> Any:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from orgs.services import create_organization

    user = get_user_model().objects.create_user("caller@webcall.test", "caller@webcall.test", PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    org = create_organization("Web Call Org", user)
    agent = make_ready_agent(org, name="Echo desk", provider="echo",
                             first_message="Hello {{customer_name|there}}, this is the echo line.")
    return agent


def test_talk_to_the_echo_agent_from_the_agents_list(echo_org: Any, daphne: str, talking_browser: Any,
                                                     tmp_path: Path) -> None:
    agent = echo_org
    page, problems = open_page(talking_browser, 1280, 900)
    sign_in(page, daphne, "caller@webcall.test", PASSWORD)
    page.goto(f"{daphne}/agents/")
    page.screenshot(path=str(tmp_path / "agents-list.png"), full_page=True)
    page.get_by_role("row", name="Echo desk").get_by_role("link", name="Talk to this agent").click()
    page.wait_for_url(f"{daphne}/calls/web/?agent={agent.public_id}")

    # the agent's own variables, defaults as placeholders (not a hard-coded customer_name)
    assert page.locator("#var-customer_name").get_attribute("placeholder") == "the caller"
    assert page.locator("#var-order_id").get_attribute("placeholder") == "unknown"
    page.fill("#var-customer_name", "Ada")
    page.screenshot(path=str(tmp_path / "web-call-form.png"), full_page=True)
    page.get_by_role("button", name="Start a call from this browser").click()

    page.locator("#web-call-status", has_text="connected").wait_for()
    assert "without transcribing" in page.locator("#web-call-echo-note").inner_text()  # says what to expect
    # the greeting arrives as a live transcript line, labelled, with the variable filled in
    page.locator("#web-call-transcript .wc-agent", has_text="Hello Ada, this is the echo line.").wait_for()
    assert page.locator("#web-call-transcript .wc-agent strong").first.inner_text().strip() == "Agent:"
    page.wait_for_function("document.getElementById('web-call-timer').textContent !== '0:00'")
    # the microphone speaks: the meter moves, the server's VAD hears the caller, and the echo
    # agent is heard speaking (it plays the voice back, so both may speak at once)
    page.wait_for_function("document.getElementById('web-call-level').value > 0")
    page.locator("#web-call-speaking[data-who=caller], #web-call-speaking[data-who=both]").wait_for()
    page.locator("#web-call-speaking[data-who=agent], #web-call-speaking[data-who=both]").wait_for()
    page.locator("#web-call-speaking[data-who=none]", has_text="Listening").wait_for()
    page.screenshot(path=str(tmp_path / "web-call-live.png"), full_page=True)

    page.get_by_role("button", name="Mute").click()
    assert page.get_by_role("button", name="Unmute").get_attribute("aria-pressed") == "true"
    assert page.locator("#web-call-muted").is_visible()

    page.get_by_role("button", name="Hang up").click()
    outcome = page.locator("#web-call-outcome")
    outcome.wait_for()
    assert outcome.inner_text() == "Ended: you hung up."
    assert outcome.get_attribute("data-reason") == "caller_hangup"  # the server said so, not a guess
    assert "success" in (outcome.get_attribute("class") or "")
    assert page.locator("#web-call-status").inner_text() == "ended"
    assert page.locator("#web-call-speaking").inner_text() == "Call over"
    page.screenshot(path=str(tmp_path / "web-call-ended.png"), full_page=True)

    call = Call.objects.get(direction="web", agent=agent)
    assert call.variables == {"customer_name": "Ada"}
    wait_until(lambda: CallEvent.objects.filter(call=call, kind="session.ended").exists(), "the stored session")
    page.get_by_role("link", name="Call details").click()
    page.wait_for_url(f"{daphne}/calls/{call.public_id}/")
    assert "Completed" in page.locator("h1").inner_text()
    assert page.get_by_text("Hello Ada, this is the echo line.").count() >= 1
    problems.assert_none()
