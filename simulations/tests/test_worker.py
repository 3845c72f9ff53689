"""A suite run on a real Celery worker (a subprocess on the test database and broker): the
dispatcher claims a scenario, the worker runs it against the fakes served from this process,
dispatches the next one, and the last one finishes the run, one at a time (concurrency 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.testing.script import AgentTurn, FunctionCall
from calls.testing.signals import speech_mulaw
from orgs.services import SYSTEM
from simulations.models import RunStatus, Scenario, ScenarioRun, Suite, SuiteRun
from simulations.services import start_suite_run
from simulations.tests.conftest import Fakes
from voiceplatform.testing import subprocess_env, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_scenarios_one_after_the_other(tested_agent: Any, fakes: Fakes,
                                                              tmp_path: Path) -> None:
    suite = Suite.objects.create(org=tested_agent.org, agent=tested_agent, name="Worker", concurrency=1)
    for name in ("First caller", "Second caller"):
        Scenario.objects.create(org=tested_agent.org, suite=suite, name=name, persona="Brief.", goal="Say hello.",
                                checks=[{"type": "agent_ended_call"}], max_seconds=15)
    for _ in range(2):
        # One scenario at a time, on the one fake both sides share: the greeting, the caller's
        # request, the agent's end_call, and a goodbye with no audio, so the caller hears
        # nothing more and takes no step of the next scenario.
        fakes.realtime.script(AgentTurn(audio=speech_mulaw(0.2), transcript="Hello."),
                              AgentTurn(audio=speech_mulaw(0.2, seed=1), transcript="Just saying hi."),
                              FunctionCall("end_call", {}, call_id="e"),
                              AgentTurn(audio=b"", transcript="Goodbye."))
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "voiceplatform", "worker", "-l", "warning", "-c", "1",
         "-n", f"sim-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=subprocess_env(MEDIA_ROOT=str(tmp_path / "media")), start_new_session=True,
        stdout=log, stderr=subprocess.STDOUT)
    try:
        run = start_suite_run(suite, SYSTEM, version_number=1)

        def finished() -> bool:
            return SuiteRun.objects.get(pk=run.pk).status not in (RunStatus.QUEUED, RunStatus.RUNNING)

        wait_until(finished, "the worker finishes the suite run", timeout=90, procs=[worker],
                   log_tail=lambda: (tmp_path / "worker.log").read_text()[-4000:])
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)
        log.close()
    run.refresh_from_db()
    results = list(ScenarioRun.objects.filter(suite_run=run).order_by("started_at"))
    assert run.status == RunStatus.PASSED, [(r.status, r.error) for r in results]
    assert (run.passed, run.total) == (2, 2)
    assert [(r.end_reason, bool(r.recording)) for r in results] == [("agent_hangup", True)] * 2
    assert [[t["text"] for t in r.transcript] for r in results] == [["Hello.", "Just saying hi.", "Goodbye."]] * 2
    # one at a time: the second started after the first finished
    assert results[0].finished_at is not None and results[1].started_at is not None
    assert results[1].started_at >= results[0].finished_at
