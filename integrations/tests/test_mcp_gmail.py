"""Gmail MCP server through the real MCP client, against a fake token endpoint + Gmail API."""
from __future__ import annotations

import asyncio

import pytest

from integrations.mcp_client import ServerSpec, call_tool
from integrations.mcp_servers.gmail import GmailConfig, build_server
from integrations.testing.fake_gmail import FakeGmail
from integrations.testing.mcp import serve_mcp

CALLER = "gmail-caller"
# Checked against every log record of every test here (conftest).
LOG_SECRETS = (CALLER, "csecret", "1//refresh")


@pytest.fixture()
def gmail():
    with FakeGmail() as fake:
        config = GmailConfig(caller_tokens=frozenset({CALLER}), api_base=fake.url, token_url=fake.token_url)
        with serve_mcp(build_server(config), config) as url:
            yield fake, url


def spec(url: str, refresh: str = "1//refresh") -> ServerSpec:
    return ServerSpec(url=f"{url}/mcp", headers={
        "Authorization": f"Bearer {CALLER}",
        "X-Google-Client-Id": "cid.apps.googleusercontent.com",
        "X-Google-Client-Secret": "csecret",
        "X-Google-Refresh-Token": refresh,
    })


def run(url: str, tool: str, args: dict, **kw):
    return asyncio.run(call_tool(spec(url, **kw), tool, args))


def test_send_email_builds_rfc822_and_caches_token(gmail):
    fake, url = gmail
    result = run(url, "send_email", {"to": ["bob@example.com"], "subject": "Booking", "body": "See you at 7."})
    assert not result.is_error, result.text
    assert result.structured["recipients"] == ["bob@example.com"]
    sent = fake.sent_raw[-1]
    assert sent["To"] == "bob@example.com" and sent["Subject"] == "Booking"
    assert sent.get_content().strip() == "See you at 7."
    run(url, "send_email", {"to": ["bob@example.com"], "subject": "Again", "body": "x"})
    assert fake.token_requests == 1  # second call reused the cached access token


def test_reply_keeps_thread(gmail):
    fake, url = gmail
    original = fake.add_message(sender="bob@example.com", to="me@example.com", subject="Table?", body="for 4",
                                thread_id="thr1")
    result = run(url, "send_email", {"to": ["bob@example.com"], "subject": "Re: Table?", "body": "yes",
                                     "reply_to_message_id": original})
    assert not result.is_error, result.text
    assert result.structured["thread_id"] == "thr1"
    assert fake.sent_raw[-1]["In-Reply-To"] == f"<{original}@mail.example>"


def test_read_and_search(gmail):
    fake, url = gmail
    first = fake.add_message(sender="Bob <bob@example.com>", to="me@example.com", subject="Invoice 42",
                             body="Please pay invoice 42")
    fake.add_message(sender="carol@example.com", to="me@example.com", subject="Lunch", body="tomorrow?")
    read = run(url, "read_email", {"message_id": first})
    assert read.structured["body"] == "Please pay invoice 42"
    assert read.structured["subject"] == "Invoice 42"
    found = run(url, "search_email", {"query": "from:bob invoice"})
    assert [m["id"] for m in found.structured["messages"]] == [first]
    assert found.structured["messages"][0]["from"] == "Bob <bob@example.com>"


def test_revoked_access_token_is_refreshed_once(gmail):
    fake, url = gmail
    fake.add_message(sender="a@example.com", to="me@example.com", subject="s", body="b")
    run(url, "search_email", {"query": "s"})
    fake.revoke_access_tokens()
    result = run(url, "search_email", {"query": "s"})
    assert not result.is_error, result.text
    assert fake.token_requests == 2


def test_invalid_refresh_token_is_worded(gmail):
    _fake, url = gmail
    result = run(url, "read_email", {"message_id": "m1"}, refresh="1//revoked")
    assert result.is_error
    assert ("Gmail API refused to exchange the refresh token for an access token: HTTP 400: "
            "invalid_grant: Token has been expired or revoked.") in result.text


def test_not_found_message_is_worded(gmail):
    _fake, url = gmail
    result = run(url, "read_email", {"message_id": "nope"})
    assert result.is_error
    assert "HTTP 404: NOT_FOUND Requested entity was not found." in result.text


def test_bad_addresses_rejected_before_upstream(gmail):
    fake, url = gmail
    result = run(url, "send_email", {"to": ["not-an-address"], "subject": "s", "body": "b"})
    assert result.is_error
    assert "to.0" in result.text and "String should match pattern" in result.text
    assert fake.token_requests == 0 and fake.sent_raw == []


@pytest.mark.parametrize("address", ["a@[.b", "(@a.b", 'a"b@c.d', "a@b.c\x00", "a:b@c.d"])
def test_addresses_the_schema_allowed_but_python_could_not_parse_are_refused_by_the_schema(gmail, address):
    """Found by the MCP contract test (calls/tests/test_tool_contracts.py): "a@[.b" matched the
    declared pattern and then crashed the email parser (an unexplained tool failure)."""
    fake, url = gmail
    result = run(url, "send_email", {"to": ["ok@example.com"], "cc": [address], "subject": "s", "body": "b"})
    assert result.is_error and "cc.0" in result.text and "String should match pattern" in result.text
    assert fake.sent_raw == []


def test_a_line_break_in_the_subject_cannot_add_a_header(gmail):
    fake, url = gmail
    result = run(url, "send_email", {"to": ["ada@example.com"], "subject": "Order 12\r\nBcc: eve@example.com",
                                     "body": "b"})
    assert not result.is_error, result.text
    (sent,) = fake.sent_raw
    assert sent["Subject"] == "Order 12 Bcc: eve@example.com" and sent["Bcc"] is None
