"""The filler line a caller hears while a slow tool runs ("One moment while I look that up.").

Contract (what :class:`FillerLine` guarantees for one tool call):

* Only a tool with a line (``SessionContext.fillers[name]``, a custom HTTP tool's
  "say while waiting") that has not answered after ``SessionContext.filler_after_s``
  gets it; a tool that answers in time never does.
* Once: at most one line per wait. A second tool running at the same time gets none
  (the caller hears one "one moment", not two), and the model is not asked to say it
  (the tool's description no longer tells it to), so it is not said twice.
* Never over anyone: while the caller speaks, or the agent's own audio is still playing,
  the line waits (the tool still running); if the tool answers first, it is dropped.
  Once it plays it is ordinary agent audio: a barge-in stops it like any reply.
* Before the result: the tool's result reaches the model only after the line's response
  is done (bounded by ``SETTLE_S``; ``FIRST_AUDIO_S`` when no audio of it comes, i.e. the
  provider refused it), so the answer follows the line at the carrier instead of racing
  it (OpenAI Realtime refuses a second response while one is active).

The line goes through :meth:`agents.bridges.base.Bridge.say_aside` (OpenAI: an out-of-band
response; Deepgram and Hume: a verbatim injected agent message; Gemini Live: a client turn).
Timeline: ``filler_spoken`` {name, call_id} when it is asked for. Nothing here runs per
audio frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from agents.bridges.base import ProviderError, ToolCall

if TYPE_CHECKING:
    from calls.media.session import CallSession

logger = logging.getLogger("calls.media")

#: how often a waiting line checks whether the line is clear
POLL_S = 0.05
#: the longest a tool result waits for its filler line's response to finish
SETTLE_S = 8.0
#: a line with no audio after this long was not said (refused): the result goes on
FIRST_AUDIO_S = 2.0


class FillerLine:
    """The filler of one tool call; :meth:`for_call` starts it, :meth:`settle` ends it."""

    def __init__(self, session: CallSession, call: ToolCall, text: str, after_s: float) -> None:
        self.session = session
        self.call = call
        self.text = text
        self.after_s = after_s
        self.said = False
        self._task = asyncio.ensure_future(self._run())

    @classmethod
    def for_call(cls, session: CallSession, call: ToolCall) -> FillerLine | None:
        """Start the line's timer for ``call`` if its tool has a line and no other line is
        pending or playing in this session."""
        ctx = session.context
        text = (ctx.fillers.get(call.name) or "").strip() if ctx is not None else ""
        if not text or session.filler is not None:
            return None
        assert ctx is not None
        line = cls(session, call, text, ctx.filler_after_s)
        session.filler = line
        return line

    async def _run(self) -> None:
        session = self.session
        await asyncio.sleep(self.after_s)  # a timer, not a wait for something: the tool may answer first
        while not session.line_clear():
            if session.ending:
                return
            await asyncio.sleep(POLL_S)
        bridge = session.bridge
        if session.ending or bridge is None or not bridge.connected:
            return
        audio_before, responses_before = session.agent_audio_ms, session.responses_done
        self.said = True
        session.record("filler_spoken", name=self.call.name, call_id=self.call.call_id)
        try:
            await bridge.say_aside(self.text)
        except ProviderError as exc:
            session.record("provider_warning", code=exc.code, message=exc.message[:200])
            return
        # Done once the line's audio has come and a response has finished since it was asked
        # for. No audio soon (the provider refused it: Deepgram answers InjectionRefused when
        # it thinks someone is speaking) ends the wait early, so the result is not held up.
        loop = asyncio.get_running_loop()
        asked = loop.time()
        while not session.ending:
            heard = session.agent_audio_ms > audio_before
            if heard and session.responses_done > responses_before:
                return
            waited = loop.time() - asked
            if waited > SETTLE_S or (not heard and waited > FIRST_AUDIO_S):
                return
            await asyncio.sleep(POLL_S)

    async def settle(self) -> None:
        """The tool answered: drop a line not yet said; let one being said finish (bounded)."""
        try:
            if self.said:
                with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._task), SETTLE_S)
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Forget the line (the tool call was cancelled, or it has settled)."""
        if not self._task.done():
            self._task.cancel()
        if self.session.filler is self:
            self.session.filler = None
