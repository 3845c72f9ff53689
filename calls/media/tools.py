"""Built-in tools the session itself can run (they act on the call).

`SessionContext.tools` may override any of them; other tools (send SMS,
knowledge search, MCP) are registered there by the code that builds the context.
"""

from __future__ import annotations

import re
import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agents.bridges.base import ToolCall
from calls.media import result as r

if TYPE_CHECKING:
    from calls.media.session import CallSession

logger = logging.getLogger("calls.media")

_E164_OR_SIP = re.compile(r"^(\+[1-9]\d{6,14}|sips?:[^\s]+)$")
_DTMF = re.compile(r"^[0-9*#A-Dw]{1,32}$")


async def end_call(arguments: dict[str, Any], session: CallSession) -> dict[str, Any]:
    """Hang up once the caller has heard what the agent already said."""

    # The tool result makes the model respond once more (usually the goodbye):
    # wait for that response, then for the caller to hear it.
    next_response = session.wait_for_next_response()

    async def finish() -> None:
        await next_response
        await session.wait_for_playback()
        session.request_end(r.END_AGENT_HANGUP)

    # Not awaited: the tool returns at once so the model is not left waiting,
    # and the goodbye keeps playing while we wait for it to finish.
    session._spawn(finish(), "end_call")
    return {"ok": True, "status": "ending call after the current message"}


async def transfer_call(arguments: dict[str, Any], session: CallSession) -> dict[str, Any]:
    target = str(arguments.get("to") or arguments.get("number") or "").strip()
    if not _E164_OR_SIP.match(target):
        raise r.ToolError(f"transfer target must be an E.164 number or SIP URI, got {target!r}")
    ctx = session.context
    if ctx is None or ctx.transfer is None:
        raise r.ToolError("transfers are not available on this call")
    await session.wait_for_playback()
    await ctx.transfer(target)
    session.record("transferred")
    session.request_end(r.END_TRANSFERRED)
    return {"ok": True}


async def send_dtmf(arguments: dict[str, Any], session: CallSession) -> dict[str, Any]:
    digits = str(arguments.get("digits") or "").strip()
    if not _DTMF.match(digits):
        raise r.ToolError(f"digits must be 1-32 of 0-9 * # A-D (w = pause), got {digits!r}")
    await session.send_dtmf(digits)
    return {"ok": True, "sent": len(digits)}


BUILTIN_TOOLS: dict[str, r.ToolHandler] = {
    "end_call": end_call,
    "transfer_call": transfer_call,
    "send_dtmf": send_dtmf,
}

__all__ = ["BUILTIN_TOOLS"]


async def run_tool(
    session: CallSession, call: ToolCall, ctx: r.SessionContext, clock: Callable[[], float]
) -> str | dict[str, Any]:
    """Run one tool call with the context's timeout; always returns what the
    agent should be told (errors included) and records it on the timeline."""
    handler = ctx.tools.get(call.name) or BUILTIN_TOOLS.get(call.name)
    started = clock()
    session.record("tool_call", name=call.name, call_id=call.call_id)
    ok = False
    output: str | dict[str, Any]
    if handler is None:
        output = {"error": f"unknown tool {call.name!r}"}
    else:
        try:
            output = await asyncio.wait_for(handler(dict(call.arguments), session), ctx.tool_timeout_s)
            ok = True
        except (TimeoutError, asyncio.TimeoutError):
            output = {"error": f"tool {call.name!r} timed out after {ctx.tool_timeout_s:g}s"}
        except r.ToolError as exc:
            output = {"error": str(exc)}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken tool must not end the call
            logger.exception("tool handler failed", extra={"call": session.call_public_id, "tool": call.name})
            output = {"error": f"tool {call.name!r} failed: {exc.__class__.__name__}"}
    error = {} if ok else {"error": str(output.get("error") if isinstance(output, dict) else output)}
    session.record("tool_result", name=call.name, call_id=call.call_id, ok=ok,
                   duration_ms=int((clock() - started) * 1000), **error)
    return output
