"""PlaybackTracker: what the caller has heard, from send times and mark echoes."""

from __future__ import annotations

from calls.media.playback import PlaybackTracker


def test_heard_follows_playback_of_audio_sent_ahead() -> None:
    p = PlaybackTracker()
    item = p.on_sent("item_1", 1000.0, now=10.0, clock_ms=0)  # 1 s sent at once
    p.on_sent("item_1", 1000.0, now=10.1, clock_ms=100)  # queued behind it
    assert p.current is item and item.sent_ms == 2000.0
    assert p.heard_ms(item, 10.5) == 500
    assert p.heard_ms(item, 13.0) == 2000  # never more than was sent
    assert p.playing(11.9) and not p.playing(12.5)
    assert p.queued_ms(11.0) == 1000.0


def test_marks_floor_the_estimate_and_a_stall_pulls_the_model_back() -> None:
    p = PlaybackTracker()
    item = p.on_sent("a", 1000.0, now=0.0, clock_ms=0)
    name = p.new_mark(item)
    assert item.pending_marks == [1000.0] and item.since_mark_ms == 0.0
    # the echo for the 1000 ms mark arrives 1.6 s in: the carrier stalled ~600 ms
    assert p.on_mark(name, now=1.6) is item
    assert item.acked_ms == 1000.0 and item.pending_marks == []
    later = p.on_sent("a", 1000.0, now=1.6, clock_ms=1600)
    assert later is item
    # the model now starts the item 0.6 s later, so 0.5 s after the echo it has
    # played 1500 ms, not 2100
    assert p.heard_ms(item, 2.1) == 1500
    # an echo a little late (in flight) does not move the model
    p2 = PlaybackTracker()
    it2 = p2.on_sent("b", 1000.0, now=0.0, clock_ms=0)
    p2.on_mark(p2.new_mark(it2), now=1.1)
    assert p2.heard_ms(it2, 0.8) == 1000  # echoed mark proves the whole second was heard


def test_clear_stops_playback_and_forgets_marks() -> None:
    p = PlaybackTracker()
    item = p.on_sent("a", 3000.0, now=0.0, clock_ms=0)
    name = p.new_mark(item)
    p.clear(now=1.0)
    assert item.interrupted and not p.playing(1.0)
    assert p.on_mark(name, now=1.1) is None  # echoes of cleared marks are ignored
    # the next audio (a new item after the interrupt) starts playing now
    nxt = p.on_sent("b", 500.0, now=1.2, clock_ms=1200)
    assert nxt is not item and nxt.play_start == 1.2 and p.heard_ms(nxt, 1.45) == 250


def test_new_item_id_starts_a_new_play_item() -> None:
    p = PlaybackTracker()
    first = p.on_sent("a", 200.0, now=0.0, clock_ms=0)
    second = p.on_sent("b", 200.0, now=0.05, clock_ms=50)
    assert second is not first and second.seq == first.seq + 1
    assert second.play_start == 0.2  # queued behind the first item's audio
