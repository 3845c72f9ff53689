"""Keypad entries: the pure collector (times passed in) and its loop timer."""

from __future__ import annotations

import asyncio

import pytest

from calls.media.dtmf import DtmfCollector, DtmfSettings, KeypadEntry, KeypadInput
from calls.testing.clocks import ManualTimer


def test_terminator_ends_the_entry_at_once_and_is_kept():
    c = DtmfCollector(DtmfSettings())
    assert c.press("1", 0.0, 100) is None
    assert c.press("2", 0.5, 600) is None
    entry = c.press("#", 0.9, 1000)
    assert entry == KeypadEntry("12#", "terminator", started_ms=100)
    assert entry.text == "[The caller pressed keypad keys: 1 2 #]"
    assert c.pending == "" and c.deadline is None
    # a lone terminator is an entry too ("press pound to continue")
    assert c.press("#", 5.0, 5000) == KeypadEntry("#", "terminator", 5000)


def test_timeout_counts_from_the_last_key():
    c = DtmfCollector(DtmfSettings(timeout_s=2.0))
    c.press("4", 10.0, 0)
    c.press("2", 11.5, 1500)
    assert c.deadline == 13.5
    assert c.expire(12.0) is None  # 2 s after the first key, but only 0.5 s after the last
    assert c.expire(13.5) == KeypadEntry("42", "timeout", 0)
    assert c.expire(20.0) is None and c.deadline is None  # nothing pending


def test_max_keys_ends_the_entry_and_the_next_key_starts_a_new_one():
    c = DtmfCollector(DtmfSettings(max_keys=3))
    assert c.press("1", 0.0, 0) is None and c.press("2", 0.1, 100) is None
    assert c.press("3", 0.2, 200) == KeypadEntry("123", "max_keys", 0)
    assert c.press("4", 9.0, 900) is None
    assert c.pending == "4"


def test_other_terminators_and_none():
    star = DtmfCollector(DtmfSettings(terminator="*"))
    assert star.press("#", 0, 0) is None  # an ordinary key now
    assert star.press("*", 0, 0) == KeypadEntry("#*", "terminator", 0)
    none = DtmfCollector(DtmfSettings(terminator="", timeout_s=0, max_keys=2))
    assert none.press("#", 0, 0) is None and none.deadline is None  # no timeout either
    assert none.expire(1e9) is None
    assert none.press("#", 0, 0) == KeypadEntry("##", "max_keys", 0)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="terminator"):
        DtmfSettings(terminator="##")
    with pytest.raises(ValueError, match="timeout_s"):
        DtmfSettings(timeout_s=-1)
    with pytest.raises(ValueError, match="max_keys"):
        DtmfSettings(max_keys=0)


def test_keypad_input_times_out_on_its_timer_and_rearms_per_key():
    timer = ManualTimer(start=50.0)

    async def main() -> list[tuple[KeypadEntry, float]]:
        got: list[tuple[KeypadEntry, float]] = []
        keypad = KeypadInput(DtmfSettings(timeout_s=0.5), lambda e: got.append((e, timer.now())), lambda: 7,
                             timer)

        async def advance(seconds: float) -> None:
            timer.advance(seconds)
            await asyncio.sleep(0)  # due timers run on this loop

        keypad.press("1")
        await advance(0.25)
        keypad.press("2")  # re-arms: no entry 0.5 s after the first key
        await advance(0.25)
        assert got == [] and timer.pending == 1
        await advance(0.25)  # 0.5 s after the last key
        keypad.press("3")
        keypad.press("#")  # the terminator cancels the timer
        assert timer.pending == 0
        await advance(5.0)
        return got

    (first, at), (second, _) = asyncio.run(main())
    assert first == KeypadEntry("12", "timeout", 7) and at == 50.75
    assert second == KeypadEntry("3#", "terminator", 7)


def test_keypad_input_arms_its_timer_on_the_event_loop_by_default():
    async def main() -> tuple[float | None, float | None]:
        keypad = KeypadInput(DtmfSettings(timeout_s=2.0), lambda e: None, lambda: 0)
        keypad.press("1")
        handle = keypad._timer
        assert isinstance(handle, asyncio.TimerHandle)
        keypad.cancel()
        return handle.when(), keypad.collector.deadline

    when, deadline = asyncio.run(main())
    assert when is not None and when == deadline  # the loop's clock (loop.call_at), at the collector's deadline
