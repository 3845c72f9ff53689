"""What the dashboard shows for call states and end reasons: a human label and a badge tone.

Kept next to ``calls.models``'s choices on purpose: ``voiceplatform/tests/test_present.py``
fails when a choice value (or an end reason the code can write) has no entry here, so a new
state cannot reach a page as a raw code. Tones: ``ok`` (green), ``warn``, ``bad`` (red),
``neutral``; a failure is never ``ok``.
"""

from __future__ import annotations

from calls.media import answer_gate as answer
from calls.media import result as r
from calls.models import AnalysisStatus, AnswerOutcome, Direction, Status, TransferLegState

CALL_STATUS: dict[str, tuple[str, str]] = {
    Status.QUEUED: ("Queued", "neutral"),
    Status.RINGING: ("Ringing", "warn"),
    Status.IN_PROGRESS: ("In progress", "warn"),
    Status.COMPLETED: ("Completed", "ok"),
    Status.BUSY: ("Busy", "bad"),
    Status.NO_ANSWER: ("No answer", "bad"),
    Status.FAILED: ("Failed", "bad"),
    Status.CANCELED: ("Canceled", "neutral"),
}

ANALYSIS_STATUS: dict[str, tuple[str, str]] = {
    AnalysisStatus.NONE: ("Not requested", "neutral"),
    AnalysisStatus.PENDING: ("Pending", "warn"),
    AnalysisStatus.DONE: ("Done", "ok"),
    AnalysisStatus.FAILED: ("Failed", "bad"),
    # Analysis that cannot run (no LLM key) is skipped, not failed (issue 13, point 3).
    "skipped": ("Skipped", "neutral"),
}

# A warm transfer's human leg: ringing is pending, bridged/completed reached the caller.
TRANSFER_LEG_STATE: dict[str, tuple[str, str]] = {
    TransferLegState.DIALING: ("Dialing", "warn"),
    TransferLegState.RINGING: ("Ringing", "warn"),
    TransferLegState.ANSWERED: ("Answered, hearing who calls", "warn"),
    TransferLegState.BRIDGED: ("Talking with the caller", "ok"),
    TransferLegState.COMPLETED: ("Completed", "ok"),
    TransferLegState.NO_ANSWER: ("No answer", "bad"),
    TransferLegState.BUSY: ("Busy", "bad"),
    TransferLegState.DECLINED: ("Declined", "bad"),
    TransferLegState.FAILED: ("Failed", "bad"),
    TransferLegState.TIMEOUT: ("Timed out", "bad"),
    TransferLegState.CANCELED: ("Canceled (caller left)", "neutral"),
}

# Who answered an outbound call (answer classification). Not a failure either way: a
# machine is simply not a person, so only a person is green.
ANSWER_OUTCOME: dict[str, tuple[str, str]] = {
    AnswerOutcome.HUMAN: ("Person", "ok"),
    AnswerOutcome.VOICEMAIL: ("Voicemail", "warn"),
    AnswerOutcome.SCREENING: ("Call screening", "neutral"),
    AnswerOutcome.IVR: ("Phone menu", "neutral"),
    AnswerOutcome.FAX: ("Fax or modem", "warn"),
    AnswerOutcome.SILENCE: ("Silence", "warn"),
}

# Which recording consent applied to a call (Call.recording_mode; agents.models.RecordingMode).
RECORDING_MODE: dict[str, tuple[str, str]] = {
    "off": ("Not recorded", "neutral"),
    "on": ("Recorded", "neutral"),
    "after_announcement": ("Recorded after the announcement", "neutral"),
    "": ("Not decided", "neutral"),
}

DIRECTION: dict[str, tuple[str, str]] = {
    Direction.INBOUND: ("Inbound", "neutral"),
    Direction.OUTBOUND: ("Outbound", "neutral"),
    Direction.WEB: ("Web (browser)", "neutral"),
    Direction.LIVEKIT: ("LiveKit room", "neutral"),
}

# Why a call ended. Session reasons (calls.media.result), carrier reasons
# (calls.carriers.base.UNANSWERED_END_REASONS) and the services' own.
END_REASON: dict[str, str] = {
    "completed": "Completed normally",
    r.END_CALLER_HANGUP: "Caller hung up",
    r.END_AGENT_HANGUP: "Agent ended the call",
    r.END_TRANSFERRED: "Transferred",
    r.END_PROVIDER_ERROR: "AI provider error",
    r.END_MAX_DURATION: "Maximum call length reached",
    r.END_SILENCE_TIMEOUT: "Caller was silent too long",
    r.END_STREAM_TIMEOUT: "Audio stream never arrived",
    r.END_STREAM_ELSEWHERE: "Handled by another server",
    r.END_MEDIA_TIMEOUT: "Audio stopped arriving",
    r.END_PROTOCOL_ERROR: "Carrier sent unreadable data",
    r.END_INTERNAL_ERROR: "Internal error",
    r.END_SETUP_ERROR: "Call could not be set up",
    r.END_SERVER_SHUTDOWN: "Server restarted (drain limit reached)",
    r.END_ROOM_CLOSED: "LiveKit room closed",
    r.END_CONNECTION_LOST: "Connection to LiveKit lost",
    r.END_JOIN_FAILED: "LiveKit refused the agent's join",
    "carrier_stop": "Carrier ended the stream",
    "caller_stop": "Caller ended the stream",
    "busy": "Line busy",
    "no_answer": "No answer",
    "carrier_failed": "Carrier could not connect the call",
    "carrier_rejected": "Carrier refused to place the call",
    "canceled": "Canceled before it was answered",
    "failed": "Failed",
    "hangup_requested": "Hung up from the dashboard or API",
    "stale": "Ended: no sign of life from the call",
    "web_never_connected": "Browser never connected",
    "livekit_never_joined": "Caller never joined the room",
    "concurrency_limit": "Too many calls at once",
    answer.END_FAX: "Fax or modem answered",
    answer.END_ANSWERED_SILENCE: "Nobody spoke after answering",
    "voicemail_left": "Left a voicemail",
    "voicemail_hangup": "Hung up on voicemail",
    "normal_clearing": "Call ended normally",
}
