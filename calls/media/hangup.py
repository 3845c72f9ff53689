"""Hanging up once the caller has heard the agent's answer to ``end_call``.

The model calls ``end_call`` with its goodbye usually still to come: the tool's result makes
the provider answer once more, and the call may end only once the caller has heard that
answer. Which response is the answer cannot be told by counting response-done events:
providers differ in whether the response that carried the call ends with a done event of
its own, and when. OpenAI Realtime finishes it after the call, possibly after the result
was already sent back; some Gemini Live models send ``turnComplete`` after a ``toolCall``
and some do not. Counting took the carrying response's end for the goodbye and hung up
before a word of it was played (a CI run's carrier got 0 of the goodbye's 2,400 bytes).

So the answer is recognised from the moment the result was sent (the watch starts then,
``CallSession._run_tool``), by what it is: agent audio of an item the caller had not been
sent before, then a response finishing after that item started. An answer with no audio
(the goodbye came before the call) is a response finishing after the result was sent,
not counting the carrying response's own end when that was still to come (a tool call
arrived since the last response finished: ``CallSession.call_response_open``). Then the
call ends as soon as the caller has heard everything queued. Bounded: if no answer starts
speaking within ``ANSWER_START_S``, or it has not finished arriving within
``ANSWER_MAX_S``, the call ends after what is playing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from calls.media.session import CallSession

POLL_S = 0.05
#: no audio of a new item this long after the result was sent: the model is not answering
ANSWER_START_S = 5.0
#: the longest the answer may take to arrive once it started speaking
ANSWER_MAX_S = 30.0


def hang_up_after_answer(session: CallSession, reason: str) -> Coroutine[Any, Any, None]:
    """What ends the call with ``reason`` once the answer to the tool result just sent has
    been heard (see the module docstring). Called as the result is sent: what the session
    had received by then is taken now, not when the returned coroutine first runs."""
    items_before, dones_before = session.agent_item_seq, session.responses_done
    dones_needed = 2 if session.call_response_open else 1  # the carrying response's end, then the answer's
    return _hang_up(session, reason, items_before, dones_before + dones_needed)


async def _hang_up(session: CallSession, reason: str, items_before: int, silent_done_at: int) -> None:
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    while not session.ending:
        started = session.agent_item_seq > items_before
        if started and session.responses_done > session.agent_item_opened_at:
            break  # a response ended after the answer's audio began: it has all arrived
        if not started and session.responses_done >= silent_done_at:
            break  # the answer ended without a word
        waited = loop.time() - sent_at
        if waited > ANSWER_MAX_S or (not started and waited > ANSWER_START_S):
            break
        await asyncio.sleep(POLL_S)
    await session.wait_for_playback()
    session.request_end(reason)
