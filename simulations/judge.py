"""The LLM judge: scores a simulated call's transcript against the scenario's rubric.

One chat request per scenario run, through the official ``openai`` SDK with the org's own
OpenAI credential (``calls.analysis.openai_client``: a base_url override goes through the
outbound guard), asking for JSON that matches a schema: for every criterion, pass or fail
and a quote from the transcript that supports it.

A verdict is only as good as its evidence: a criterion the judge marks passed with a quote
that is not in the transcript is stored as failed, with the reason saying so. A judge that
cannot run (no key, vendor refused, reply off-schema) raises ``JudgeError``; the scenario
run is then an ``error``, never a pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import jsonschema
import openai

from calls.analysis import DEFAULT_ANALYSIS_MODEL, openai_client
from orgs.credentials import MissingCredential, get_credential

JUDGE_MODEL = DEFAULT_ANALYSIS_MODEL
SYSTEM_PROMPT = (
    "You judge a test phone call between an AI agent and a simulated caller. For each numbered criterion, "
    "decide pass or fail from the transcript alone. Quote the transcript words that show it, exactly as "
    "written (empty only when nothing in the transcript bears on it), and give a one-sentence reason. "
    "Reply with JSON only, matching the schema."
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"verdicts": {"type": "array", "items": {
        "type": "object",
        "properties": {"criterion": {"type": "integer"}, "passed": {"type": "boolean"},
                       "quote": {"type": "string"}, "reason": {"type": "string"}},
        "required": ["criterion", "passed", "quote", "reason"],
        "additionalProperties": False,
    }}},
    "required": ["verdicts"],
    "additionalProperties": False,
}


class JudgeError(Exception):
    """The judge could not score the call (stored on the run as its error)."""


def transcript_text(transcript: Sequence[dict[str, Any]]) -> str:
    return "\n".join(f"{t['role'].upper()}: {t['text']}" for t in transcript)


def _squash(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def judge(org: Any, rubric: Sequence[str], transcript: Sequence[dict[str, Any]],
          goal: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one verdict per criterion, the request's token usage)."""
    if not rubric:
        return [], {}
    try:
        credential = get_credential(org, "openai")
    except MissingCredential as exc:
        raise JudgeError("the judge needs an OpenAI key for this organisation") from exc
    text = transcript_text(transcript)
    criteria = "\n".join(f"{i}. {c}" for i, c in enumerate(rubric, 1))
    try:
        completion = openai_client(credential).chat.completions.create(
            model=JUDGE_MODEL,
            messages=[{"role": "system", "content": SYSTEM_PROMPT},
                      {"role": "user", "content": f"The caller's goal: {goal}\n\nCriteria:\n{criteria}\n\n"
                                                  f"Transcript:\n{text or '(nobody spoke)'}"}],
            response_format={"type": "json_schema", "json_schema": {"name": "verdicts", "schema": SCHEMA,
                                                                    "strict": True}},
        )
    except openai.APIStatusError as exc:
        raise JudgeError(f"OpenAI refused the judge's request (HTTP {exc.status_code})") from exc
    except openai.APIConnectionError as exc:
        raise JudgeError("OpenAI could not be reached for the judge") from exc
    content = completion.choices[0].message.content or ""
    try:
        data = json.loads(content)
        jsonschema.Draft202012Validator(SCHEMA).validate(data)
    except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
        raise JudgeError(f"the judge's reply does not match its schema ({str(exc)[:200]})") from exc
    by_number = {v["criterion"]: v for v in data["verdicts"]}
    haystack = _squash(text)
    verdicts = []
    for i, criterion in enumerate(rubric, 1):
        v = by_number.get(i)
        if v is None:
            verdicts.append({"criterion": criterion, "passed": False, "quote": "",
                             "reason": "the judge gave no verdict for this criterion"})
            continue
        passed, reason = bool(v["passed"]), str(v["reason"])
        quote = str(v["quote"]).strip()
        if passed and (not quote or _squash(quote) not in haystack):
            passed, reason = False, f"not supported: the quote is not in the transcript ({reason})"
        verdicts.append({"criterion": criterion, "passed": passed, "quote": quote, "reason": reason})
    usage = completion.usage.model_dump() if completion.usage is not None else {}
    return verdicts, {"model": JUDGE_MODEL, **{k: v for k, v in usage.items() if isinstance(v, int)}}
