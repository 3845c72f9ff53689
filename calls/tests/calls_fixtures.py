"""Fixtures shared by the calls tests: carrier fakes wired into org A, a ready agent,
numbers, and helpers that act as the carrier calling our webhooks with real signatures.

Imported with ``from calls.tests.calls_fixtures import *`` by the test modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from calls.models import PhoneNumber
from calls.testing.fake_openai_chat import FakeOpenAIChat
from calls.testing.fake_plivo import FakePlivo
from calls.testing.fake_twilio import FakeTwilio
from calls.tests.factories import make_phone_number, make_ready_agent
from orgs.services import SYSTEM, set_provider_credential

PUBLIC = "https://voice.example.com"


@pytest.fixture
def public_base(settings: Any) -> str:
    # The app is reached through a TLS proxy: Django sees http://testserver, carriers sign PUBLIC.
    settings.PUBLIC_BASE_URL = PUBLIC
    return PUBLIC


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake_plivo() -> Iterator[FakePlivo]:
    with FakePlivo() as fake:
        yield fake


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIChat]:
    with FakeOpenAIChat() as fake:
        yield fake


def store_credential(org: Any, provider: str, credentials: dict[str, str]) -> None:
    secrets = {k: v for k, v in credentials.items() if k != "base_url"}
    set_provider_credential(org, SYSTEM, provider, secrets, config={"base_url": credentials["base_url"]})


@pytest.fixture
def twilio_org(org_a: Any, fake_twilio: FakeTwilio, public_base: str) -> Any:
    store_credential(org_a, "twilio", fake_twilio.credentials)
    return org_a


@pytest.fixture
def plivo_org(org_a: Any, fake_plivo: FakePlivo, public_base: str) -> Any:
    store_credential(org_a, "plivo", fake_plivo.credentials)
    return org_a


@pytest.fixture
def agent_a(org_a: Any) -> Any:
    return make_ready_agent(org_a)


@pytest.fixture
def twilio_number(twilio_org: Any, agent_a: Any) -> PhoneNumber:
    return make_phone_number(twilio_org, e164="+14155550100", carrier="twilio", inbound_agent=agent_a)


@pytest.fixture
def plivo_number(plivo_org: Any, agent_a: Any) -> PhoneNumber:
    return make_phone_number(plivo_org, e164="+14155550200", carrier="plivo", inbound_agent=agent_a)


def post_twilio(fake: FakeTwilio, path: str, params: dict[str, str], *, signature: str | None = None) -> Any:
    """POST form ``params`` to ``path`` the way Twilio does, signed over the public URL."""
    headers = fake.webhook_headers(PUBLIC + path, params)
    if signature is not None:
        headers = {"X-Twilio-Signature": signature} if signature else {}
    response = Client().post(path, urlencode(params), content_type="application/x-www-form-urlencoded",
                             headers=headers)
    _remember_secrets(fake.auth_token, *headers.values(), *_stream_tokens(response))
    return response


def post_plivo(fake: FakePlivo, path: str, params: dict[str, str], *, tamper: bool = False) -> Any:
    headers = fake.signature_headers(PUBLIC + path, params)
    if tamper:
        headers["X-Plivo-Signature-V3"] = "AAAA" + headers["X-Plivo-Signature-V3"][4:]
    response = Client().post(path, urlencode(params), content_type="application/x-www-form-urlencoded",
                             headers=headers)
    _remember_secrets(fake.auth_token, headers.get("X-Plivo-Signature-V3", ""), *_stream_tokens(response))
    return response


# Every secret a carrier webhook test sent or was given (auth tokens, signatures, media
# tokens): `no_secret_in_logs` checks that no log record of the test shows one.
WEBHOOK_SECRETS: list[str] = []


def _remember_secrets(*values: str) -> None:
    WEBHOOK_SECRETS.extend(v for v in values if v and len(v) >= 16)


def _stream_tokens(response: Any) -> list[str]:
    """Media tokens in stream markup: Twilio's <Parameter name="token">, Plivo's extraHeaders."""
    import xml.etree.ElementTree as ET

    if not response.get("Content-Type", "").endswith("xml"):
        return []
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        return []
    found = [p.get("value", "") for p in root.iter("Parameter") if p.get("name") == "token"]
    for stream in root.iter("Stream"):
        for pair in (stream.get("extraHeaders") or "").split(","):
            key, _, value = pair.partition("=")
            if key == "token":
                found.append(value)
    return found


@pytest.fixture
def no_secret_in_logs() -> Any:
    """Every logger at DEBUG for the test; fails when any record shows a secret the test's
    carrier webhooks sent or received."""
    from voiceplatform.testing import capture_all_logs, secrets_in_logs

    WEBHOOK_SECRETS.clear()
    with capture_all_logs() as records:
        yield WEBHOOK_SECRETS
    assert secrets_in_logs(records, WEBHOOK_SECRETS) == []


__all__ = [
    "PUBLIC",
    "no_secret_in_logs",
    "agent_a",
    "fake_openai",
    "fake_plivo",
    "fake_twilio",
    "plivo_number",
    "plivo_org",
    "post_plivo",
    "post_twilio",
    "public_base",
    "store_credential",
    "twilio_number",
    "twilio_org",
]
