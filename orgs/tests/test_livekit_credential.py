"""LiveKit credentials (issue 19, first point): an org stores its server URL, API key and
secret, encrypted and write-only, and "Test" lists rooms with the official ``livekit-api``
package against a local fake of LiveKit's Twirp RoomService, through the outbound guard."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.core.exceptions import ValidationError

from calls.testing.fake_livekit import FakeLiveKit
from orgs.credential_checks import check_credential
from orgs.models import AuditLog, ProviderCredential
from orgs.services import SYSTEM, set_provider_credential

pytestmark = pytest.mark.django_db


@pytest.fixture
def livekit() -> Iterator[FakeLiveKit]:
    with FakeLiveKit() as fake:
        yield cast(FakeLiveKit, fake)


def _store(org: Any, fake: FakeLiveKit, **override: str) -> ProviderCredential:
    return set_provider_credential(org, SYSTEM, "livekit", {**fake.credentials(), **override})


def test_test_lists_rooms_with_the_narrowest_grant(org_a: Any, livekit: FakeLiveKit) -> None:
    result = check_credential(_store(org_a, livekit), SYSTEM)
    assert (result.ok, result.kind) == (True, "ok") and "2 active room(s)" in result.message
    (request,) = livekit.requests
    assert request == {"method": "ListRooms", "authenticated": True, "room_list": True, "room_admin": False,
                       "content_type": "application/protobuf"}
    assert AuditLog.objects.get(org=org_a, action="credential.tested").changes == {"provider": "livekit",
                                                                                   "kind": "ok"}


def test_a_wrong_secret_is_a_rejected_key_and_never_shown(org_a: Any, livekit: FakeLiveKit) -> None:
    result = check_credential(_store(org_a, livekit, api_secret="not-the-secret-at-all"))
    assert result.kind == "bad_key" and "does not accept this key" in result.message
    assert "not-the-secret-at-all" not in result.message and livekit.requests[0]["authenticated"] is False


@pytest.mark.parametrize(("code", "kind"), [("permission_denied", "no_permission"), ("internal", "unreachable"),
                                            ("resource_exhausted", "rate_limited")])
def test_server_errors_are_classified(org_a: Any, livekit: FakeLiveKit, code: str, kind: str) -> None:
    livekit.fail_next(code, f"server says {code}")
    result = check_credential(_store(org_a, livekit))
    assert (result.ok, result.kind) == (False, kind), result.message
    assert len(livekit.requests) == 1  # one request: no failover to other hosts, no retry


def test_an_unreachable_server(org_a: Any) -> None:
    with FakeLiveKit() as fake:
        secrets = cast(FakeLiveKit, fake).credentials()
    credential = set_provider_credential(org_a, SYSTEM, "livekit", secrets)
    assert check_credential(credential).kind == "unreachable"


def test_a_private_server_url_is_refused_by_the_outbound_guard(org_a: Any, livekit: FakeLiveKit,
                                                               settings: Any) -> None:
    credential = _store(org_a, livekit)  # saved while private targets are allowed (tests)
    settings.OUTBOUND_ALLOW_PRIVATE = False
    result = check_credential(credential)
    assert result.kind == "other" and "not allowed" in result.message and "loopback" in result.message
    assert livekit.requests == []  # never reached
    with pytest.raises(ValidationError) as refused:
        _store(org_a, livekit)
    assert "url" in refused.value.message_dict


def test_the_url_and_the_key_pair_are_required_encrypted_and_write_only(org_a: Any, admin_a: Any, api: Any,
                                                                        login: Any, livekit: FakeLiveKit) -> None:
    with pytest.raises(ValidationError) as missing:
        set_provider_credential(org_a, SYSTEM, "livekit", {"api_key": "APIx"})
    assert set(missing.value.message_dict) == {"url", "api_secret"}
    with pytest.raises(ValidationError) as scheme:
        set_provider_credential(org_a, SYSTEM, "livekit", {**livekit.credentials(), "url": "ftp://example.com"})
    assert "url" in scheme.value.message_dict
    credential = _store(org_a, livekit)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets::text FROM orgs_providercredential WHERE id = %s", [credential.pk])
        (raw,) = cursor.fetchone()
    for secret in (livekit.api_secret, livekit.url):
        assert secret not in raw  # ciphertext at rest
    listed = json.dumps(api(admin_a).get("/api/v1/credentials/").json())
    page = login(admin_a).get("/settings/credentials/").content.decode()
    for shown in (listed, page):
        assert livekit.api_secret not in shown and livekit.url not in shown
    assert "LiveKit" in page
    # a blank field keeps what is stored (the form never shows it back)
    set_provider_credential(org_a, SYSTEM, "livekit", {"url": "", "api_key": "", "api_secret": ""})
    credential.refresh_from_db()
    assert credential.secrets == livekit.credentials()
