"""Built-in tools an agent may be given, as JSON-schema function specs.

These are the specs the bridges hand to the model (``SessionConfig.tools``).
Executing them is the call session's job (``calls/``; ``search_knowledge`` is
answered by ``knowledge/``); the names here are the contract between the two.
"""

from __future__ import annotations

import copy
from typing import Any

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"
SEND_DTMF = "send_dtmf"
SEARCH_KNOWLEDGE = "search_knowledge"
SEND_SMS = "send_sms"

BUILTIN_TOOLS: dict[str, dict[str, Any]] = {
    END_CALL: {
        "name": END_CALL,
        "description": "Hang up the call. Use after saying goodbye, or when the caller asks to end the call.",
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {"type": "string", "description": "Why the call is ending, in a few words."},
            },
            "required": [],
            "additionalProperties": False,
        },
    },
    TRANSFER_CALL: {
        "name": TRANSFER_CALL,
        "description": "Transfer the caller to a human or another phone number. Tell the caller first.",
        "parameters": {
            "type": "object",
            "properties": {
                "destination": {
                    "type": "string",
                    "description": "E.164 phone number (e.g. +14155550100) or a named destination configured for this agent.",
                },
                "reason": {"type": "string", "description": "Short summary for whoever takes the call."},
            },
            "required": ["destination"],
            "additionalProperties": False,
        },
    },
    SEND_DTMF: {
        "name": SEND_DTMF,
        "description": "Press keypad keys on the call, e.g. to navigate a phone menu.",
        "parameters": {
            "type": "object",
            "properties": {
                "digits": {
                    "type": "string",
                    "pattern": "^[0-9*#wW]+$",
                    "description": "Keys to press: 0-9, * and #; w waits half a second.",
                },
            },
            "required": ["digits"],
            "additionalProperties": False,
        },
    },
    SEARCH_KNOWLEDGE: {
        "name": SEARCH_KNOWLEDGE,
        "description": "Search the agent's knowledge bases for facts needed to answer the caller.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look up, as a short question or keywords."},
                "top_k": {"type": "integer", "minimum": 1, "maximum": 10, "default": 4},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    },
    SEND_SMS: {
        "name": SEND_SMS,
        "description": "Send a text message to the caller's phone (e.g. a link or a confirmation number).",
        "parameters": {
            "type": "object",
            "properties": {
                "body": {"type": "string", "maxLength": 1600, "description": "The message text."},
            },
            "required": ["body"],
            "additionalProperties": False,
        },
    },
}

BUILTIN_TOOL_CHOICES: list[tuple[str, str]] = [
    (END_CALL, "End the call"),
    (TRANSFER_CALL, "Transfer the call"),
    (SEND_DTMF, "Send DTMF digits"),
    (SEARCH_KNOWLEDGE, "Search knowledge bases"),
    (SEND_SMS, "Send an SMS to the caller"),
]


def tool_specs(names: list[str]) -> list[dict[str, Any]]:
    """Deep copies of the specs for ``names`` (unknown names raise ``KeyError`` naming them)."""
    unknown = [n for n in names if n not in BUILTIN_TOOLS]
    if unknown:
        raise KeyError(f"unknown built-in tool(s): {', '.join(unknown)}")
    return [copy.deepcopy(BUILTIN_TOOLS[n]) for n in names]
