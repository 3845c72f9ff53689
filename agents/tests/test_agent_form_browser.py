"""The agent form in a real browser: switching the provider shows and hides the fields
that provider uses, without a reload and without a JavaScript error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.models import Agent
from voiceplatform.browsing import open_page, sign_in


@pytest.fixture
def editor_account(transactional_db: Any) -> tuple[str, str]:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from orgs.services import create_organization

    password = "Agent-form-pw-77"
    user = get_user_model().objects.create_user("maker@agents.test", "maker@agents.test", password)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    create_organization("Form Org", user)
    return user.email, password


def test_switching_provider_shows_and_hides_its_fields(editor_account: Any, live_server: Any, browser: Any,
                                                       tmp_path: Path) -> None:
    page, problems = open_page(browser, 1280, 900)
    sign_in(page, live_server.url, *editor_account)
    page.goto(f"{live_server.url}/agents/new/")
    temperature = page.locator("#field-temperature")
    tools = page.locator("#section-tools")
    echo_note = page.locator(".agent-note")
    marin = "document.querySelector('#id_voice option[value=marin]')"

    video = page.locator("#section-video")
    # OpenAI Realtime (the default) takes no temperature, and no video.
    assert temperature.is_hidden() and tools.is_visible() and echo_note.is_hidden() and video.is_hidden()
    loaded_at = page.evaluate("() => performance.timeOrigin")

    page.select_option("#id_provider", "gemini_live")
    temperature.wait_for(state="visible")
    assert video.is_visible()  # Gemini Live takes camera frames
    assert page.locator("#id_voice option[value='']").inner_text() == "Provider default (Kore)"
    assert page.evaluate(f"() => {marin}.disabled")  # OpenAI's voices are not offered for Gemini
    page.select_option("#id_voice", "Puck")
    page.fill("#id_temperature", "0.6")
    page.screenshot(path=str(tmp_path / "agent-form-gemini.png"), full_page=True)

    page.select_option("#id_provider", "openai_realtime")
    temperature.wait_for(state="hidden")
    video.wait_for(state="hidden")
    # Gemini's voice cannot stay: back to the provider default; the temperature is cleared.
    assert page.input_value("#id_voice") == "" and page.input_value("#id_temperature") == ""
    assert not page.evaluate(f"() => {marin}.disabled")

    page.select_option("#id_provider", "echo")
    tools.wait_for(state="hidden")
    assert echo_note.is_visible() and page.locator("#field-model").is_hidden()
    assert page.evaluate("() => performance.timeOrigin") == loaded_at  # no reload happened

    page.select_option("#id_provider", "gemini_live")
    temperature.wait_for(state="visible")
    page.fill("#id_name", "Browser agent")
    page.select_option("#id_voice", "Puck")
    page.fill("#id_temperature", "0.6")
    page.click("form[data-agent-form] button[type=submit]")
    page.wait_for_url("**/agents/*/")
    saved = Agent.objects.get(name="Browser agent")
    assert (saved.video_input, saved.video_fps, saved.video_max_edge_px) == (False, 1.0, 512)  # off by default
    # The edit page shows what was saved, with the saved provider's fields.
    assert page.locator("h1").inner_text().startswith("Browser agent")
    assert page.input_value("#id_provider") == "gemini_live" and page.input_value("#id_voice") == "Puck"
    assert page.input_value("#id_temperature") == "0.6" and temperature.is_visible()
    problems.assert_none()
