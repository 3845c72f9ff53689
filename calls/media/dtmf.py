"""Keypad input from the caller, collected into entries for the agent.

A caller typing an account number presses many keys; the model should get one
user turn for the whole entry, not one per key. :class:`DtmfCollector` is the
pure part (times are passed in): an entry ends on the terminator key (``#``),
after ``timeout_s`` without a key, or at ``max_keys``. :class:`KeypadInput`
adds the inter-key timer (re-armed per key; nothing runs per audio frame) and
hands finished entries to a callback. The timer's time source is a
:class:`KeypadTimer`: the event loop's clock in calls, a clock the test moves in
tests (``calls.testing.clocks.ManualTimer``), so no test sleeps between keys.

Defaults follow what Vapi's keypad input does (2 s, ``#``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

EntryEnd = Literal["terminator", "timeout", "max_keys"]

# A timer may fire a hair before its deadline by the loop's clock resolution.
_EARLY_S = 0.001


@dataclass(frozen=True, slots=True)
class DtmfSettings:
    """How keypad input reaches the agent.

    ``enabled=False`` keeps key presses on the timeline only. ``terminator``
    ends an entry at once (``""`` for none); ``timeout_s`` ends it after that
    long without a key (``0``: only the terminator or ``max_keys`` end it).
    """

    enabled: bool = True
    terminator: str = "#"
    timeout_s: float = 2.0
    max_keys: int = 32

    def __post_init__(self) -> None:
        if len(self.terminator) > 1:
            raise ValueError(f"terminator must be one key or empty, got {self.terminator!r}")
        if self.timeout_s < 0:
            raise ValueError(f"timeout_s must not be negative, got {self.timeout_s}")
        if self.max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {self.max_keys}")


@dataclass(frozen=True, slots=True)
class KeypadEntry:
    """One finished entry: the keys as pressed (terminator included), why it
    ended, and when its first key came (call-clock ms)."""

    keys: str
    ended_by: EntryEnd
    started_ms: int

    @property
    def text(self) -> str:
        """What the model is told. Keys are spaced so they are read one by one."""
        return f"[The caller pressed keypad keys: {' '.join(self.keys)}]"

    @property
    def redacted_text(self) -> str:
        """What is stored when the agent does not keep keypad digits: how many, not which."""
        return f"[The caller pressed {len(self.keys)} keypad key{'s' if len(self.keys) != 1 else ''}]"


class DtmfCollector:
    """Collects keys into :class:`KeypadEntry` values; all times are passed in."""

    def __init__(self, settings: DtmfSettings) -> None:
        self.settings = settings
        self._keys: list[str] = []
        self._started_ms = 0
        self._last_at = 0.0

    @property
    def pending(self) -> str:
        return "".join(self._keys)

    @property
    def deadline(self) -> float | None:
        """When the pending entry times out (same clock as ``now``), if it can."""
        if not self._keys or self.settings.timeout_s <= 0:
            return None
        return self._last_at + self.settings.timeout_s

    def press(self, key: str, now: float, now_ms: int) -> KeypadEntry | None:
        """Add a key; the finished entry if this key ended it."""
        if not self._keys:
            self._started_ms = now_ms
        self._keys.append(key)
        self._last_at = now
        if key == self.settings.terminator:
            return self._finish("terminator")
        if len(self._keys) >= self.settings.max_keys:
            return self._finish("max_keys")
        return None

    def expire(self, now: float) -> KeypadEntry | None:
        """The pending entry if its inter-key timeout has passed by ``now``."""
        deadline = self.deadline
        if deadline is None or now < deadline - _EARLY_S:
            return None
        return self._finish("timeout")

    def _finish(self, ended_by: EntryEnd) -> KeypadEntry:
        entry = KeypadEntry("".join(self._keys), ended_by, self._started_ms)
        self._keys.clear()
        return entry


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class KeypadTimer(Protocol):
    """The inter-key timeout's time source: ``now()`` in seconds, and ``call_at(when,
    callback)`` to run ``callback`` on the running loop once ``now()`` reaches ``when``."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable: ...


class LoopTimer:
    """The running event loop's clock and timers (what calls use)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        return asyncio.get_running_loop().call_at(when, callback)


class KeypadInput:
    """A :class:`DtmfCollector` with its inter-key timer (``timer``, the loop's by default).

    ``on_entry`` is called (synchronously, from :meth:`press` or the timer)
    with each finished entry; ``clock_ms`` gives the call-clock time.
    """

    def __init__(self, settings: DtmfSettings, on_entry: Callable[[KeypadEntry], None],
                 clock_ms: Callable[[], int], timer: KeypadTimer | None = None) -> None:
        self.collector = DtmfCollector(settings)
        self._on_entry = on_entry
        self._clock_ms = clock_ms
        self._clock = timer or LoopTimer()
        self._timer: Cancellable | None = None

    def press(self, key: str) -> None:
        self.cancel()
        entry = self.collector.press(key, self._clock.now(), self._clock_ms())
        if entry is not None:
            self._on_entry(entry)
        elif (deadline := self.collector.deadline) is not None:
            self._timer = self._clock.call_at(deadline, self._timed_out)

    def cancel(self) -> None:
        """Stop the timer (the pending keys stay; a call ending drops them)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        entry = self.collector.expire(self._clock.now())
        if entry is not None:
            self._on_entry(entry)
