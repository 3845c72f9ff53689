"""Built-in tools the session itself can run (they act on the call), and the one
dispatch path every tool call of the model goes through (``run_tool``).

The contract: the function spec the model was given (``SessionContext.config.tools``:
the agent's built-ins from ``agents.builtin_tools``, MCP tools from the MCP servers'
input schemas) is the single source of truth for a tool's arguments. ``run_tool``
refuses a tool the call did not offer, validates the arguments against the declared
JSON schema (an error names the field and why) and only then runs the handler, which
reads exactly the declared properties. So a handler cannot disagree with its
declaration, and a model cannot reach a tool (or a transfer target) it was not given.

`SessionContext.tools` may override any built-in; other tools (send SMS, knowledge
search, MCP) are registered there by the code that builds the context.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from jsonschema import SchemaError, ValidationError
from jsonschema.validators import Draft202012Validator, extend, validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable

from agents.bridges.base import ToolCall
from calls.media import result as r
from calls.media.transfer import warm_result

if TYPE_CHECKING:
    from calls.media.session import CallSession

logger = logging.getLogger("calls.media")

_MAX_ERROR_CHARS = 500
#: the tool call whose handler is running (set by run_tool; its task and the handler's share it)
current_tool_call: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_tool_call", default=None)
# Tools whose arguments are keypad digits (see SessionContext.keep_keypad_digits).
_KEYPAD_TOOLS = frozenset({"send_dtmf"})


async def end_call(arguments: dict[str, Any], session: CallSession) -> dict[str, Any]:
    """Hang up once the caller has heard the agent's answer to this result (the goodbye
    that usually follows it): the tool returns at once so the model is not left waiting,
    and the session watches for that answer once the result is sent (calls.media.hangup)."""
    session.end_after_answer(r.END_AGENT_HANGUP)
    return {"ok": True, "status": "ending call after the current message"}


async def transfer_call(arguments: dict[str, Any], session: CallSession) -> dict[str, Any]:
    """Transfer to the configured destination named ``destination`` (an enum in the
    declared schema; the service refuses any other name as well)."""
    destination = str(arguments["destination"])
    ctx = session.context
    if ctx is not None and ctx.warm_transfer is not None and destination.strip().casefold() in ctx.warm_destinations:
        # The caller stays with the agent while the human is dialled (calls.media.transfer).
        await ctx.warm_transfer(destination, str(arguments.get("reason") or ""))
        session.record("transfer_dialing", destination=destination)
        return warm_result(destination)
    if ctx is None or ctx.transfer is None:
        raise r.ToolError("transfers are not available on this call")
    await session.wait_for_playback()
    await ctx.transfer(destination)
    session.record("transferred", destination=destination)
    session.request_end(r.END_TRANSFERRED)
    return {"ok": True, "transferred_to": destination}


async def send_dtmf(arguments: dict[str, Any], session: CallSession) -> dict[str, Any]:
    digits = str(arguments["digits"])
    await session.send_dtmf(digits)
    return {"ok": True, "sent": len(digits)}


async def collect_sensitive_input(arguments: dict[str, Any], session: CallSession) -> dict[str, Any]:
    """The PCI-style pause: the caller's next keypad entry is not stored and the
    recording's caller channel is silent until it is finished (``CallSession.sensitive_input``)."""
    session.begin_sensitive_input()
    return {"ok": True, "status": "the caller's next keypad entry is private; ask them to type it and press #"}


BUILTIN_TOOLS: dict[str, r.ToolHandler] = {
    "collect_sensitive_input": collect_sensitive_input,
    "end_call": end_call,
    "transfer_call": transfer_call,
    "send_dtmf": send_dtmf,
}

__all__ = ["BUILTIN_TOOLS", "argument_errors", "declared_spec", "ecma_pattern", "run_tool"]


def declared_spec(ctx: r.SessionContext, name: str) -> dict[str, Any] | None:
    """The function spec the model was given for ``name`` on this call, if any."""
    for spec in ctx.config.tools or ():
        if isinstance(spec, Mapping) and spec.get("name") == name:
            return dict(spec)
    return None


def _where(error: Any) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        # "'destination' is a required property": the field is in the message; name it first.
        missing = next((f for f in error.validator_value if f not in (error.instance or {})), "")
        return ".".join(filter(None, [path, str(missing)]))
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set((error.schema or {}).get("properties") or {})
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        return ".".join(filter(None, [path, ",".join(extra)]))
    return path


