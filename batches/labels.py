"""What the dashboard shows for batch, row, outcome and schedule-run states: a human label and a badge tone.

Kept next to ``batches.models``'s choices: ``voiceplatform/tests/test_present.py`` fails when a
choice value has no entry here. Tones: ``ok``, ``warn``, ``bad``, ``neutral``; a failure is never
``ok``.
"""

from __future__ import annotations

from batches.importing import RowStatus
from batches.models import BatchStatus, EntryState, Outcome, RunState

BATCH_STATUS: dict[str, tuple[str, str]] = {
    BatchStatus.READY: ("Ready to launch", "neutral"),
    BatchStatus.RUNNING: ("Running", "warn"),
    BatchStatus.PAUSED: ("Paused", "warn"),
    BatchStatus.COMPLETED: ("Completed", "ok"),
    BatchStatus.CANCELED: ("Canceled", "bad"),
}

ENTRY_STATE: dict[str, tuple[str, str]] = {
    EntryState.INVALID: ("Invalid number", "bad"),
    EntryState.DUPLICATE: ("Duplicate", "neutral"),
    EntryState.DO_NOT_CALL: ("On the do-not-call list", "neutral"),
    EntryState.PENDING: ("Waiting", "neutral"),
    EntryState.DIALING: ("Dialing", "warn"),
    EntryState.IN_CALL: ("On a call", "warn"),
    EntryState.DONE: ("Done", "ok"),
    EntryState.FAILED: ("Failed", "bad"),
    EntryState.CANCELED: ("Canceled", "neutral"),
}

OUTCOME: dict[str, tuple[str, str]] = {
    Outcome.COMPLETED: ("Completed", "ok"),
    Outcome.BUSY: ("Busy", "bad"),
    Outcome.NO_ANSWER: ("No answer", "bad"),
    Outcome.FAILED: ("Failed", "bad"),
    Outcome.VOICEMAIL: ("Voicemail", "warn"),
    Outcome.CANCELED: ("Canceled", "neutral"),
}

RUN_STATE: dict[str, tuple[str, str]] = {
    RunState.DIALING: ("Dialing", "warn"),
    RunState.IN_CALL: ("On a call", "warn"),
    RunState.RETRY_WAIT: ("Waiting to retry", "warn"),
    RunState.DONE: ("Done", "ok"),
    RunState.FAILED: ("Failed", "bad"),
    RunState.MISSED: ("Missed (scheduler was down)", "bad"),
}

# A row of an uploaded list, before the batch exists (the CSV preview).
ROW_STATUS: dict[str, tuple[str, str]] = {
    RowStatus.VALID: ("Valid", "ok"),
    RowStatus.INVALID: ("Invalid number", "bad"),
    RowStatus.DUPLICATE: ("Duplicate", "neutral"),
    RowStatus.DO_NOT_CALL: ("On the do-not-call list", "neutral"),
}
