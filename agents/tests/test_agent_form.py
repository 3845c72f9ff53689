"""The agent form as a user meets it: sections, labels and help, provider-aware fields,
pickers from the provider catalogue, warnings that do not block, a neutral checklist
on a fresh draft, Hume refused (form, API, publish) and every field round-tripping."""

from __future__ import annotations

import datetime
from typing import Any

import lxml.html
import pytest
import time_machine
from django.urls import reverse

from agents.bridges import deepgram_agent, gemini_live, openai_realtime
from agents.forms import FIELD_TEXT, SECTIONS
from agents.models import CONFIG_FIELDS, Agent
from agents.tests.factories import BEFORE_HUME_RETIRED, make_agent, make_legacy_hume_agent
from integrations.tests.factories import make_mcp_server
from knowledge.tests.factories import make_knowledge_base
from orgs.models import AuditLog
from orgs.services import SYSTEM, set_provider_credential

pytestmark = pytest.mark.django_db


def page(response: Any) -> Any:
    return lxml.html.fromstring(response.content.decode())


def the_form(doc: Any) -> Any:
    (form,) = doc.xpath("//form[@data-agent-form]")
    return form


def submitted(form: Any) -> dict[str, Any]:
    """What a browser would submit for ``form`` as it is rendered (no field changed)."""
    data: dict[str, Any] = {}
    for name, value in form.form_values():
        data.setdefault(name, []).append(value)
    return {k: v if len(v) > 1 or k in ("builtin_tools", "webhook_events", "knowledge_base_ids", "mcp_server_ids")
            else v[0] for k, v in data.items()}


def options(doc: Any, select: str, provider: str) -> list[str]:
    return doc.xpath(f"//select[@name='{select}']//option[@data-provider='{provider}']/@value")


def wrapper(doc: Any, field: str) -> Any:
    (element,) = doc.xpath(f"//*[@id='field-{field}']")
    return element


def test_every_setting_has_one_section_a_label_and_help() -> None:
    placed = [name for section in SECTIONS for name in section.fields]
    assert sorted(placed) == sorted(CONFIG_FIELDS) and len(placed) == len(set(placed))
    assert set(FIELD_TEXT) == set(CONFIG_FIELDS)
    assert all(label and help_text for label, help_text in FIELD_TEXT.values())


def test_new_agent_form_is_grouped_labelled_and_has_sensible_defaults(editor_a: Any, login: Any) -> None:
    response = login(editor_a).get(reverse("agents:create"))
    assert response.status_code == 200
    doc = page(response)
    form = the_form(doc)
    titles = [" ".join(h.text_content().split()) for h in form.xpath(".//*[contains(@class,'agent-section')]//h2")]
    assert titles == ["Basics", "Conversation", "Outbound answering", "Tools and knowledge", "Analysis", "Advanced",
                      "Privacy", "Video"]
    (advanced,) = form.xpath(".//details[@id='section-advanced']")
    assert advanced.get("open") is None  # collapsed
    (answering,) = form.xpath(".//details[@id='section-answering']")
    assert answering.get("open") is None and answering.xpath(".//*[@id='field-answer_detection']")
    assert advanced.xpath(".//*[@id='field-vad_threshold']")
    for name, (label, help_text) in FIELD_TEXT.items():
        box = wrapper(doc, name)
        shown = " ".join(box.text_content().split())
        assert label in shown and help_text.split(" {")[0][:40] in shown, name
    text = doc.text_content()
    assert "Vad threshold" not in text and "Max call duration s" not in text
    assert "Maximum call length (seconds)" in text
    assert "Voice activity threshold" in text and "higher ignores more background noise" in text
    for json_field in ("analysis_schema", "provider_options"):
        (area,) = form.xpath(f".//textarea[@name='{json_field}']")
        assert (area.text or "").strip() == ""  # not "null", not "{}"
    values = submitted(form)
    assert values["provider"] == "openai_realtime" and values["model"] == "" and values["voice"] == ""
    assert values["max_call_duration_s"] == "600" and values["vad_threshold"] == "0.5"
    assert values["builtin_tools"] == ["end_call"] and values["first_message"]
    assert form.xpath(".//select[@name='voice']/option[@value='']")[0].text == "Provider default (marin)"
    # Without a change, the rendered form creates a valid draft.
    created = login(editor_a).post(reverse("agents:create"), {**values, "name": "Front desk"})
    assert created.status_code == 302
    agent = Agent.objects.get(name="Front desk")
    assert agent.analysis_schema == {} and agent.provider_options == {} and agent.temperature is None


