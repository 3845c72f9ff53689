"""Post-call analysis: summary, structured fields, success evaluation.

Runs in a Celery task (``calls.tasks.analyze_call``) with the org's own OpenAI
credential, through the official ``openai`` SDK (its ``base_url`` comes from the
credential config, so a compatible endpoint or the test fake works alike).
Re-runnable: each run replaces the previous result.

An analysis that cannot run at all (the org has no OpenAI key, the call has no
transcript) is stored as ``skipped`` with the reason, never as ``failed``: a
failure means the analysis ran and went wrong (the vendor refused it, the reply
did not fit the schema), which is worth a look; a skip is a setup choice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx2
import jsonschema
import openai
from django.utils import timezone
from referencing import Registry
from referencing.exceptions import Unresolvable

from calls.models import AnalysisStatus, Call, TranscriptTurn
from calls.observers import call_changed
from orgs.credentials import MissingCredential, get_credential
from orgs.services import Actor, record_audit
from voiceplatform import outbound
from voiceplatform.tasks import enqueue_on_commit

logger = logging.getLogger(__name__)

DEFAULT_ANALYSIS_MODEL = "gpt-4.1-mini"
ANALYSIS_TIMEOUT_S = 60.0
EMPTY_FIELDS_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}

SYSTEM_PROMPT = (
    "You analyse a finished phone call between an AI agent and a caller. "
    "Reply with JSON only, matching the given schema: 'summary' is two to four plain sentences; "
    "'fields' holds the requested structured data (use null where the call did not say); "
    "'success' says whether the call achieved its goal, judged against the success criteria, with a short reason."
)


@dataclass(frozen=True)
class AnalysisSpec:
    """What the agent asks of the analysis (see ``calls.agent_link.analysis_spec``)."""

    fields_schema: dict[str, Any]
    success_criteria: str
    summary: bool = True
    model: str = DEFAULT_ANALYSIS_MODEL


class AnalysisError(Exception):
    """The analysis ran and failed; stored as ``failed`` with this message."""


class AnalysisSkipped(AnalysisError):
    """The analysis cannot run (no OpenAI key, no transcript); stored as ``skipped`` with this message."""


NO_KEY_REASON = "no OpenAI key for this organisation; add one under Settings → Provider credentials"
NO_TRANSCRIPT_REASON = "the call has no transcript to analyse"


def skip_reason(call: Call) -> str | None:
    """Why the analysis of ``call`` cannot run now (None: it can)."""
    from orgs.credentials import configured_providers

    if "openai" not in configured_providers(call.org):
        return NO_KEY_REASON
    if not TranscriptTurn.objects.filter(call=call).exists():
        return NO_TRANSCRIPT_REASON
    return None


def _store_skip(call: Call, reason: str) -> None:
    Call.objects.filter(pk=call.pk).update(analysis_status=AnalysisStatus.SKIPPED, analysis_error=reason)
    call.analysis_status, call.analysis_error = AnalysisStatus.SKIPPED, reason


def response_schema(spec: AnalysisSpec) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "fields": spec.fields_schema or EMPTY_FIELDS_SCHEMA,
            "success": {
                "type": "object",
                "properties": {"achieved": {"type": "boolean"}, "reason": {"type": "string"}},
                "required": ["achieved", "reason"],
                "additionalProperties": False,
            },
        },
        "required": ["summary", "fields", "success"],
        "additionalProperties": False,
    }


def transcript_text(call: Call) -> str:
    turns = TranscriptTurn.objects.filter(call=call).order_by("index")
    return "\n".join(f"{t.role.upper()}{' (interrupted)' if t.interrupted else ''}: {t.text}" for t in turns)


def _parse(content: str | None, schema: dict[str, Any]) -> dict[str, Any]:
    if not content:
        raise AnalysisError("the model returned an empty reply")
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"the model's reply is not JSON ({exc.msg} at position {exc.pos})") from exc
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        # An explicit, empty registry: a customer's schema is never allowed to make the
        # worker fetch a remote "$ref" (jsonschema's fallback would, over HTTP).
        cls(schema, registry=Registry()).validate(data)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise AnalysisError(f"the model's reply does not match the schema at {where}: {exc.message}") from exc
    except (Unresolvable, jsonschema.SchemaError) as exc:
        raise AnalysisError(f"the analysis schema cannot be used: {str(exc)[:200]}") from exc
    return data


def openai_client(credential: dict[str, str], timeout_s: float = ANALYSIS_TIMEOUT_S) -> openai.OpenAI:
    """The org's OpenAI client for a chat request; a customer's base_url override goes
    through the outbound guard (pinned, bounded)."""
    base_url = credential.get("base_url") or None
    http_client = outbound.sync_client(
        outbound.Policy(total_timeout_s=timeout_s), hx=httpx2, timeout=timeout_s,
    ) if base_url else None
    return openai.OpenAI(api_key=credential["api_key"], base_url=base_url,
                         timeout=timeout_s, max_retries=1, http_client=http_client)


def run_analysis(call: Call) -> dict[str, Any]:
    """Analyse ``call`` now and store the result. Failures and skips are stored, then raised
    (``AnalysisSkipped`` is an ``AnalysisError``)."""
    from calls.agent_link import analysis_spec, call_redactor

    spec = analysis_spec(call)
    redactor = call_redactor(call)
    transcript = redactor.text(transcript_text(call))
    try:
        if not transcript:
            raise AnalysisSkipped(NO_TRANSCRIPT_REASON)
        try:
            credential = get_credential(call.org, "openai")
        except MissingCredential as exc:
            raise AnalysisSkipped(NO_KEY_REASON) from exc
        client = openai_client(credential)
        schema = response_schema(spec)
        criteria = spec.success_criteria or "The caller's request was understood and handled."
        try:
            completion = client.chat.completions.create(
                model=spec.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"Success criteria:\n{criteria}\n\nTranscript:\n{transcript}"},
                ],
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "call_analysis", "schema": schema, "strict": False}},
            )
        except openai.APIStatusError as exc:
            raise AnalysisError(f"OpenAI refused the analysis request (HTTP {exc.status_code})") from exc
        except openai.APIConnectionError as exc:
            raise AnalysisError("OpenAI could not be reached for the analysis") from exc
        result = _parse(completion.choices[0].message.content, schema)
    except AnalysisSkipped as exc:
        _store_skip(call, str(exc))
        logger.info("call.analysis_skipped", extra={"call": str(call.public_id)})
        raise
    except AnalysisError as exc:
        Call.objects.filter(pk=call.pk).update(analysis_status=AnalysisStatus.FAILED, analysis_error=str(exc))
        logger.warning("call.analysis_failed", extra={"call": str(call.public_id)})
        raise
    analysis = {
        "summary": redactor.text(result["summary"]) if spec.summary else "",
        "fields": redactor.data(result["fields"]),
        "success": result["success"],
        "model": spec.model,
        "analysed_at": timezone.now().isoformat(),
    }
    Call.objects.filter(pk=call.pk).update(analysis=analysis, analysis_status=AnalysisStatus.DONE, analysis_error="")
    call.analysis, call.analysis_status, call.analysis_error = analysis, AnalysisStatus.DONE, ""
    call_changed(call)  # the post-call success rate counts the verdict
    from orgs.services import SYSTEM, record_audit

    record_audit(call.org, SYSTEM, "call.analyzed", call, {"success": analysis["success"]})
    logger.info("call.analysed", extra={"call": str(call.public_id)})
    return analysis


def request_analysis(call: Call, actor: Actor | None = None) -> None:
    """Queue (or re-queue) the analysis once the current transaction commits; an analysis
    that cannot run (``skip_reason``) is stored as skipped at once instead, and nothing is queued."""
    from calls.tasks import analyze_call

    reason = skip_reason(call)
    if reason is not None:
        _store_skip(call, reason)
        if actor is not None:
            record_audit(call.org, actor, "call.analysis_skipped", call, {"reason": reason})
        return
    Call.objects.filter(pk=call.pk).update(analysis_status=AnalysisStatus.PENDING, analysis_error="")
    call.analysis_status = AnalysisStatus.PENDING
    if actor is not None:
        record_audit(call.org, actor, "call.analysis_requested", call, {})
    enqueue_on_commit(analyze_call, str(call.org.public_id), str(call.public_id))
