"""Keypad entries: the pure collector (times passed in) and its loop timer."""

from __future__ import annotations

import asyncio

import pytest

from calls.media.dtmf import DtmfCollector, DtmfSettings, KeypadEntry, KeypadInput


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


def test_keypad_input_times_out_on_the_loop_and_rearms_per_key():
    async def main() -> list[tuple[KeypadEntry, float]]:
        loop = asyncio.get_running_loop()
        got: list[tuple[KeypadEntry, float]] = []
        keypad = KeypadInput(DtmfSettings(timeout_s=0.1), lambda e: got.append((e, loop.time())), lambda: 7)
        start = loop.time()
        keypad.press("1")
        await asyncio.sleep(0.06)
        keypad.press("2")  # re-arms: no entry at 0.1 s
        await asyncio.sleep(0.06)
        assert got == []
        await asyncio.sleep(0.1)
        keypad.press("3")
        keypad.press("#")  # the terminator cancels the timer
        await asyncio.sleep(0.15)
        return [(e, t - start) for e, t in got]

    (first, at), (second, _) = asyncio.run(main())
    assert first == KeypadEntry("12", "timeout", 7) and 0.15 <= at < 0.3
    assert second == KeypadEntry("3#", "terminator", 7)