def test_fields_show_only_for_the_providers_that_use_them(editor_a: Any, login: Any) -> None:
    doc = page(login(editor_a).get(reverse("agents:create")))
    assert wrapper(doc, "temperature").get("data-providers") == "gemini_live deepgram_agent"
    assert wrapper(doc, "model").get("data-providers") == "openai_realtime gemini_live deepgram_agent"
    assert "echo" not in wrapper(doc, "system_prompt").get("data-providers").split()
    assert wrapper(doc, "first_message").get("data-providers") is None  # every provider
    assert wrapper(doc, "max_call_duration_s").get("data-providers") is None
    (tools,) = doc.xpath("//*[@id='section-tools']")
    assert "echo" not in tools.get("data-providers").split()
    # The form hides temperature for OpenAI because the validation refuses it there.
    refused = login(editor_a).post(reverse("agents:create"), {
        **submitted(the_form(doc)), "name": "Hot", "temperature": "0.7"})
    assert refused.status_code == 400
    assert "OpenAI Realtime does not take a temperature" in refused.content.decode()
    taken = login(editor_a).post(reverse("agents:create"), {
        **submitted(the_form(doc)), "name": "Warm", "provider": "gemini_live", "temperature": "0.7"})
    assert taken.status_code == 302 and Agent.objects.get(name="Warm").temperature == 0.7


def test_video_is_offered_only_for_providers_that_take_images(editor_a: Any, login: Any) -> None:
    doc = page(login(editor_a).get(reverse("agents:create")))
    (section,) = doc.xpath("//*[@id='section-video']")
    assert section.get("data-providers") == "gemini_live"
    assert wrapper(doc, "video_input").get("data-providers") == "gemini_live"
    form = submitted(the_form(doc))
    assert "video_input" not in form and form["video_fps"] == "1.0" and form["video_max_edge_px"] == "512"  # off
    refused = login(editor_a).post(reverse("agents:create"), {**form, "name": "Looks", "video_input": "on"})
    assert refused.status_code == 400
    assert "OpenAI Realtime takes no images during a call" in refused.content.decode()
    taken = login(editor_a).post(reverse("agents:create"), {
        **form, "name": "Sees", "provider": "gemini_live", "voice": "Puck", "video_input": "on", "video_fps": "2"})
    assert taken.status_code == 302
    seeing = Agent.objects.get(name="Sees")
    assert (seeing.video_input, seeing.video_fps, seeing.video_max_edge_px) == (True, 2.0, 512)


def test_model_and_voice_pickers_offer_each_providers_real_choices(editor_a: Any, login: Any) -> None:
    doc = page(login(editor_a).get(reverse("agents:create")))
    assert options(doc, "model", "openai_realtime") == list(openai_realtime.MODELS)
    assert options(doc, "voice", "openai_realtime") == list(openai_realtime.VOICES)
    assert options(doc, "model", "gemini_live") == list(gemini_live.MODELS)
    assert options(doc, "voice", "gemini_live") == list(gemini_live.VOICES)
    assert options(doc, "voice", "echo") == [] and options(doc, "voice", "hume_evi") == []
    providers = doc.xpath("//select[@name='provider']/option/@value")
    assert providers == ["openai_realtime", "gemini_live", "deepgram_agent", "echo"]  # Hume is retired
    assert options(doc, "model", "deepgram_agent") == list(deepgram_agent.MODELS)
    assert options(doc, "voice", "deepgram_agent") == list(deepgram_agent.VOICES)
    # A value from another provider's list is refused by the validation, naming it.
    mixed = login(editor_a).post(reverse("agents:create"), {
        **submitted(the_form(doc)), "name": "Mixed", "voice": "Kore"})
    assert mixed.status_code == 400 and "OpenAI Realtime has no voice “Kore”" in mixed.content.decode()


