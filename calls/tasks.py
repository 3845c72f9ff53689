"""Celery tasks of the calls app: thin, id-taking, run in the org's scope."""

from __future__ import annotations

import logging

from celery import shared_task

from calls.models import Call
from voiceplatform import tracing
from voiceplatform.tasks import OrgTask

logger = logging.getLogger(__name__)


@shared_task(base=OrgTask, bind=True, name="calls.analyze_call", acks_late=True)
def analyze_call(self: OrgTask, org_public_id: str, call_public_id: str) -> str:
    """Post-call analysis. A redelivered task simply re-runs it (the result is replaced)."""
    from calls.analysis import AnalysisError, AnalysisSkipped, run_analysis

    call = Call.objects.for_org(self.org).select_related("org", "agent", "agent_version").filter(
        public_id=call_public_id
    ).first()
    if call is None:
        return "missing"
    try:
        with tracing.call_span(call_public_id, "call.analysis"):
            run_analysis(call)
    except AnalysisSkipped:
        return "skipped"
    except AnalysisError:
        # Stored on the call with its reason; retrying a bad prompt or a missing key does not help.
        return "failed"
    return "done"


@shared_task(base=OrgTask, bind=True, name="calls.finalize_call", acks_late=True)
def finalize_call_task(self: OrgTask, org_public_id: str, call_public_id: str) -> bool:
    """The fallback for an ended call whose session never reported (idempotent)."""
    from calls.services.lifecycle import finalize_call

    call = Call.objects.for_org(self.org).filter(public_id=call_public_id).first()
    return bool(call is not None and finalize_call(call))


@shared_task(name="calls.expire_stale_calls")
def expire_stale_calls() -> int:
    """Beat, every minute (calls/migrations/0002): end calls whose final callback never came."""
    from calls.services.lifecycle import expire_stale_calls as expire

    return expire()


@shared_task(base=OrgTask, bind=True, name="calls.expire_unconnected_web_call", acks_late=True)
def expire_unconnected_web_call_task(self: OrgTask, org_public_id: str, call_public_id: str) -> bool:
    """A minute after a web call starts: end it if its browser never connected (idempotent)."""
    from calls.services.lifecycle import expire_unconnected_web_call

    call = Call.objects.for_org(self.org).filter(public_id=call_public_id).first()
    return bool(call is not None and expire_unconnected_web_call(call))


COST_ATTEMPTS = 6


@shared_task(base=OrgTask, bind=True, name="calls.fetch_call_cost", max_retries=COST_ATTEMPTS,
             default_retry_delay=60, acks_late=True)
def fetch_call_cost(self: OrgTask, org_public_id: str, call_public_id: str) -> str:
    """Ask the carrier what a finished call cost; retried while it has not priced it."""
    from calls.services.costs import record_carrier_cost
    from calls.services.errors import CarrierUnavailable

    call = Call.objects.for_org(self.org).select_related("org").filter(public_id=call_public_id).first()
    if call is None:
        return "missing"
    try:
        priced = record_carrier_cost(call)
    except CarrierUnavailable as exc:
        if not exc.retryable:
            return "failed"
        raise self.retry(exc=exc) from exc
    if not priced:
        if self.request.retries >= COST_ATTEMPTS:
            return "unpriced"
        raise self.retry()
    return "done"
