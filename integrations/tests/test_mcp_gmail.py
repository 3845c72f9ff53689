"""Gmail MCP server through the real MCP client, against a fake token endpoint + Gmail API."""
from __future__ import annotations

import asyncio
import re
import string

import idna
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from integrations.mcp_client import ServerSpec, call_tool, list_tools_sync
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


# --- recipients: the To header reads back as exactly the addresses given ----------------------

# Two long internationalised recipients: Python's folding wrote the domains (and, before the
# schema took only ASCII local parts, the local parts) as RFC 2047 encoded words split after
# the "@", and Gmail answered 400 "Invalid To header".
LONG_INTERNATIONAL = ["maximilian.mustermann-schneider@bücherei-und-schreibwarenhandlung-müller.de",
                      "jean-baptiste.delacroix@librairie-française-et-étrangère.example"]
ENCODED_WORD = re.compile(r"=\?[^?]*\?[^?]*\?[^?]*\?=")


def send_email_schema(url: str) -> dict:
    (tool,) = [t for t in list_tools_sync(spec(url)) if t.name == "send_email"]
    return tool.input_schema


def addresses_of(header) -> list[tuple[str, str]]:
    return [(a.username, a.domain) for a in header.addresses]


def as_written(address: str) -> tuple[str, str]:
    """The (local part, domain) a reader should parse back: the domain in its IDNA form."""
    local, _, domain = address.rpartition("@")
    return local, domain if domain.isascii() else idna.encode(domain, uts46=True).decode()


def representable(address: str) -> bool:
    if ENCODED_WORD.search(address):
        return False
    try:
        as_written(address)
    except (idna.IDNAError, UnicodeError):
        return False
    return True


def test_two_long_internationalised_recipients_read_back_as_given(gmail):
    fake, url = gmail
    result = run(url, "send_email", {"to": LONG_INTERNATIONAL, "cc": LONG_INTERNATIONAL[::-1],
                                     "subject": "Grüße", "body": "b"})
    assert not result.is_error, result.text
    (sent,) = fake.sent_raw
    assert addresses_of(sent["To"]) == [
        ("maximilian.mustermann-schneider", "xn--bcherei-und-schreibwarenhandlung-mller-h7d7a.de"),
        ("jean-baptiste.delacroix", "xn--librairie-franaise-et-trangre-ysc8b0a.example")]
    assert addresses_of(sent["Cc"]) == addresses_of(sent["To"])[::-1]
    assert [idna.decode(domain) for _local, domain in addresses_of(sent["To"])] == [
        a.split("@")[1] for a in LONG_INTERNATIONAL]
    assert result.structured["recipients"] == LONG_INTERNATIONAL + LONG_INTERNATIONAL[::-1]
    assert sent["Subject"] == "Grüße"


def test_a_non_ascii_local_part_is_refused_by_the_schema_before_anything_is_sent(gmail):
    """The pair that reached Gmail as a broken To header (test_fake_servers): a non-ASCII local
    part cannot be written in a header Gmail's API reads, and the schema says so."""
    fake, url = gmail
    schema = send_email_schema(url)["properties"]["to"]["items"]
    assert "ASCII" in schema["description"] and schema["maxLength"] == 254
    pair = ["\x93ġ@5Òø.\U000edce2Ô\U000614b7", "O\U000a8bdbĖã\x89å\U0006ec55v@\U000c0cddå绲ĕ.\x93ĝ\U0006a79dK\x8a"]
    for to in (pair, ["jürgen.müller@example.de"]):
        result = run(url, "send_email", {"to": to, "subject": "s", "body": "b"})
        assert result.is_error and "to.0" in result.text and "String should match pattern" in result.text
    assert fake.token_requests == 0 and fake.sent_raw == []


