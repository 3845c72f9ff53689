"""A clock a test moves: time as an input of the media session's timers.

``ManualTimer`` is a ``calls.media.dtmf.KeypadTimer`` whose time stands still until
the test calls :meth:`ManualTimer.advance`. The session runs on the media server's
loop in another thread; callbacks that come due run on the loop that scheduled them
(``call_soon_threadsafe``), and :meth:`ManualTimer.wait_armed` lets the test wait for
the session to have handled a key (it arms a timer per key) before moving time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Scheduled:
    when: float
    callback: Callable[[], None]
    loop: asyncio.AbstractEventLoop
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        if not self.cancelled:
            self.callback()


class ManualTimer:
    """Time stands still at ``start`` until :meth:`advance` moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._pending: list[_Scheduled] = []
        self._armed = 0
        self._changed = threading.Condition()

    def now(self) -> float:
        with self._changed:
            return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Scheduled:
        scheduled = _Scheduled(when, callback, asyncio.get_running_loop())
        with self._changed:
            self._pending.append(scheduled)
            self._armed += 1
            self._changed.notify_all()
        return scheduled

    @property
    def pending(self) -> int:
        """Timers armed and neither fired nor cancelled."""
        with self._changed:
            return sum(1 for s in self._pending if not s.cancelled)

    def wait_armed(self, count: int, timeout: float = 20.0) -> None:
        """Block until ``count`` timers have been armed in all (the session handled that many keys)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._armed >= count, timeout):
                raise AssertionError(f"{self._armed} timer(s) armed, expected {count}")

    def advance(self, seconds: float) -> None:
        """Move time on; timers now due run on their loops, earliest first."""
        with self._changed:
            self._now += seconds
            due = sorted((s for s in self._pending if s.when <= self._now), key=lambda s: s.when)
            self._pending = [s for s in self._pending if s.when > self._now]
        for scheduled in due:
            scheduled.loop.call_soon_threadsafe(scheduled.fire)
