"""What the dashboard shows for an agent experiment's state: a human label and a badge tone.

Kept next to ``agents.models.ExperimentState``: ``voiceplatform/tests/test_present.py`` fails when
a state has no entry here.
"""

from __future__ import annotations

from agents.models import ExperimentState

EXPERIMENT_STATE: dict[str, tuple[str, str]] = {
    ExperimentState.DRAFT: ("Draft", "neutral"),
    ExperimentState.RUNNING: ("Running", "ok"),
    ExperimentState.ENDED: ("Ended", "neutral"),
}
