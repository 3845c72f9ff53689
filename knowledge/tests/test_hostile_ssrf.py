"""Hostile tenant vs. the knowledge URL fetcher: the address is checked when saved and
again when the worker fetches, and the fetch connects to the address it checked (no
second resolution for DNS rebinding to exploit). Shared tools: voiceplatform/tests/test_hostile_ssrf.py."""
from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from knowledge import services
from knowledge.models import IngestState
from knowledge.tests.test_models_and_sources import FakeSite
from orgs.services import SYSTEM
from voiceplatform import outbound
from voiceplatform.tests.test_hostile_ssrf import ONLY_LOOPBACK_ONE, PUBLIC, Dns

pytestmark = pytest.mark.django_db


def test_url_on_a_name_resolving_to_loopback_is_refused_at_save(hostile: Any, kb_a: Any) -> None:
    with pytest.raises(ValidationError, match="the host 'localhost' resolves to 127.0.0.1, a loopback address") as e:
        services.add_document(kb_a, SYSTEM, services.SourceInput(url="http://localhost:8000/admin/"))
    assert "url" in e.value.message_dict


def test_dns_rebinding_between_save_and_fetch_is_refused(hostile: Any, kb_a: Any, run_tasks: Any) -> None:
    with FakeSite() as site:
        port = site.base_url.rsplit(":", 1)[1]
        dns = Dns().set("docs.customer.test", [PUBLIC], ["127.0.0.1"])  # public when saved, loopback when fetched
        with outbound.using_resolver(dns), run_tasks():
            document = services.add_document(kb_a, SYSTEM,
                                             services.SourceInput(url=f"http://docs.customer.test:{port}/help"))
        assert not site.requests
    version = document.latest_version
    version.refresh_from_db()
    assert version.state == IngestState.FAILED
    assert "resolves to 127.0.0.1, a loopback address" in version.error_message


def test_fetch_goes_to_the_checked_address_only(hostile: Any, kb_a: Any, run_tasks: Any) -> None:
    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    with FakeSite() as site:
        port = site.base_url.rsplit(":", 1)[1]
        # Every lookup after the first points elsewhere; only one lookup per connection happens.
        dns = Dns().set("docs.customer.test", ["127.0.0.1"], ["127.0.0.1"], ["169.254.169.254"])
        with outbound.using_resolver(dns), run_tasks():
            document = services.add_document(kb_a, SYSTEM,
                                             services.SourceInput(url=f"http://docs.customer.test:{port}/help"))
        assert [r.path for r in site.requests] == ["/help"]
    version = document.latest_version
    version.refresh_from_db()
    assert version.state == IngestState.READY, version.error_message
    assert dns.lookups == ["docs.customer.test", "docs.customer.test"]  # one at save, one at fetch
