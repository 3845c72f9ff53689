"""What the dashboard shows for a suite or scenario run's state: a human label and a badge tone.

``voiceplatform/tests/test_present.py`` fails when a state has no entry here.
"""

from __future__ import annotations

from simulations.models import RunStatus

RUN_STATUS: dict[str, tuple[str, str]] = {
    RunStatus.QUEUED: ("Queued", "neutral"),
    RunStatus.RUNNING: ("Running", "neutral"),
    RunStatus.PASSED: ("Passed", "ok"),
    RunStatus.FAILED: ("Failed", "bad"),
    RunStatus.ERROR: ("Error", "bad"),
}