def test_hume_was_offered_until_its_api_access_ended(editor_a: Any, login: Any) -> None:
    with time_machine.travel(BEFORE_HUME_RETIRED, tick=False):
        doc = page(login(editor_a).get(reverse("agents:create")))
    assert "hume_evi" in doc.xpath("//select[@name='provider']/option/@value")


def test_hume_cannot_be_created_or_switched_to(org_a: Any, editor_a: Any, login: Any, api: Any) -> None:
    client = login(editor_a)
    base = submitted(the_form(page(client.get(reverse("agents:create")))))
    refused = client.post(reverse("agents:create"), {**base, "name": "Hume line", "provider": "hume_evi"})
    assert refused.status_code == 400
    assert "Hume EVI API access ended on 2026-11-13" in refused.content.decode()
    assert not Agent.objects.filter(name="Hume line").exists()

    agent = make_agent(org_a, name="Switcher")
    form = submitted(the_form(page(client.get(reverse("agents:edit", args=[agent.public_id])))))
    switched = client.post(reverse("agents:edit", args=[agent.public_id]), {**form, "provider": "hume_evi"})
    assert switched.status_code == 400 and "API access ended" in switched.content.decode()
    agent.refresh_from_db()
    assert agent.provider == "openai_realtime"

    rest = api(editor_a)
    created = rest.post(reverse("api:agent-list"), {"name": "Hume", "provider": "hume_evi",
                                                    "voice": "5bb7de05-c8fe-426a-8fcc-ba4fc4ce9f9c"}, format="json")
    assert created.status_code == 400
    error = created.json()["error"]
    assert error["code"] == "provider_retired" and "Hume EVI API access ended on 2026-11-13" in error["message"]
    patched = rest.patch(reverse("api:agent-detail", kwargs={"public_id": agent.public_id}),
                         {"provider": "hume_evi"}, format="json")
    assert patched.status_code == 400 and patched.json()["error"]["code"] == "provider_retired"
    assert Agent.objects.for_org(org_a).filter(provider="hume_evi").count() == 0


