"""Signing of outgoing customer webhooks, and the verification receivers should do.

Scheme (modelled on Stripe's, so existing receiver code ports easily):

    X-VP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
    X-VP-Event-Id:  <the event's unique id; the same on every retry — deduplicate on it>
    X-VP-Event:     <event type, e.g. call.ended>

The timestamp is inside the MAC so a captured request cannot be replayed later than the
receiver's tolerance; during secret rotation we send one ``v1=`` per active secret and a
receiver accepts if any matches.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "X-VP-Signature"
EVENT_ID_HEADER = "X-VP-Event-Id"
EVENT_TYPE_HEADER = "X-VP-Event"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale, or matches no secret."""


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: str | Iterable[str], body: bytes, *, timestamp: int | None = None) -> str:
    """The ``X-VP-Signature`` value for ``body``; one ``v1`` per secret (rotation)."""
    ts = int(time.time()) if timestamp is None else timestamp
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys or not all(keys):
        raise ValueError("at least one non-empty signing secret is required")
    return ",".join([f"t={ts}"] + [f"v1={compute_signature(k, ts, body)}" for k in keys])


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER} element {item.strip()!r} (expected key=value)")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError(f"{SIGNATURE_HEADER} timestamp {value!r} is not an integer") from None
        elif key == "v1":
            signatures.append(value)
        # Unknown keys are skipped so a future v2 scheme does not break old receivers.
    if timestamp is None:
        raise SignatureError(f"{SIGNATURE_HEADER} has no t= timestamp")
    if not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER} has no v1= signature")
    return timestamp, signatures


def verify_signature(
    secret: str, body: bytes, header: str | None, *, tolerance_s: int = DEFAULT_TOLERANCE_S, now: int | None = None
) -> int:
    """Check ``header`` against ``body``; returns the signed timestamp or raises :class:`SignatureError`."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp, signatures = parse_signature_header(header)
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(
            f"{SIGNATURE_HEADER} timestamp is {abs(current - timestamp)}s away from now (tolerance {tolerance_s}s)"
        )
    expected = compute_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body signed with this endpoint's secret")
    return timestamp


# Shown in the dashboard next to an endpoint's secret and quoted in the README. It is a
# standalone copy of verify_signature (receivers do not have our package); a test runs it
# against real deliveries so it cannot drift from what we send.
README_SNIPPET = '''\
import hashlib, hmac, time

def verify_vp_webhook(secret: str, body: bytes, signature_header: str, tolerance_s: int = 300) -> bool:
    """body: the raw request body bytes; signature_header: the X-VP-Signature header."""
    parts = [p.split("=", 1) for p in signature_header.split(",") if "=" in p]
    timestamp = next((int(v) for k, v in parts if k == "t"), None)
    candidates = [v for k, v in parts if k == "v1"]
    if timestamp is None or abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)

# Deduplicate on the X-VP-Event-Id header: a retried delivery carries the same id.
'''
