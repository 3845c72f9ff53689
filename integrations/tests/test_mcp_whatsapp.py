"""WhatsApp MCP server through the real MCP client; Meta's webhook played by the fake."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from integrations.mcp_client import ServerSpec, call_tool
from integrations.mcp_servers.whatsapp import WEBHOOK_PATH, WhatsAppConfig, build_server, sign_webhook_body
from integrations.testing.fake_whatsapp import FakeWhatsApp
from integrations.testing.mcp import serve_mcp

CALLER = "wa-caller"
SECRET = "meta-app-secret"
VERIFY = "verify-me"
CUSTOMER = "4915112345678"
# Checked against every log record of every test here (conftest); "EAAG-test" is the fake's token.
LOG_SECRETS = (CALLER, SECRET, VERIFY, "EAAG-test")


@pytest.fixture()
def whatsapp(tmp_path):
    with FakeWhatsApp() as fake:
        config = WhatsAppConfig(caller_tokens=frozenset({CALLER}), api_base=fake.url, app_secret=SECRET,
                                verify_token=VERIFY, store_path=str(tmp_path / "wa.sqlite3"))
        with serve_mcp(build_server(config), config) as url:
            yield fake, url


def run(fake: FakeWhatsApp, url: str, tool: str, args: dict, *, number_id: str | None = None):
    spec = ServerSpec(url=f"{url}/mcp", headers={
        "Authorization": f"Bearer {CALLER}", "X-WhatsApp-Access-Token": fake.token,
        "X-WhatsApp-Phone-Number-Id": number_id or fake.phone_number_id})
    return asyncio.run(call_tool(spec, tool, args))


def test_webhook_subscription_handshake(whatsapp):
    fake, url = whatsapp
    ok = fake.verify_webhook(url + WEBHOOK_PATH, VERIFY, challenge="8675309")
    assert ok.status_code == 200 and ok.text == "8675309"
    assert fake.verify_webhook(url + WEBHOOK_PATH, "wrong").status_code == 403


def test_incoming_message_stored_once_and_readable(whatsapp):
    fake, url = whatsapp
    payload = fake.incoming_payload(CUSTOMER, "Can I move my booking to 8pm?", message_id="wamid.IN1")
    first = fake.deliver_incoming(url + WEBHOOK_PATH, SECRET, payload)
    again = fake.deliver_incoming(url + WEBHOOK_PATH, SECRET, payload)  # Meta redelivers on slow acks
    assert first.json() == {"received": 1, "stored": 1}
    assert again.json() == {"received": 1, "stored": 0}
    result = run(fake, url, "read_messages", {"from_number": "+" + CUSTOMER})
    assert not result.is_error, result.text
    assert [(m["id"], m["text"], m["from_name"]) for m in result.structured["messages"]] == [
        ("wamid.IN1", "Can I move my booking to 8pm?", "Alice")]
    # A business number this token may not use is refused before the store is read.
    other = run(fake, url, "read_messages", {}, number_id="999")
    assert other.is_error and "may use phone number id 999" in other.text


def test_webhook_rejects_bad_signature(whatsapp):
    fake, url = whatsapp
    body = json.dumps(fake.incoming_payload(CUSTOMER, "forged")).encode()
    bad = httpx.post(url + WEBHOOK_PATH, content=body,
                     headers={"x-hub-signature-256": sign_webhook_body("not-the-secret", body)})
    missing = httpx.post(url + WEBHOOK_PATH, content=body)
    assert bad.status_code == 401 and missing.status_code == 401
    assert run(fake, url, "read_messages", {}).structured["messages"] == []


def test_free_text_inside_window_and_template_outside(whatsapp):
    fake, url = whatsapp
    refused = run(fake, url, "send_message", {"to": "+" + CUSTOMER, "text": "hello"})
    assert refused.is_error
    assert "(#131047) Re-engagement message (code 131047)" in refused.text
    template = run(fake, url, "send_message", {"to": "+" + CUSTOMER, "template_name": "booking_confirmation",
                                               "template_parameters": ["Friday", "8pm"]})
    assert not template.is_error, template.text
    assert fake.sent[-1]["template"]["components"][0]["parameters"][1] == {"type": "text", "text": "8pm"}
    fake.deliver_incoming(url + WEBHOOK_PATH, SECRET, fake.incoming_payload(CUSTOMER, "hi"))
    ok = run(fake, url, "send_message", {"to": "+" + CUSTOMER, "text": "Sure, moved to 8pm."})
    assert not ok.is_error, ok.text
    assert ok.structured["message_id"].startswith("wamid.")
    assert fake.sent[-1]["text"] == {"preview_url": False, "body": "Sure, moved to 8pm."}


def test_template_parameter_mismatch_is_worded(whatsapp):
    fake, url = whatsapp
    result = run(fake, url, "send_message", {"to": CUSTOMER, "template_name": "booking_confirmation",
                                             "template_parameters": ["Friday"]})
    assert result.is_error
    assert "does not match the expected number of params (2)" in result.text


def test_text_xor_template_and_phone_format(whatsapp):
    fake, url = whatsapp
    both = run(fake, url, "send_message", {"to": CUSTOMER, "text": "x", "template_name": "booking_confirmation"})
    assert both.is_error and "exactly one of text" in both.text
    bad_phone = run(fake, url, "send_message", {"to": "call me maybe", "text": "x"})
    assert bad_phone.is_error and "to" in bad_phone.text and "pattern" in bad_phone.text
    assert fake.requests == []


def test_mark_as_read_sends_read_receipt_for_newest(whatsapp):
    fake, url = whatsapp
    for n, text in enumerate(["first", "second"]):
        fake.deliver_incoming(url + WEBHOOK_PATH, SECRET, fake.incoming_payload(
            CUSTOMER, text, message_id=f"wamid.R{n}", timestamp=1_800_000_000 + n))
    result = run(fake, url, "read_messages", {"mark_as_read": True})
    assert not result.is_error, result.text
    assert [m["text"] for m in result.structured["messages"]] == ["first", "second"]
    assert result.structured["marked_read"] is True
    assert fake.read_receipts == ["wamid.R1"]