def test_a_hume_agent_is_shown_retired_and_cannot_be_published_copied_or_called(
        org_a: Any, editor_a: Any, login: Any, api: Any) -> None:
    agent = make_legacy_hume_agent(org_a, name="Old Hume line")
    client = login(editor_a)
    listing = page(client.get(reverse("agents:list")))
    (row,) = listing.xpath("//tr[.//a[contains(., 'Old Hume line')]]")
    assert "retired" in row.text_content() and "API access ended on 2026-11-13" in row.text_content()
    assert "credential missing" not in row.text_content()  # no Hume key, but that no longer matters
    set_provider_credential(org_a, SYSTEM, "hume", {"api_key": "hume-key-123456"})

    edit = client.get(reverse("agents:edit", args=[agent.public_id]))
    doc = page(edit)
    heading = doc.xpath("//h1")[0].text_content()
    assert "retired provider" in heading
    assert "Hume EVI is retired" in doc.text_content()
    assert not doc.xpath("//form[contains(@action, '/publish/')]")  # no publish button
    assert doc.xpath("//select[@name='provider']/option[@value='hume_evi']")[0].text == "Hume EVI (retired)"

    # Its own draft still saves (renamed) while it stays on Hume, but publishing is refused.
    form = submitted(the_form(doc))
    assert client.post(reverse("agents:edit", args=[agent.public_id]), {**form, "name": "Hume (old)"}).status_code == 302
    published = client.post(reverse("agents:publish", args=[agent.public_id]), {}, follow=True)
    assert "API access ended on 2026-11-13" in published.content.decode()
    agent.refresh_from_db()
    assert agent.published_version is not None and agent.published_version.number == 1
    rest = api(editor_a)
    again = rest.post(reverse("api:agent-publish", kwargs={"public_id": agent.public_id}), {}, format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "provider_retired"
    copied = rest.post(reverse("api:agent-duplicate", kwargs={"public_id": agent.public_id}), {}, format="json")
    assert copied.status_code == 400 and copied.json()["error"]["code"] == "provider_retired"
    duplicated = client.post(reverse("agents:duplicate", args=[agent.public_id]), follow=True)
    assert duplicated.status_code == 200 and "API access ended" in duplicated.content.decode()
    assert Agent.objects.for_org(org_a).filter(provider="hume_evi").count() == 1
    body = rest.get(reverse("api:agent-detail", kwargs={"public_id": agent.public_id})).json()
    assert body["ready"] is False and [p["code"] for p in body["problems"]] == ["provider_retired"]

    # Switching it to a provider that works makes it publishable again.
    switched = client.post(reverse("agents:edit", args=[agent.public_id]),
                           {**form, "provider": "echo", "voice": "", "model": ""})
    assert switched.status_code == 302
    assert rest.post(reverse("api:agent-publish", kwargs={"public_id": agent.public_id}), {},
                     format="json").status_code == 201
    # Restoring the Hume version would switch it back to a retired provider: refused.
    restored = rest.post(reverse("api:agent-restore", kwargs={"public_id": agent.public_id}), {"version": 1},
                         format="json")
    assert restored.status_code == 400 and restored.json()["error"]["code"] == "provider_retired"
    agent.refresh_from_db()
    assert agent.provider == "echo" and agent.published_version.number == 2


def test_a_fresh_draft_shows_a_neutral_checklist_not_an_error(org_a: Any, editor_a: Any, login: Any) -> None:
    client = login(editor_a)
    base = submitted(the_form(page(client.get(reverse("agents:create")))))
    created = client.post(reverse("agents:create"), {**base, "name": "Fresh"}, follow=True)
    doc = page(created)
    assert not doc.xpath("//*[contains(concat(' ', @class, ' '), ' error ')]")
    assert not doc.xpath("//*[contains(concat(' ', @class, ' '), ' bad ')]")
    (checklist,) = doc.xpath("//ul[@class='checklist']")
    steps = {" ".join(li.text_content().split()): li.get("class") for li in checklist.xpath("./li")}
    assert [c for s, c in steps.items() if "To do: Add your OpenAI Realtime key" in s] == ["todo"]
    assert [c for s, c in steps.items() if "To do: Publish the draft" in s] == ["todo"]
    assert "Before this agent can take calls" in doc.text_content()
    agent = Agent.objects.get(name="Fresh")
    assert checklist.xpath(".//a/@href") == [reverse("orgs:credentials")]

    set_provider_credential(org_a, SYSTEM, "openai", {"api_key": "sk-test-999999"})
    client.post(reverse("agents:publish", args=[agent.public_id]), {})
    ready = page(client.get(reverse("agents:edit", args=[agent.public_id])))
    assert "Ready for calls" in ready.text_content()
    assert [li.get("class") for li in ready.xpath("//ul[@class='checklist']/li")] == ["done", "done"]


def test_warnings_name_combinations_that_cannot_work_and_do_not_block(org_a: Any, editor_a: Any,
                                                                      login: Any) -> None:
    kb = make_knowledge_base(org_a)
    agent = make_agent(org_a, name="Warned", builtin_tools=["end_call", "transfer_call"],
                       knowledge_base_ids=[str(kb.public_id)], speaks_first="caller", first_message="Hi!")
    client = login(editor_a)
    doc = page(client.get(reverse("agents:edit", args=[agent.public_id])))
    (panel,) = doc.xpath("//*[contains(@class,'agent-warnings')]")
    summary = panel.text_content()
    assert "Transfer is on but there is no transfer destination" in summary
    assert "Knowledge bases are attached but the “Search knowledge bases” tool is off" in summary
    assert "first message is never said" in summary
    assert panel.xpath(".//a/@href") == ["#field-builtin_tools", "#field-knowledge_base_ids", "#field-first_message"]
    assert "no transfer destination" in wrapper(doc, "builtin_tools").text_content()
    assert "cannot look anything up" in wrapper(doc, "knowledge_base_ids").text_content()
    # Warnings do not block: the draft saves and publishes as it is.
    form = submitted(the_form(doc))
    assert client.post(reverse("agents:edit", args=[agent.public_id]), {**form, "name": "Warned 2"}).status_code == 302
    client.post(reverse("agents:publish", args=[agent.public_id]), {})
    agent.refresh_from_db()
    assert agent.name == "Warned 2" and agent.published_version is not None
    # Fixing the combination clears the warning.
    fixed = {**form, "name": "Warned 2", "builtin_tools": ["end_call", "transfer_call", "search_knowledge"],
             "transfer_destinations": "Sales | +14155550100 | Orders", "speaks_first": "agent"}
    assert client.post(reverse("agents:edit", args=[agent.public_id]), fixed).status_code == 302
    assert not page(client.get(reverse("agents:edit", args=[agent.public_id]))).xpath(
        "//*[contains(@class,'agent-warnings')]")


def test_a_warning_in_advanced_opens_it(org_a: Any, editor_a: Any, login: Any) -> None:
    agent = make_agent(org_a, silence_timeout_s=60, max_call_duration_s=60)
    doc = page(login(editor_a).get(reverse("agents:edit", args=[agent.public_id])))
    (advanced,) = doc.xpath("//details[@id='section-advanced']")
    assert advanced.get("open") is not None
    assert "can never end a call" in wrapper(doc, "silence_timeout_s").text_content()


def test_saving_every_field_round_trips(org_a: Any, editor_a: Any, login: Any) -> None:
    kb = make_knowledge_base(org_a)
    mcp = make_mcp_server(org_a)
    agent = make_agent(org_a, name="Round trip")
    client = login(editor_a)
    url = reverse("agents:edit", args=[agent.public_id])
    values = {
        "name": "Round trip 2", "provider": "gemini_live", "model": "gemini-3.1-flash-live-preview",
        "voice": "Puck", "language": "es-MX", "system_prompt": "Ayuda a {{customer_name|el cliente}}.",
        "first_message": "¡Hola!", "speaks_first": "agent", "temperature": "0.4",
        "max_call_duration_s": "900", "silence_timeout_s": "20", "vad_threshold": "0.7", "min_speech_ms": "300",
        "keep_keypad_digits": "on", "voicemail_message": "Llámenos, {{customer_name|}}.",
        "answer_detection": "on", "voicemail_action": "hang_up", "screening_identity": "Sam de Acme",
        "screening_reason": "sobre su pedido", "ivr_goal": "el departamento de facturación",
        "answer_silence_s": "5", "answer_deadline_s": "4.5", "answer_revise_s": "0", "answer_beep_wait_s": "30",
        "builtin_tools": ["end_call", "transfer_call", "search_knowledge", "send_sms", "send_dtmf"],
        "transfer_destinations": "Sales | +14155550100 | Orders\nSupport | sip:help@pbx.example.com",
        "sms_recipients": "Manager | +14155550123 | Escalations",
        "knowledge_base_ids": [str(kb.public_id)], "mcp_server_ids": [str(mcp.public_id)],
        "success_criteria": "The caller booked a visit.",
        "analysis_schema": '{"type": "object", "properties": {"booked": {"type": "boolean"}}}',
        "webhook_events": ["call.ended", "call.analyzed"],
        "provider_options": '{"max_reconnects": 3}',
        "recording_mode": "after_announcement", "recording_announcement": "Esta llamada se graba.",
        "redact_pii": ["card", "phone"], "redact_model_context": "on", "redact_webhook_numbers": "on",
        "video_input": "on", "video_fps": "0.5", "video_max_edge_px": "768",
        # allow_barge_in and analysis_summary unticked: off
    }
    assert client.post(url, values).status_code == 302
    agent.refresh_from_db()
    expected = {
        "name": "Round trip 2", "provider": "gemini_live", "model": "gemini-3.1-flash-live-preview", "voice": "Puck",
        "language": "es-MX", "system_prompt": "Ayuda a {{customer_name|el cliente}}.", "first_message": "¡Hola!",
        "speaks_first": "agent", "temperature": 0.4, "max_call_duration_s": 900, "silence_timeout_s": 20,
        "allow_barge_in": False, "vad_threshold": 0.7, "min_speech_ms": 300, "keep_keypad_digits": True,
        "voicemail_message": "Llámenos, {{customer_name|}}.",
        "answer_detection": True, "voicemail_action": "hang_up", "screening_identity": "Sam de Acme",
        "screening_reason": "sobre su pedido", "ivr_goal": "el departamento de facturación",
        "answer_silence_s": 5.0, "answer_deadline_s": 4.5, "answer_revise_s": 0.0, "answer_beep_wait_s": 30.0,
        "builtin_tools": ["end_call", "transfer_call", "search_knowledge", "send_sms", "send_dtmf"],
        "transfer_destinations": [{"label": "Sales", "number": "+14155550100", "description": "Orders"},
                                  {"label": "Support", "number": "sip:help@pbx.example.com", "description": ""}],
        "sms_recipients": [{"label": "Manager", "number": "+14155550123", "description": "Escalations"}],
        "knowledge_base_ids": [str(kb.public_id)], "mcp_server_ids": [str(mcp.public_id)],
        "analysis_summary": False, "success_criteria": "The caller booked a visit.",
        "analysis_schema": {"type": "object", "properties": {"booked": {"type": "boolean"}}},
        "webhook_events": ["call.ended", "call.analyzed"], "provider_options": {"max_reconnects": 3},
        "recording_mode": "after_announcement", "recording_announcement": "Esta llamada se graba.",
        "redact_pii": ["card", "phone"], "redact_model_context": True, "redact_webhook_numbers": True,
        "video_input": True, "video_fps": 0.5, "video_max_edge_px": 768,
    }
    assert agent.snapshot() == expected
    # The form shows what was saved: submitting it unchanged changes nothing.
    updates = AuditLog.objects.for_org(org_a).filter(action="agent.updated").count()
    doc = page(client.get(url))
    again = submitted(the_form(doc))
    assert again["voice"] == "Puck" and again["temperature"] == "0.4"
    assert client.post(url, again).status_code == 302
    agent.refresh_from_db()
    assert agent.snapshot() == expected
    assert AuditLog.objects.for_org(org_a).filter(action="agent.updated").count() == updates


def test_an_echo_agent_keeps_its_values_and_says_why_fields_are_hidden(org_a: Any, editor_a: Any,
                                                                      login: Any) -> None:
    agent = make_agent(org_a, name="Line test", provider="echo", voice="none", system_prompt="")
    client = login(editor_a)
    doc = page(client.get(reverse("agents:edit", args=[agent.public_id])))
    (note,) = doc.xpath("//*[contains(@class,'agent-note')]")
    assert note.get("data-providers") == "echo" and "repeats what the caller says" in note.text_content()
    form = submitted(the_form(doc))
    assert form["voice"] == "none"  # kept although echo's voice is not offered
    assert client.post(reverse("agents:edit", args=[agent.public_id]), form).status_code == 302
    agent.refresh_from_db()
    assert agent.voice == "none" and agent.provider == "echo"


def test_hume_retirement_is_dated_in_utc() -> None:
    from agents.providers import PROVIDERS
    hume = PROVIDERS["hume_evi"]
    # 23:30 on the 12th in New York is already the 13th in UTC: retired.
    with time_machine.travel(datetime.datetime(2026, 11, 13, 4, 30, tzinfo=datetime.UTC), tick=False):
        assert hume.retired()
    with time_machine.travel(datetime.datetime(2026, 11, 12, 23, 59, tzinfo=datetime.UTC), tick=False):
        assert not hume.retired()


@pytest.mark.parametrize(("settings", "codes"), [
    ({"builtin_tools": ["transfer_call"]}, ["transfer_without_destination"]),
    ({"transfer_destinations": [{"label": "Sales", "number": "+14155550100"}]}, ["destinations_without_transfer"]),
    ({"builtin_tools": ["search_knowledge"]}, ["search_without_knowledge"]),
    ({"knowledge_base_ids": ["kb"]}, ["knowledge_without_search"]),
    ({"sms_recipients": [{"label": "Boss", "number": "+14155550100"}]}, ["recipients_without_sms"]),
    ({"speaks_first": "caller", "first_message": "Hi"}, ["first_message_unused"]),
    ({"speaks_first": "caller", "first_message": "  "}, []),
    ({"silence_timeout_s": 600, "max_call_duration_s": 300}, ["silence_after_limit"]),
    ({"provider": "echo", "system_prompt": "Be nice", "builtin_tools": ["end_call"]}, ["provider_ignores_settings"]),
    ({"provider": "echo"}, []),
    ({"answer_detection": True}, []),
    ({"answer_detection": True, "provider": "gemini_live"}, ["answer_detection_audio_only"]),
    ({"answer_detection": True, "ivr_goal": "billing"}, ["menu_goal_without_dtmf"]),
    ({"answer_detection": True, "ivr_goal": "billing", "builtin_tools": ["send_dtmf"]}, []),
    ({"screening_identity": "Sam from Acme"}, ["answering_settings_unused"]),
    ({"answer_deadline_s": 3.0}, ["answering_settings_unused"]),
    ({"answer_detection": True, "answer_deadline_s": 3.0}, []),
    ({"builtin_tools": ["transfer_call", "search_knowledge", "send_sms"], "knowledge_base_ids": ["kb"],
      "transfer_destinations": [{"label": "Sales", "number": "+14155550100"}],
      "sms_recipients": [{"label": "Boss", "number": "+14155550100"}]}, []),
])
def test_setting_warnings(settings: dict[str, Any], codes: list[str]) -> None:
    from agents.agent_settings import AgentSettings
    from agents.setting_checks import setting_warnings

    found = setting_warnings(AgentSettings.parse(settings))
    assert [w.code for w in found] == codes
    assert all(w.message and w.fields for w in found)


def test_the_draft_lists_its_call_variables_with_their_defaults(org_a: Any, editor_a: Any, login: Any) -> None:
    agent = make_agent(org_a, system_prompt="Help {{customer_name|the caller}} with order {{order_id}}.",
                       first_message="Hello {{customer_name}}, this is {{company|Acme Co}}.")
    doc = page(login(editor_a).get(reverse("agents:edit", args=[agent.public_id])))
    (line,) = doc.xpath("//*[@data-call-variables]")
    text = " ".join(line.text_content().split())
    assert [c.text for c in line.xpath(".//code")] == ["customer_name", "order_id", "company"]
    # customer_name has no default in the greeting, so the call must give it; company falls back
    assert "company (default “Acme Co”)" in text
    assert "customer_name (default" not in text and "order_id (default" not in text
