"""What the caller has actually heard of the agent's audio.

We send agent audio to the carrier faster than real time; the carrier queues it
and plays it out. To truncate the provider at the right place on barge-in we
model the carrier's play-out queue from the durations we sent, and correct the
model with the carrier's mark echoes (Twilio `mark`, Plivo `playedStream`,
the browser's `mark`). Pure bookkeeping: times are passed in (seconds,
monotonic), nothing here does I/O.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

# A mark echoed this much later than the model expected means the carrier
# really is behind (not just echo transit time).
_STALL_S = 0.25


@dataclass(slots=True)
class PlayItem:
    """One provider response item's audio as sent to the carrier."""

    item_id: str | None
    seq: int
    play_start: float  # when its first sample starts playing (model)
    first_sent_clock_ms: int  # call clock when its first chunk was sent
    sent_ms: float = 0.0
    since_mark_ms: float = 0.0
    acked_ms: float = -1.0  # offset of the last echoed mark, -1 = none yet
    acked_at: float = 0.0
    pending_marks: list[float] = field(default_factory=list)
    interrupted: bool = False


class PlaybackTracker:
    def __init__(self) -> None:
        self._queue_end = 0.0
        self._seq = itertools.count(1)
        self._mark_seq = itertools.count(1)
        self._marks: dict[str, tuple[PlayItem, float]] = {}
        self.current: PlayItem | None = None

    def on_sent(self, item_id: str | None, duration_ms: float, now: float, clock_ms: int) -> PlayItem:
        """Agent audio of `duration_ms` was handed to the carrier at `now`."""
        item = self.current
        start = max(now, self._queue_end)
        if item is None or item.item_id != item_id or item.interrupted:
            item = PlayItem(item_id=item_id, seq=next(self._seq), play_start=start, first_sent_clock_ms=clock_ms)
            self.current = item
        item.sent_ms += duration_ms
        item.since_mark_ms += duration_ms
        self._queue_end = start + duration_ms / 1000.0
        return item

    def new_mark(self, item: PlayItem) -> str:
        """Register a mark at the item's current end; returns its name."""
        name = f"m{next(self._mark_seq)}"
        self._marks[name] = (item, item.sent_ms)
        item.pending_marks.append(item.sent_ms)
        item.since_mark_ms = 0.0
        return name

    def on_mark(self, name: str, now: float) -> PlayItem | None:
        """A mark echo arrived. Unknown names (e.g. after a clear) are ignored."""
        entry = self._marks.pop(name, None)
        if entry is None:
            return None
        item, offset = entry
        if offset > item.acked_ms:
            item.acked_ms = offset
            item.acked_at = now
        item.pending_marks = [m for m in item.pending_marks if m > offset]
        # The carrier is clearly behind our model (a stall, a slow start): pull
        # the model back. Small lags are not corrected: a mark echo spends time
        # in flight and in our own receive queue, and correcting for that would
        # make the model trail the caller's ear.
        behind = now - (item.play_start + offset / 1000.0)
        if behind > _STALL_S:
            self._queue_end += behind
            item.play_start += behind
        return item

    def heard_ms(self, item: PlayItem, now: float) -> int:
        """Best estimate of how much of `item` has been played at `now`."""
        # The send-time model is the primary estimate (a carrier plays what it
        # receives at once); an echoed mark proves at least that much was played.
        est = (now - item.play_start) * 1000.0
        if item.acked_ms >= 0:
            est = max(est, item.acked_ms)
        return int(max(0.0, min(est, item.sent_ms)))

    def playing(self, now: float) -> bool:
        """Whether agent audio is (modelled to be) playing now."""
        item = self.current
        if item is None or item.interrupted:
            return False
        # An unechoed mark means the carrier is still playing — but only trust
        # that for a moment past the model, in case a far end never echoes.
        return now < self._queue_end or (bool(item.pending_marks) and now < self._queue_end + 1.0)

    def queued_ms(self, now: float) -> float:
        return max(0.0, (self._queue_end - now) * 1000.0)

    def clear(self, now: float) -> None:
        """The carrier's queue was flushed (barge-in)."""
        self._queue_end = now
        self._marks.clear()
        if self.current is not None:
            self.current.pending_marks.clear()
            self.current.interrupted = True
