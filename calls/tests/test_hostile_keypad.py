"""Keypad digits the agent sends (IVR navigation, ``send_dtmf``) are stored as the caller's
are: not unless the agent keeps keypad digits (issue 11).

The caller's own keys are covered end to end in test_hostile_media.py; here the model
sends digits (an account number from the call's variables, a PIN the caller said) that
the schema refuses, and the refusal, which quotes the value back to the model, must not
put it on the call's timeline. Driven through the session's real tool dispatch, as the
contract tests drive it (test_tool_contracts.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents.models import AgentVersion
from calls.models import Call, CallEvent
from calls.services.lifecycle import record_session_result
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.test_tool_contracts import (  # noqa: F401 - fixtures
    LoopThread,
    _collect_garbage_only_between_steps,
    dispatch,
    loop,
    phone_call,
    prepared_session,
)

pytestmark = pytest.mark.django_db(transaction=True)

CARD = "4111 1111 1111 1111"  # spaces: not a digit string the schema allows


@pytest.mark.parametrize("keep", [False, True], ids=["digits-not-kept", "agent-keeps-digits"])
def test_refused_send_dtmf_digits_reach_the_model_but_the_timeline_only_if_kept(
        keep: bool, phone_call: Call, fake_twilio: Any, loop: LoopThread) -> None:  # noqa: F811 - fixtures
    version = phone_call.agent_version
    assert version is not None
    # as if the agent had been published with the setting (a version is immutable through save)
    AgentVersion.objects.filter(pk=version.pk).update(config={**version.config, "keep_keypad_digits": keep})
    session = loop.run(prepared_session(phone_call))
    assert session.context is not None and session.context.keep_keypad_digits is keep
    twiml_before = list(fake_twilio.calls[phone_call.carrier_call_id]["twiml"])

    output = loop.run(dispatch(session, "send_dtmf", {"digits": CARD}))
    # the model is told exactly what was wrong with what it sent
    assert output["error"].startswith("invalid arguments for send_dtmf: digits: ") and CARD in output["error"]
    assert fake_twilio.calls[phone_call.carrier_call_id]["twiml"] == twiml_before  # nothing was played

    loop.run(session.end("caller_hangup"))
    assert session.result is not None
    loop.run(record_session_result(str(phone_call.public_id), session.result))
    (refused,) = CallEvent.objects.filter(call=phone_call, kind="tool_refused")
    assert refused.data["fields"] == ["digits"]
    (result,) = CallEvent.objects.filter(call=phone_call, kind="tool_result")
    stored = json.dumps(list(CallEvent.objects.filter(call=phone_call).values("kind", "data")))
    if keep:
        assert CARD in result.data["error"]
    else:
        assert result.data["error"] == "invalid arguments for send_dtmf: digits (value not stored)"
        assert CARD not in stored and "4111" not in stored