def ecma_pattern(pattern: str) -> str:
    """``pattern`` for Python's ``re`` with the meaning JSON Schema gives it (ECMA-262, as the
    model and pydantic read it): ``$`` is the end of the string. Python's ``$`` also matches
    before a final newline, so ``^[0-9*#]+$`` let "12\\n" through to the carrier."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            lead = "^" if pattern[i + 1:i + 2] == "^" else ""
            opening = "[" + lead + ("]" if pattern[i + 1 + len(lead):i + 2 + len(lead)] == "]" else "")
            out.append(opening)  # a "]" first in a class is a literal in Python
            i += len(opening)
            continue
        elif char == "$":
            out.append(r"\Z")
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(ecma_pattern(pattern))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def argument_errors(schema: Mapping[str, Any] | None, arguments: Any) -> list[str]:
    """"field: why" for everything wrong with ``arguments`` under the declared ``schema``."""
    schema = dict(schema or {"type": "object"})
    base = validator_for(schema, default=Draft202012Validator)
    cls = extend(base, {"pattern": _pattern})
    try:
        cls.check_schema(schema)
        # An explicit, empty registry: without one jsonschema still fetches remote $refs
        # over HTTP (its deprecated fallback), i.e. a tool's schema could make us send requests.
        validator = cls(schema, registry=Registry())
        errors = sorted(validator.iter_errors(arguments), key=lambda e: ([str(p) for p in e.absolute_path], e.message))
    except SchemaError as exc:  # an MCP server declared a broken schema: refuse, do not guess
        return [f"(schema): the tool's declared schema is invalid: {exc.message}"]
    except Unresolvable as exc:  # a $ref outside the schema: never fetched
        return [f"(schema): the tool's declared schema refers to {str(exc)[:120]}, which is not part of it"]
    return [f"{_where(e) or '(arguments)'}: {e.message}" for e in errors]


async def run_tool(
    session: CallSession, call: ToolCall, ctx: r.SessionContext, clock: Callable[[], float]
) -> str | dict[str, Any]:
    """Run one tool call with the context's timeout; always returns what the
    agent should be told (errors included) and records it on the timeline.

    A tool the call did not declare to the model, or arguments that do not match its
    declared schema, never reach a handler: the model gets an error naming the field,
    and the timeline a ``tool_refused`` event.
    """
    handler = ctx.tools.get(call.name) or BUILTIN_TOOLS.get(call.name)
    spec = declared_spec(ctx, call.name)
    started = clock()
    session.record("tool_call", name=call.name, call_id=call.call_id)
    ok = False
    output: str | dict[str, Any]
    stored_error = ""  # what the timeline keeps of a failure, when not the model's error itself
    arguments: Any = call.arguments
    if handler is None or spec is None:
        output = {"error": f"unknown tool {call.name!r}: it is not available on this call"}
        session.record("tool_refused", name=call.name, call_id=call.call_id, reason="not offered")
    elif problems := argument_errors(spec.get("parameters"), arguments):
        output = {"error": f"invalid arguments for {call.name}: " + "; ".join(problems)}
        fields = sorted({p.split(":", 1)[0] for p in problems})
        session.record("tool_refused", name=call.name, call_id=call.call_id, reason="invalid arguments",
                       fields=fields)
        if call.name in _KEYPAD_TOOLS and not ctx.keep_keypad_digits:
            # The refusal quotes the value; keypad digits (an account number, a PIN read
            # from the call's variables) are stored only if the agent keeps them.
            stored_error = f"invalid arguments for {call.name}: {', '.join(fields)} (value not stored)"
    else:
        running = current_tool_call.set(call.call_id)
        try:
            output = await asyncio.wait_for(handler(dict(arguments), session), ctx.tool_timeout_s)
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
        finally:
            current_tool_call.reset(running)
    if ok and isinstance(output, dict) and "error" in output:
        ok = False  # a handler that answers with an error (knowledge search) did not succeed
    # The error may quote the model's arguments; Postgres JSON cannot store NUL, and the
    # timeline must persist whatever the model sent.
    error = {} if ok else {"error": (stored_error or str(output.get("error") if isinstance(output, dict) else output))
                           [:_MAX_ERROR_CHARS].replace("\x00", "\\x00")}
    session.record("tool_result", name=call.name, call_id=call.call_id, ok=ok,
                   duration_ms=int((clock() - started) * 1000), **error)
    return output
