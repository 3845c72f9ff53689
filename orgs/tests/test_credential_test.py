"""The "Test" button on provider credentials (issue 13, point 2e): one cheap authenticated call
through the vendor's real SDK, against the local fakes, with the vendor's errors classified."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from calls.testing.fake_openai_chat import FakeOpenAIChat
from calls.testing.fake_plivo import FakePlivo
from calls.testing.fake_twilio import FakeTwilio, twilio_error
from knowledge.testing.fake_embeddings import FakeGeminiEmbeddings
from orgs.credential_checks import check_credential
from orgs.models import AuditLog, ProviderCredential
from orgs.services import SYSTEM, set_provider_credential

pytestmark = pytest.mark.django_db


def _store(org: Any, provider: str, secrets: dict[str, str], base_url: str) -> ProviderCredential:
    return set_provider_credential(org, SYSTEM, provider, secrets, config={"base_url": base_url})


def _closed_port_url(path: str = "") -> str:
    """A URL nothing listens on (a fake started and stopped): "vendor unreachable"."""
    fake = FakeTwilio()
    fake.start()
    url = fake.base_url
    fake.stop()
    return url + path


# --- OpenAI: list models ---------------------------------------------------------------

@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAIChat]:
    with FakeOpenAIChat() as fake:
        yield fake


def _openai(org: Any, fake: FakeOpenAIChat, key: str | None = None) -> ProviderCredential:
    return _store(org, "openai", {"api_key": key or fake.api_key}, fake.base_url + "/v1")


def test_openai_ok_lists_models(org_a: Any, openai_fake: FakeOpenAIChat) -> None:
    result = check_credential(_openai(org_a, openai_fake))
    assert (result.ok, result.kind) == (True, "ok") and "2 model(s)" in result.message
    assert [r.path for r in openai_fake.requests] == ["/v1/models"]


@pytest.mark.parametrize(("status", "kind"), [(403, "no_permission"), (429, "rate_limited"),
                                              (500, "unreachable"), (404, "other")])
def test_openai_vendor_errors_are_classified(org_a: Any, openai_fake: FakeOpenAIChat, status: int,
                                             kind: str) -> None:
    openai_fake.fail_next(status, {"error": {"message": f"vendor says {status}", "type": "x", "param": None,
                                             "code": None}})
    result = check_credential(_openai(org_a, openai_fake))
    assert (result.ok, result.kind) == (False, kind), result.message


def test_openai_bad_key(org_a: Any, openai_fake: FakeOpenAIChat) -> None:
    result = check_credential(_openai(org_a, openai_fake, key="sk-wrong"))
    assert result.kind == "bad_key" and "does not accept this key" in result.message
    assert "sk-wrong" not in result.message


def test_openai_unreachable(org_a: Any) -> None:
    credential = _store(org_a, "openai", {"api_key": "sk-x"}, _closed_port_url("/v1"))
    assert check_credential(credential).kind == "unreachable"


def test_a_private_base_url_is_refused_by_the_outbound_guard(org_a: Any, openai_fake: FakeOpenAIChat,
                                                            settings: Any) -> None:
    credential = _openai(org_a, openai_fake)
    settings.OUTBOUND_ALLOW_PRIVATE = False
    result = check_credential(credential)
    assert result.kind == "other" and "base URL is not allowed" in result.message
    assert openai_fake.requests == []  # never reached


# --- Gemini: list models ---------------------------------------------------------------

@pytest.fixture
def gemini_fake() -> Iterator[FakeGeminiEmbeddings]:
    fake = FakeGeminiEmbeddings(api_key="g-right")
    fake.start()
    yield fake
    fake.stop()


def test_gemini_ok_and_bad_key(org_a: Any, gemini_fake: FakeGeminiEmbeddings) -> None:
    good = check_credential(_store(org_a, "gemini", {"api_key": "g-right"}, gemini_fake.base_url))
    assert good.kind == "ok" and "2 model(s)" in good.message
    bad = check_credential(_store(org_a, "gemini", {"api_key": "g-wrong"}, gemini_fake.base_url))
    assert bad.kind == "bad_key" and "API key not valid" in bad.message


@pytest.mark.parametrize(("status", "kind"), [(403, "no_permission"), (429, "rate_limited"),
                                              (503, "unreachable")])
def test_gemini_vendor_errors_are_classified(org_a: Any, gemini_fake: FakeGeminiEmbeddings, status: int,
                                             kind: str) -> None:
    gemini_fake.fail_next = [(status, "vendor says no")]
    result = check_credential(_store(org_a, "gemini", {"api_key": "g-right"}, gemini_fake.base_url))
    assert result.kind == kind, result.message


def test_gemini_unreachable(org_a: Any) -> None:
    assert check_credential(_store(org_a, "gemini", {"api_key": "g"}, _closed_port_url())).kind == "unreachable"


# --- Twilio: fetch the account ----------------------------------------------------------

@pytest.fixture
def twilio_fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def _twilio(org: Any, fake: FakeTwilio, **override: str) -> ProviderCredential:
    secrets = {"account_sid": fake.account_sid, "auth_token": fake.auth_token, **override}
    return _store(org, "twilio", secrets, fake.base_url)


def test_twilio_ok_fetches_the_account(org_a: Any, twilio_fake: FakeTwilio) -> None:
    result = check_credential(_twilio(org_a, twilio_fake))
    assert result.kind == "ok" and "“Fake account” is active" in result.message
    assert [r.path for r in twilio_fake.requests] == [f"/2010-04-01/Accounts/{twilio_fake.account_sid}.json"]


def test_twilio_errors_are_classified(org_a: Any, twilio_fake: FakeTwilio) -> None:
    assert check_credential(_twilio(org_a, twilio_fake, auth_token="wrong")).kind == "bad_key"
    for status, code, kind in [(403, 20003, "no_permission"), (429, 20429, "rate_limited"),
                               (500, 20500, "unreachable")]:
        twilio_fake.fail_next(status, twilio_error(status, code, "vendor says no"))
        result = check_credential(_twilio(org_a, twilio_fake))
        assert result.kind == kind, (status, result.message)
    credential = _store(org_a, "twilio", {"account_sid": twilio_fake.account_sid, "auth_token": "t"},
                        _closed_port_url())
    assert check_credential(credential).kind == "unreachable"


# --- Plivo: get the account details -------------------------------------------------------

@pytest.fixture
def plivo_fake() -> Iterator[FakePlivo]:
    with FakePlivo() as fake:
        yield fake


def _plivo(org: Any, fake: FakePlivo, **override: str) -> ProviderCredential:
    secrets = {"auth_id": fake.auth_id, "auth_token": fake.auth_token, **override}
    return _store(org, "plivo", secrets, fake.base_url)


def test_plivo_ok_gets_the_account(org_a: Any, plivo_fake: FakePlivo) -> None:
    result = check_credential(_plivo(org_a, plivo_fake))
    assert result.kind == "ok" and "Fake account" in result.message
    assert [r.path for r in plivo_fake.requests] == [f"/v1/Account/{plivo_fake.auth_id}/"]


def test_plivo_errors_are_classified(org_a: Any, plivo_fake: FakePlivo) -> None:
    assert check_credential(_plivo(org_a, plivo_fake, auth_token="wrong")).kind == "bad_key"
    for status, kind in [(403, "no_permission"), (429, "rate_limited"), (500, "unreachable")]:
        plivo_fake.fail_next(status, {"api_id": "x", "error": "vendor says no"})
        result = check_credential(_plivo(org_a, plivo_fake))
        assert result.kind == kind, (status, result.message)
    credential = _store(org_a, "plivo", {"auth_id": plivo_fake.auth_id, "auth_token": "t"}, _closed_port_url())
    assert check_credential(credential).kind == "unreachable"


# --- dashboard and API --------------------------------------------------------------------

def test_dashboard_test_button_shows_the_result(login: Any, admin_a: Any, editor_a: Any, org_a: Any,
                                                twilio_fake: FakeTwilio, openai_fake: FakeOpenAIChat) -> None:
    _twilio(org_a, twilio_fake)
    _openai(org_a, openai_fake, key="sk-stale")
    client = login(admin_a)
    page = client.get("/settings/credentials/").content.decode()
    assert page.count('name="action" value="test"') == page.count(">Test</button>") == 2  # only those set
    ok = client.post("/settings/credentials/", {"provider": "twilio", "action": "test"}).content.decode()
    assert 'data-kind="ok"' in ok and "Works." in ok and "“Fake account” is active" in ok
    bad = client.post("/settings/credentials/", {"provider": "openai", "action": "test"}).content.decode()
    assert 'class="msg error test-result"' in bad and "Key rejected." in bad and "sk-stale" not in bad
    assert AuditLog.objects.filter(org=org_a, action="credential.tested").count() == 2
    assert login(editor_a).post("/settings/credentials/", {"provider": "twilio", "action": "test"}).status_code == 403
    assert client.post("/settings/credentials/", {"provider": "plivo", "action": "test"}).status_code == 404


def test_api_test_endpoint(api: Any, admin_a: Any, editor_a: Any, outsider: Any, org_a: Any,
                           plivo_fake: FakePlivo) -> None:
    _plivo(org_a, plivo_fake, auth_token="wrong")
    body = api(admin_a).post("/api/v1/credentials/plivo/test/").json()
    assert body == {"provider": "plivo", "ok": False, "kind": "bad_key", "message": body["message"]}
    assert "does not accept" in body["message"]
    assert api(editor_a).post("/api/v1/credentials/plivo/test/").status_code == 403
    assert api(outsider).post("/api/v1/credentials/plivo/test/").status_code == 404  # org B has none of its own
    assert api(admin_a).post("/api/v1/credentials/gemini/test/").status_code == 404




def test_azure_openai_credential_is_tested_on_azures_path_with_the_api_key_header(org_a: Any,
                                                                                   openai_fake: FakeOpenAIChat) -> None:
    cred = set_provider_credential(org_a, SYSTEM, "openai", {"api_key": openai_fake.api_key},
                                   config={"base_url": openai_fake.base_url, "api_version": "2025-04-01-preview",
                                           "azure_deployment": "rt-prod"})
    result = check_credential(cred)
    assert (result.ok, result.kind) == (True, "ok"), result.message
    (request,) = openai_fake.requests
    assert request.path == "/openai/models" and request.query["api-version"] == ["2025-04-01-preview"]
    assert request.header("api-key") == openai_fake.api_key and request.header("Authorization") is None


@pytest.mark.parametrize(("config", "field", "says"), [
    ({"base_url": "https://example.com", "api_version": "latest"}, "api_version", "not an Azure OpenAI API version"),
    ({"base_url": "https://example.com", "azure_deployment": "rt"}, "api_version", "needs the API version"),
    ({"api_version": "2025-04-01-preview"}, "base_url", "resource endpoint"),
    ({"base_url": "https://example.com", "api_version": "2025-04-01-preview", "azure_deployment": "a b"},
     "azure_deployment", "deployment name"),
])
def test_azure_settings_are_validated_naming_the_field(org_a: Any, config: dict[str, str], field: str,
                                                       says: str) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as info:
        set_provider_credential(org_a, SYSTEM, "openai", {"api_key": "sk-x"}, config=config)
    assert says in " ".join(info.value.message_dict[field])


def test_deepgram_key_is_tested_by_listing_its_projects(org_a: Any) -> None:
    from agents.testing.fake_deepgram_rest import FakeDeepgramRest

    with FakeDeepgramRest() as fake:
        good = check_credential(_store(org_a, "deepgram", {"api_key": fake.api_key}, fake.base_url))
        assert (good.ok, good.kind) == (True, "ok") and "1 project(s)" in good.message
        assert [r.path for r in fake.requests] == ["/v1/projects"]
        bad = check_credential(_store(org_a, "deepgram", {"api_key": "dg-wrong-key"}, fake.base_url))
        assert bad.kind == "bad_key" and "Invalid credentials" in bad.message and "dg-wrong-key" not in bad.message
        fake.fail_next(500, {"err_code": "INTERNAL", "err_msg": "down"})
        down = check_credential(_store(org_a, "deepgram", {"api_key": fake.api_key}, fake.base_url))
        assert down.kind == "unreachable"
