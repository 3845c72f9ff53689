"""What the dashboard shows for call states and end reasons: a human label and a badge tone.

Kept next to ``calls.models``'s choices on purpose: ``voiceplatform/tests/test_present.py``
fails when a choice value (or an end reason the code can write) has no entry here, so a new
state cannot reach a page as a raw code. Tones: ``ok`` (green), ``warn``, ``bad`` (red),
``neutral``; a failure is never ``ok``.
"""

from __future__ import annotations

from calls.media import result as r
from calls.models import AnalysisStatus, Direction, Status

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
    "concurrency_limit": "Too many calls at once",
    "voicemail_left": "Left a voicemail",
    "voicemail_hangup": "Hung up on voicemail",
    "normal_clearing": "Call ended normally",
}
