"""Outgoing-webhook signatures: our verifier and the README snippet agree with the signer."""
from __future__ import annotations

import pytest

from integrations.webhooks_signing import (
    README_SNIPPET,
    SignatureError,
    signature_header,
    verify_signature,
)

BODY = b'{"id":"evt_1","type":"call.ended"}'


def readme_verifier():
    namespace: dict = {}
    exec(README_SNIPPET, namespace)  # noqa: S102 - the snippet is ours; executing it proves it works
    return namespace["verify_vp_webhook"]


def test_roundtrip_and_readme_snippet_agree():
    header = signature_header("whsec_a", BODY, timestamp=1_800_000_000)
    assert header.startswith("t=1800000000,v1=")
    assert verify_signature("whsec_a", BODY, header, now=1_800_000_010) == 1_800_000_000
    fresh = signature_header("whsec_a", BODY)
    assert readme_verifier()("whsec_a", BODY, fresh) is True
    assert readme_verifier()("whsec_b", BODY, fresh) is False
    assert readme_verifier()("whsec_a", BODY + b" ", fresh) is False


def test_rotation_sends_one_v1_per_secret():
    header = signature_header(["new", "old"], BODY, timestamp=100)
    assert header.count("v1=") == 2
    assert verify_signature("old", BODY, header, now=100) == 100
    assert verify_signature("new", BODY, header, now=100) == 100


@pytest.mark.parametrize(
    ("header", "now", "message"),
    [
        (None, 100, "missing X-VP-Signature"),
        ("garbage", 100, "malformed"),
        ("t=abc,v1=00", 100, "not an integer"),
        ("v1=00", 100, "no t= timestamp"),
        ("t=100", 100, "no v1= signature"),
        ("t=100,v1=00", 1000, "900s away from now (tolerance 300s)"),
        ("t=100,v1=00", 100, "does not match"),
    ],
)
def test_rejections_name_the_problem(header, now, message):
    with pytest.raises(SignatureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        verify_signature("s", BODY, header, now=now)


def test_tampered_timestamp_fails():
    header = signature_header("s", BODY, timestamp=100)
    forged = header.replace("t=100", "t=101")
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature("s", BODY, forged, now=101)
