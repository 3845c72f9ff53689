"""Transcript turns on the call clock (pure bookkeeping for the session).

Caller turns take their offsets from speech detection (our VAD, else the
provider's); agent turns from when their audio was sent and how much of it the
caller heard (`PlaybackTracker`), so an interrupted turn ends where the caller
stopped hearing it — the same place the provider was truncated.
"""

from __future__ import annotations

from calls.media.playback import PlaybackTracker, PlayItem
from calls.media.result import TranscriptTurn


class Transcript:
    def __init__(self) -> None:
        self.turns: list[TranscriptTurn] = []
        self._agent: dict[str | None, TranscriptTurn] = {}
        #: the caller turn in progress (call-clock ms), from speech detection
        self.speech_start_ms: int | None = None
        self.speech_end_ms: int | None = None

    def caller_final(self, text: str, now_ms: int) -> TranscriptTurn:
        start = self.speech_start_ms if self.speech_start_ms is not None else now_ms
        end = self.speech_end_ms if self.speech_end_ms is not None and self.speech_end_ms >= start else now_ms
        turn = TranscriptTurn("caller", text, start, end)
        self.turns.append(turn)
        self.speech_start_ms = self.speech_end_ms = None
        return turn

    def caller_keypad(self, text: str, start_ms: int, end_ms: int) -> TranscriptTurn:
        """A keypad entry: a caller turn of its own, leaving any speech turn in progress alone."""
        turn = TranscriptTurn("caller", text, start_ms, end_ms)
        self.turns.append(turn)
        return turn

    def agent_final(self, text: str, item_id: str | None, playback: PlaybackTracker, now: float, now_ms: int,
                    interrupted_items: set[str | None]) -> TranscriptTurn:
        item = playback.current
        if item is not None and item.item_id == item_id:
            start = item.first_sent_clock_ms
            interrupted = item.interrupted
            end = start + (playback.heard_ms(item, now) if interrupted else int(item.sent_ms))
        else:
            start = end = now_ms
            interrupted = item_id in interrupted_items
        turn = TranscriptTurn("agent", text, start, end, interrupted)
        self._agent[item_id] = turn
        self.turns.append(turn)
        return turn

    def cut(self, item: PlayItem, heard_ms: int) -> None:
        """The agent's turn for `item` stopped after `heard_ms` (barge-in, hang-up)."""
        turn = self._agent.get(item.item_id)
        if turn is not None:
            turn.interrupted = True
            turn.end_ms = item.first_sent_clock_ms + heard_ms