@pytest.mark.parametrize(("address", "reason"), [
    ("ops@bad\u00ad\u200d.example", "its domain is not a valid internationalised domain name"),
    ("ops@xn--ü.example", "its domain is not a valid internationalised domain name"),
    ("ops@bücher.de\u3002", "its domain, written in ASCII, is 'xn--bcher-kva.de.', which is not a domain name"),
    ("=?utf-8?q?ceo?=@bücher.de", "it holds an RFC 2047 encoded word"),
])
def test_a_recipient_no_header_can_carry_is_refused_with_the_field_and_the_reason(gmail, address, reason):
    fake, url = gmail
    result = run(url, "send_email", {"to": ["ok@example.com"], "cc": [address], "subject": "s", "body": "b"})
    assert result.is_error
    assert f"cc address 1, {address!r}, cannot be" in result.text and reason in result.text, result.text
    assert fake.token_requests == 0 and fake.sent_raw == []


SCRIPTS = (string.ascii_letters + string.digits + "-.@" + "äöüßéèçñåøæÄÖÜ" + "абвгдежзийклмнопрстуфхцчшщыэюя"
           + "αβγδεζηθλμξπρστφχψω" + "中文例子测试日本語한국어")
RECIPIENTS = settings(max_examples=40, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def test_every_schema_valid_recipient_list_reads_back_as_given_or_is_refused_by_name(gmail):
    """Long, mostly non-ASCII recipient lists drawn from the server's own declared schema
    (hypothesis-jsonschema, as the contract test draws them): the fake (which reads recipient
    headers as strictly as Gmail) parses To and Cc back to exactly the addresses given, domains
    in IDNA form; an address no header can carry is refused naming it; never "Invalid To header"."""
    fake, url = gmail
    schema = send_email_schema(url)
    item = dict(schema["properties"]["to"]["items"])
    item["pattern"] = item["pattern"].removesuffix("$") + r"\Z"  # JSON Schema's "$" is the end of the string
    # Everything the schema allows (hypothesis-jsonschema), and the same pattern drawn from letters
    # of several scripts: random code points are almost never a valid internationalised domain
    # (measured: 0 in 300), so without these every non-ASCII list would only test the refusal.
    realistic = st.from_regex(item["pattern"], fullmatch=True, alphabet=st.sampled_from(SCRIPTS)).filter(
        lambda a: len(a) <= item.get("maxLength", len(a)))
    pools = st.sampled_from([realistic.filter(representable), st.one_of(from_schema(item), realistic)])
    limit, cc_limit = schema["properties"]["to"]["maxItems"], schema["properties"]["cc"]["maxItems"]

    def recipients(pool: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[list[str], list[str]]]:
        to = st.tuples(st.lists(pool.filter(lambda a: not a.isascii()), min_size=2, max_size=8),
                       st.lists(pool, max_size=limit - 8)).flatmap(lambda parts: st.permutations(parts[0] + parts[1]))
        return st.tuples(to, st.lists(pool, max_size=cc_limit))

    outcomes: list[bool] = []

    @RECIPIENTS
    @given(pools.flatmap(recipients))
    def check(lists: tuple[list[str], list[str]]) -> None:
        to, cc = lists
        arguments = {"to": to, "cc": cc, "subject": "Grüße", "body": "b"}
        jsonschema.validate(arguments, schema)
        sent_before = len(fake.sent_raw)
        result = run(url, "send_email", arguments)
        assert "Invalid To header" not in result.text and "Invalid Cc header" not in result.text, result.text
        unsendable = [(field, i, a) for field, addresses in (("to", to), ("cc", cc))
                      for i, a in enumerate(addresses) if not representable(a)]
        if unsendable:
            field, i, first = unsendable[0]
            assert result.is_error and f"{field} address {i + 1}, {first!r}, cannot be" in result.text, result.text
            assert len(fake.sent_raw) == sent_before
            outcomes.append(False)
            return
        assert not result.is_error, result.text
        outcomes.append(True)
        sent = fake.sent_raw[-1]
        assert addresses_of(sent["To"]) == [as_written(a) for a in to]
        if cc:
            assert addresses_of(sent["Cc"]) == [as_written(a) for a in cc]
        else:
            assert sent["Cc"] is None

    check()
    assert outcomes.count(True) >= 5 and outcomes.count(False) >= 5, outcomes  # both paths were driven
