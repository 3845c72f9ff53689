"""Vendor-neutral steps that script what a fake provider does next.

A fake keeps a FIFO of steps. Each *trigger* — the client asking for a
response (OpenAI ``response.create``, Hume ``assistant_input``, Gemini client
text), a tool result arriving, or the fake's simple VAD deciding the caller
finished a turn — runs steps until one that produces a model turn
(:class:`AgentTurn` or :class:`FunctionCall`) has run. Steps that do not end a
turn (:class:`ProviderFailure` that is not fatal, :class:`GoAway`) run and the
fake moves on to the next one. With an empty script a trigger does nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AgentTurn:
    """The fake agent speaks.

    ``audio`` is raw audio in the fake's output format (µ-law 8 kHz for OpenAI
    by default, PCM16 24 kHz for Gemini, PCM16 for Hume — the Hume fake wraps
    each chunk in a WAV header). It is sent in ``chunk_bytes`` pieces with
    ``pace`` seconds between them; while a paced turn is streaming, caller audio
    triggers a barge-in (the turn stops and is reported as cancelled or
    interrupted, as the vendor does).
    """

    audio: bytes = b""
    transcript: str = ""
    chunk_bytes: int = 800
    pace: float = 0.0
    usage: dict[str, Any] = field(
        default_factory=lambda: {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10}
    )


@dataclass
class FunctionCall:
    """The fake agent calls a function; the next trigger comes with the result."""

    name: str
    arguments: dict[str, Any]
    call_id: str = "call_1"
    #: OpenAI only: the response that carries the call is finished (``response.done``)
    #: late, after the client's next message following the call's output, as a server
    #: slow to close it may: a client that asks for the next response at once is refused
    #: (``conversation_already_has_active_response``), and one that counts response-done
    #: events reads this one after it already answered the call.
    done_late: bool = False
    usage: dict[str, Any] = field(
        default_factory=lambda: {"total_tokens": 12, "input_tokens": 10, "output_tokens": 2}
    )


@dataclass
class ProviderFailure:
    """The vendor reports an error.

    Non-fatal: an in-band error message (where the vendor has one) and the
    session goes on. Fatal: the socket is closed with ``close_code``.
    """

    message: str = "internal server error"
    code: str = "server_error"
    fatal: bool = False
    close_code: int = 1011


@dataclass
class GoAway:
    """Gemini only: announce the connection will end, then close it after ``delay``."""

    time_left: str = "1s"
    delay: float = 0.05


@dataclass
class Disconnect:
    """Drop the connection abruptly (no vendor error message)."""

    close_code: int = 1011
    reason: str = "dropped"


@dataclass
class Until:
    """Hold the script until ``event`` is set (by the test, from whatever it observes: the
    call session's VAD heard the caller, say), so what follows is ordered after it rather
    than timed. The fake fails the connection if it is not set within ``timeout`` seconds."""

    event: threading.Event
    what: str = "the test's event"
    timeout: float = 20.0


Step = AgentTurn | FunctionCall | ProviderFailure | GoAway | Disconnect | Until
