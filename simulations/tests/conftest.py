"""Both sides of a simulated call against the fake OpenAI Realtime server, and the judge
against the fake Chat Completions server: one org credential points the real SDK at both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agents.testing.fake_openai import FakeOpenAIRealtime
from calls.testing.fake_openai_chat import FakeOpenAIChat

DESTINATIONS = [{"label": "Sales", "number": "+1 (415) 555-0142", "description": "New orders"},
                {"label": "Front desk", "number": "+1 (415) 555-0143"}]


@dataclass
class Fakes:
    realtime: FakeOpenAIRealtime
    chat: FakeOpenAIChat


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    chat = FakeOpenAIChat()
    chat.start()
    try:
        realtime = FakeOpenAIRealtime(api_key=chat.api_key, quiet_silence=True, turn_bytes=10**9)
        with realtime:
            yield Fakes(realtime, chat)
    finally:
        chat.stop()


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    from voiceplatform.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def tested_agent(org_a: Any, fakes: Fakes) -> Any:
    from calls.tests.factories import make_ready_agent
    from orgs.services import SYSTEM, set_provider_credential

    set_provider_credential(org_a, SYSTEM, "openai", {"api_key": fakes.chat.api_key},
                            config={"websocket_base_url": fakes.realtime.url,
                                    "base_url": fakes.chat.base_url + "/v1"})
    return make_ready_agent(org_a, name="Bookings", provider="openai_realtime", first_message="Hello.",
                            builtin_tools=["end_call", "transfer_call"], transfer_destinations=DESTINATIONS)
