"""Secrets at rest: ciphertext in the database, rotation, API keys unrecoverable."""
from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from orgs.credentials import MissingCredential, get_credential
from orgs.models import ApiKey, ProviderCredential
from orgs.services import SYSTEM, create_api_key, set_provider_credential
from voiceplatform import crypto

pytestmark = pytest.mark.django_db
SECRET = "sk-live-abcdefghijklmnop-9876"


def _raw(column: str, table: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_raw_sql_shows_credentials_as_ciphertext(org_a: Any) -> None:
    credential = set_provider_credential(org_a, SYSTEM, "openai", {"api_key": SECRET})
    raw = _raw("secrets", "orgs_providercredential", credential.pk)
    assert raw.startswith("fernet:")
    assert SECRET not in raw and "sk-live" not in raw
    assert get_credential(org_a, "openai")["api_key"] == SECRET
    assert credential.hints == {"api_key": "…9876"}


def test_rotated_key_still_decrypts_old_rows_and_command_reencrypts(org_a: Any, settings: Any) -> None:
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    credential = set_provider_credential(org_a, SYSTEM, "twilio", {"account_sid": "AC" + "1" * 32,
                                                                    "auth_token": "tok-secret-4242"})
    before = _raw("secrets", "orgs_providercredential", credential.pk)
    new_key = Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        # the old row reads under the new key list
        assert get_credential(org_a, "twilio")["auth_token"] == "tok-secret-4242"
        call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))
        after = _raw("secrets", "orgs_providercredential", credential.pk)
        assert after != before
    # after rotation, the new key alone decrypts it and the old key alone does not
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        assert get_credential(org_a, "twilio")["auth_token"] == "tok-secret-4242"
    with override_settings(FIELD_ENCRYPTION_KEYS=[old_key]):
        with pytest.raises(Exception, match="could not be decrypted"):
            ProviderCredential.objects.get(pk=credential.pk)


def test_bad_encryption_key_is_a_clear_error() -> None:
    with override_settings(FIELD_ENCRYPTION_KEYS=["not-a-key"]):
        crypto._fernet.cache_clear()
        with pytest.raises(Exception, match="Fernet keys"):
            crypto.encrypt("x")


def test_api_keys_are_not_recoverable_from_the_database(org_a: Any) -> None:
    key, plaintext = create_api_key(org_a, SYSTEM, "ci")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM orgs_apikey WHERE id = %s", [key.pk])
        row = cursor.fetchone()
    dumped = " ".join(str(v) for v in row)
    assert plaintext not in dumped
    secret_part = plaintext[len(key.prefix):]
    assert secret_part not in dumped
    assert plaintext.startswith(key.prefix) and len(plaintext) > 40


def test_missing_credential_is_named(org_a: Any) -> None:
    with pytest.raises(MissingCredential, match="no hume credential"):
        get_credential(org_a, "hume")


def test_revoked_and_unknown_keys_are_refused(org_a: Any, api: Any) -> None:
    key, plaintext = create_api_key(org_a, SYSTEM, "ci")
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert client.get("/api/v1/organization/").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None
    from orgs.services import revoke_api_key

    revoke_api_key(key, SYSTEM)
    response = client.get("/api/v1/organization/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This API key has been revoked."
    client.credentials(HTTP_AUTHORIZATION="Bearer vp_doesnotexist")
    assert client.get("/api/v1/organization/").json()["error"]["message"] == "Unknown API key."
    assert ApiKey.objects.count() == 1
