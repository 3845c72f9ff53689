"""A suite file cannot exhaust the web process (issue 11, uploads): YAML aliases that would
expand a few hundred bytes into gigabytes of scenario JSON are refused, with the reason,
through the API and the dashboard, and nothing is stored."""
from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from calls.tests.factories import make_ready_agent
from simulations.models import Scenario, Suite
from simulations.yaml_io import MAX_EXPANDED, load_suite

pytestmark = pytest.mark.django_db


def laughs(levels: int) -> str:
    """A suite whose one scenario's variables name a list of nine lists of nine ... (levels
    deep): 9**levels strings once the aliases are written out."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    body = "\n    ".join(lines)
    return f"suite: Laughs\nscenarios:\n- name: Bomb\n  persona: p\n  goal: g\n  variables:\n    {body}\n"


def test_alias_bomb_is_refused_at_load_in_bounded_work() -> None:
    text = laughs(9)  # ~500 bytes; 387 million strings written out
    assert len(text) < 1024
    from simulations.services import SimulationError

    with pytest.raises(SimulationError) as refused:
        load_suite(text)
    assert refused.value.field == "file"
    assert f"expands past {MAX_EXPANDED:,} values" in refused.value.message
    # A self-referencing alias (a cycle) is refused the same way, not a crash when stored.
    with pytest.raises(SimulationError):
        load_suite("suite: Loop\nscenarios:\n- name: L\n  persona: p\n  goal: g\n  variables: &v {x: *v}\n")


def test_files_without_aliases_and_small_aliases_still_load() -> None:
    plain = "suite: S\nscenarios:\n" + "".join(
        f"- name: S{i}\n  persona: {'p' * 2000}\n  goal: g\n" for i in range(200))
    assert len(load_suite(plain)["scenarios"]) == 200
    shared = "suite: S\nscenarios:\n- name: A\n  persona: p\n  goal: g\n  variables: &v {plan: gold}\n" \
             "- name: B\n  persona: p\n  goal: g\n  variables: *v\n"
    assert load_suite(shared)["scenarios"][1]["variables"] == {"plan": "gold"}


def test_alias_bomb_is_refused_by_the_api_and_the_dashboard(org_a: Any, owner_a: Any, api: Any,
                                                            login: Any) -> None:
    agent = make_ready_agent(org_a, name="Support line")
    before = (Suite.objects.count(), Scenario.objects.count())

    answer = api(owner_a).post("/api/v1/test-suites/import/", {"agent": str(agent.public_id), "yaml": laughs(9)},
                               format="json")
    assert answer.status_code == 400, answer.content[:300]
    error = answer.json()["error"]
    assert "expands past" in error["message"] and "file" in error["fields"]

    page = login(owner_a).post("/tests/", {"agent": str(agent.public_id),
                                           "file": SimpleUploadedFile("suite.yaml", laughs(9).encode())})
    assert page.status_code == 400
    assert "expands past" in page.content.decode()
    assert (Suite.objects.count(), Scenario.objects.count()) == before
