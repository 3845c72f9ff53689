"""The session's side of a warm transfer (``calls.services.transfer`` is the carrier's).

Contract: while a call's media session runs, it follows the call's transfer legs through
``SessionContext.transfer_changes`` (a poll, every ``transfer_poll_s``, in a side task:
never on the 20 ms audio path, and an idle poll costs one cache read). The legs live in
the database and their callbacks may land on any ``web`` process, so the session learns
of them by asking rather than by being told. What it does with a change:

- ``bridged``: the carrier has moved the caller into the conference with the human;
  the session ends as ``transferred`` (the caller's leg is not hung up, the AI leaves);
- a failure (no answer, busy, declined, failed, timed out): the caller never left the
  agent; the agent says so, in words we choose (said verbatim where the provider can),
  and the conversation goes on;
- ``dialing`` of a transfer someone else started (the dashboard or the API): the agent
  tells the caller to hold on while they are connected.

When the session ends any other way while a leg is still being dialled, the leg is
cancelled (``SessionContext.transfer_cancel``): no billable leg is left ringing for a
caller who is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agents.bridges.base import ProviderError
from calls.media import result as r

if TYPE_CHECKING:
    from calls.media.session import CallSession

logger = logging.getLogger("calls.media")

Change = dict[str, str]
ChangePoll = Callable[[], Awaitable[list[Change]]]

#: what the agent says when a leg never reached the caller, by the leg's final state
FAILURE_LINES: dict[str, str] = {
    "no_answer": "I'm sorry, {destination} didn't answer.",
    "busy": "I'm sorry, the line at {destination} is busy.",
    "declined": "I'm sorry, {destination} can't take the call right now.",
    "timeout": "I'm sorry, {destination} didn't pick up in time.",
    "failed": "I'm sorry, I couldn't reach {destination}.",
    "canceled": "I'm sorry, the call to {destination} was cancelled.",
}
CONTINUE_LINE = " I'm still here with you. How else can I help?"
HOLD_LINE = "Please hold on a moment while I connect you to {destination}."


def failure_line(state: str, destination: str) -> str | None:
    line = FAILURE_LINES.get(state)
    return None if line is None else line.format(destination=destination) + CONTINUE_LINE


async def watch_transfers(session: CallSession, poll: ChangePoll, interval_s: float) -> None:
    """Follow the call's transfer legs until the session ends (a side task of the session)."""
    while not session.ending:
        await asyncio.sleep(interval_s)
        if session.ending:
            break
        try:
            changes = await poll()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed poll is retried on the next tick
            logger.warning("transfer poll failed", extra={"call": session.call_public_id, "error": repr(exc)})
            continue
        for change in changes:
            await apply_change(session, change)


_CANCEL_TIMEOUT_S = 10.0


async def end_transfers(session: CallSession) -> None:
    """The session is ending (``CallSession._end``): cancel a leg still being dialled unless
    the caller was bridged. Only a session that saw a transfer asks the database."""
    ctx = session.context
    kinds = {event.kind for event in session.events}
    if (ctx is None or ctx.transfer_cancel is None or session.end_reason == r.END_TRANSFERRED
            or not kinds & {"transfer_dialing", "transfer_announced"}):
        return
    try:
        await asyncio.wait_for(ctx.transfer_cancel(), _CANCEL_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - the leg's own ring timeout still ends it
        logger.warning("cancelling transfer legs failed", extra={"call": session.call_public_id,
                                                               "error": repr(exc)})


async def apply_change(session: CallSession, change: Change) -> None:
    state, destination = change.get("state", ""), change.get("destination", "")
    if session.ending:
        return
    if state == "bridged":
        # the same timeline kind as a cold transfer: analytics counts transfers by it
        session.record("transferred", destination=destination, mode="warm")
        session.request_end(r.END_TRANSFERRED)
        return
    line = failure_line(state, destination)
    if line is None and state == "dialing" and change.get("started_by") != "agent":
        line = HOLD_LINE.format(destination=destination)
    if line is None:
        return
    session.record("transfer_announced", destination=destination, state=state)
    await say(session, line)


async def say(session: CallSession, line: str) -> None:
    """Have the agent say ``line`` once the caller has heard what came before."""
    await session.wait_for_playback()
    bridge = session.bridge
    if session.ending or bridge is None or not bridge.connected:
        return
    try:
        await bridge.create_response(line)
    except ProviderError as exc:
        session.record("provider_error", code=exc.code, retryable=exc.retryable, phase="transfer")


def warm_result(destination: str) -> dict[str, Any]:
    """The transfer tool's answer when a warm transfer has started dialling."""
    return {"ok": True, "status": "dialing",
            "instructions": f"{destination} is being called now. Tell the caller you are connecting them and "
                            "keep them company; they are put through as soon as someone takes the call. If "
                            "nobody does, you will hear so: then carry on helping the caller."}
