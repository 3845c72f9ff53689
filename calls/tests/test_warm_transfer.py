"""Warm transfer on Twilio and Plivo: the real SDKs dial the human's leg at the carrier
fakes; the leg's callbacks arrive signed as the carrier sends them (retried, late, out of
order, from another org); the caller is moved into the conference only once the human
has heard the whisper (and pressed 1 when asked). No answer, busy, declined and timeout
leave the caller with the agent; a destination outside its hours is refused; the
session's feed (``TransferFeed``) reports each change once.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine

from calls.models import Call, CallEvent, TransferLeg
from calls.services.costs import record_carrier_cost
from calls.services.placement import place_outbound_call
from calls.services.transfer import TransferFeed
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.calls_fixtures import PUBLIC, post_plivo, post_twilio, store_credential
from calls.tests.factories import make_ready_agent
from orgs.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)

DESTINATIONS = [
    {"label": "Sales", "number": "+1 415 555 0142", "description": "Orders", "mode": "warm", "timeout_s": 20,
     "whisper": "Call from {caller} about {summary}"},
    {"label": "Manager", "number": "+14155550143", "mode": "warm", "confirm": True},
    {"label": "Night desk", "number": "+14155550144", "mode": "warm",
     "hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}},
    {"label": "Front desk", "number": "sip:desk@pbx.example.com"},
]
# A Wednesday, 11:00 in London (the org's timezone): Night desk is open.
OPEN = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def office_hours() -> Any:
    with time_machine.travel(OPEN, tick=True) as traveller:
        yield traveller


class Line:
    """One carrier's view of a live call and its warm transfer, acting as the carrier."""

    def __init__(self, kind: str, fake: Any, call: Call) -> None:
        self.kind, self.fake, self.call = kind, fake, call
        self.sequence = 0

    def post(self, path: str, params: dict[str, str], fake: Any = None) -> Any:
        fake = fake or self.fake
        return post_twilio(fake, path, params) if self.kind == "twilio" else post_plivo(fake, path, params)

    def leg_request(self) -> dict[str, Any]:
        """What the SDK sent to dial the human."""
        calls = list(self.fake.calls.values())
        return calls[-1]

    def leg_id(self) -> str:
        request = self.leg_request()
        return request["sid"] if self.kind == "twilio" else request["call_uuid"]

    def leg_url(self, step: str) -> str:
        request = self.leg_request()
        url = request["url"] if self.kind == "twilio" else request["answer_url"]
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        return f"{parts.path}?leg={query['leg'][0]}&step={step}"

    def id_field(self) -> str:
        return "CallSid" if self.kind == "twilio" else "CallUUID"

    def answer(self, fake: Any = None) -> Any:
        return self.post(self.leg_url("answer"), {self.id_field(): self.leg_id(), "CallStatus": "in-progress",
                                                  "From": "+14155550100", "To": "+14155550142"}, fake)

    def join(self, digits: str | None = None) -> Any:
        params = {self.id_field(): self.leg_id(), "CallStatus": "in-progress"}
        if digits is not None:
            params["Digits"] = digits
        return self.post(self.leg_url("join"), params)

    def status(self, status: str, *, duration: int | None = None, sequence: int | None = None) -> Any:
        if self.kind == "twilio":
            self.sequence += 1
            params = self.fake.status_params(call_sid=self.leg_id(), status=status,
                                             sequence=self.sequence if sequence is None else sequence,
                                             duration=duration)
        else:
            params = self.fake.hangup_params(call_uuid=self.leg_id(), from_="+14155550100", to="+14155550142",
                                             status=status, duration=duration or 0, direction="outbound")
        return self.post(self.leg_url("status"), params)

    def caller_conference(self) -> str | None:
        """Where the carrier now sends the caller's leg (None: still on the agent's stream)."""
        if self.kind == "twilio":
            return self.fake.conference_of(self.call.carrier_call_id)
        redirects = self.fake.call_by_uuid(self.call.carrier_call_id)["redirects"]
        if not redirects:
            return None
        parts = urlsplit(redirects[-1])
        reply = post_plivo(self.fake, f"{parts.path}?{parts.query}", {"CallUUID": self.call.carrier_call_id})
        room = ET.fromstring(reply.content).find("./Conference")
        return room.text if room is not None else None


@pytest.fixture(params=["twilio", "plivo"])
def line(request: Any, org_a: Any, fake_twilio: Any, fake_plivo: Any, public_base: str, owner_a: Any) -> Line:
    from calls.tests.factories import make_phone_number

    kind = request.param
    fake = fake_twilio if kind == "twilio" else fake_plivo
    store_credential(org_a, kind, fake.credentials)
    number = make_phone_number(org_a, e164="+14155550100", carrier=kind)
    agent = make_ready_agent(org_a, name="Warm", builtin_tools=["transfer_call"], transfer_destinations=DESTINATIONS)
    call = place_outbound_call(org_a, agent, "+14155557777", number, {}, Actor(user=owner_a))
    if kind == "plivo":
        (placed,) = fake.calls.values()
        Call.objects.filter(pk=call.pk).update(carrier_call_id=placed["call_uuid"])
    Call.objects.filter(pk=call.pk).update(status="in_progress", answered_at=OPEN)
    call.refresh_from_db()
    return Line(kind, fake, call)


def start(line: Line, client: Any, to: str = "Sales", **body: Any) -> Any:
    return client.post(f"/api/v1/calls/{line.call.public_id}/transfer/", {"to": to, **body}, format="json")


def kinds(call: Call) -> list[str]:
    return list(CallEvent.objects.filter(call=call, kind__startswith="transfer.").values_list("kind", flat=True))


def test_answered_the_human_hears_the_whisper_then_caller_and_human_are_bridged(
        line: Line, editor_a: Any, api: Any) -> None:
    feed = TransferFeed(str(line.call.public_id))
    response = start(line, api(editor_a), mode="warm")
    assert response.status_code == 200, response.json()
    (leg,) = response.json()["transfer_legs"]
    assert leg["state"] == "dialing" and leg["destination"] == "Sales" and leg["target"] == "+14155550142"
    dialled = line.leg_request()
    assert dialled["to"].lstrip("+") == "14155550142"  # the configured number, never anything else
    assert line.caller_conference() is None  # the caller is still with the agent
    assert feed.changes() == [{"leg": leg["id"], "destination": "Sales", "state": "dialing",
                               "started_by": "operator"}]
    assert feed.changes() == []  # nothing new: nothing reported twice

    assert line.status("ringing").status_code == 204
    answer = line.answer()
    assert answer.status_code == 200
    spoken = answer.content.decode()
    assert "Call from 1 4 1 5 5 5 5 7 7 7 7 about" in spoken and "step=join" in spoken
    assert line.answer().content.decode() == spoken  # a retried answer callback: the same whisper
    assert line.caller_conference() is None  # not moved while the human hears who is calling

    joined = line.join()
    assert joined.status_code == 200
    room = TransferLeg.objects.get().conference
    assert room in joined.content.decode()
    assert line.caller_conference() == room  # the caller is moved into the human's room
    assert line.join().status_code == 200  # retried: same room, the caller is not moved again
    call = Call.objects.get(pk=line.call.pk)
    assert call.end_reason == "transferred" and call.transfer_to == "+14155550142"
    assert [c["state"] for c in feed.changes()] == ["bridged"]

    assert line.status("completed", duration=42).status_code == 204
    assert line.status("completed", duration=42).status_code == 204  # retried
    leg_row = TransferLeg.objects.get()
    assert leg_row.state == "completed" and leg_row.duration_s == 42
    assert kinds(call) == ["transfer.dialing", "transfer.ringing", "transfer.answered", "transfer.bridged",
                           "transfer.completed"]

    # the human's leg is billed on its own: priced with the call, shown with it
    if line.kind == "twilio":
        line.fake.price_call(leg_row.carrier_call_id, "-0.01400")
    else:
        line.fake.price_call(leg_row.carrier_call_id, "0.01400")
    assert record_carrier_cost(call) is False  # the caller's own leg is not priced yet
    leg_row.refresh_from_db()
    assert str(leg_row.cost) == "0.01400"
    assert call.cost_breakdown["transfer_legs"] == {"amount": "0.01400", "currency": "USD", "legs": 1,
                                                    "pending": False}
    assert call.total_cost is None  # unknown while a part of it is
    if line.kind == "twilio":
        line.fake.price_call(call.carrier_call_id, "-0.02000")
    else:
        line.fake.price_call(call.carrier_call_id, "0.02000")
    assert record_carrier_cost(call) is True
    assert str(call.total_cost) == "0.03400"  # the caller's leg and the human's
    assert CallEvent.objects.filter(call=call, kind="cost.transfer_leg").count() == 1  # priced once
    page = api(editor_a).get(f"/api/v1/calls/{call.public_id}/").json()
    assert page["transfer_legs"][0]["duration_s"] == 42 and page["transfer_legs"][0]["cost"] == "0.01400"


@pytest.mark.parametrize(("status", "state"), [("no-answer", "no_answer"), ("busy", "busy"), ("failed", "failed")])
def test_no_answer_busy_or_failed_leaves_the_caller_with_the_agent(line: Line, editor_a: Any, api: Any,
                                                                    status: str, state: str) -> None:
    if line.kind == "plivo" and status == "no-answer":
        status = "timeout"  # Plivo's word for a leg nobody answered
    feed = TransferFeed(str(line.call.public_id))
    assert start(line, api(editor_a)).status_code == 200  # Sales is a warm destination: warm by default
    feed.changes()
    assert line.status("ringing").status_code == 204
    assert line.status(status).status_code == 204
    assert [c["state"] for c in feed.changes()] == [state]
    assert line.caller_conference() is None
    assert Call.objects.get(pk=line.call.pk).end_reason == ""
    # late and out of order: a ringing callback after the end changes nothing
    assert line.status("ringing", sequence=1).status_code == 204
    assert TransferLeg.objects.get().state == state and feed.changes() == []
    # a human who calls back the whisper URL after the leg ended is told goodbye, nothing moves
    assert "no longer waiting" in line.answer().content.decode()
    assert line.caller_conference() is None


def test_declined_by_key_or_by_hanging_up_during_the_whisper(line: Line, editor_a: Any, api: Any) -> None:
    assert start(line, api(editor_a), to="manager").status_code == 200
    whisper = line.answer().content.decode()
    assert "Press 1 to take the call" in whisper
    refused = line.join(digits="2")
    assert "not taken" in refused.content.decode()
    assert TransferLeg.objects.get().state == "declined" and line.caller_conference() is None
    # which key is not stored: the agent does not keep keypad digits (issue 11)
    (declined,) = CallEvent.objects.filter(kind="transfer.declined")
    assert declined.data["key"] == "another key" and "2" not in str(declined.data.get("key"))

    assert start(line, api(editor_a), to="Sales").status_code == 200  # the agent may try again
    line.answer()
    assert line.status("completed", duration=3).status_code == 204  # hung up before being bridged
    assert TransferLeg.objects.order_by("-created_at").first().state == "declined"
    assert line.caller_conference() is None


def test_timeout_hangs_the_leg_up_and_the_agent_goes_on(line: Line, editor_a: Any, api: Any,
                                                       office_hours: Any) -> None:
    feed = TransferFeed(str(line.call.public_id))
    assert start(line, api(editor_a)).status_code == 200
    feed.changes()
    line.answer()  # the human is listening to the whisper but never joins
    assert [c["state"] for c in feed.changes()] == ["answered"]
    office_hours.shift(timedelta(seconds=20 + 14))
    assert feed.changes() == []  # not yet: 20 s ring timeout + 15 s to hear and accept
    office_hours.shift(timedelta(seconds=2))
    assert [c["state"] for c in feed.changes()] == ["timeout"]
    leg = TransferLeg.objects.get()
    if line.kind == "twilio":
        assert line.fake.calls[leg.carrier_call_id]["status"] == "completed"  # hung up at the carrier
    else:
        assert line.fake.call_by_uuid(leg.carrier_call_id)["status"] == "completed"
    assert "no longer waiting" in line.join().content.decode()  # too late: nothing is bridged
    assert line.caller_conference() is None


def test_outside_its_hours_a_destination_is_refused_and_says_when_it_is_open(
        line: Line, editor_a: Any, api: Any, office_hours: Any) -> None:
    office_hours.move_to(datetime(2026, 12, 5, 12, 0, tzinfo=UTC))  # a Saturday
    refused = start(line, api(editor_a), to="Night desk")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"]["to"] == [
        "Night desk takes calls only mon–fri 09:00–17:00 Europe/London, and it is closed now: tell the caller "
        "and offer another way to help"]
    assert TransferLeg.objects.count() == 0 and kinds(line.call) == ["transfer.closed"]
    office_hours.move_to(datetime(2026, 12, 4, 16, 59, tzinfo=UTC))  # Friday 16:59 in London
    assert start(line, api(editor_a), to="Night desk").status_code == 200


def test_another_orgs_signature_cannot_touch_a_transfer_leg(line: Line, editor_a: Any, api: Any, org_b: Any,
                                                           fake_twilio: Any, fake_plivo: Any) -> None:
    from calls.testing.fake_plivo import FakePlivo
    from calls.testing.fake_twilio import FakeTwilio

    assert start(line, api(editor_a)).status_code == 200
    other: Any = FakeTwilio() if line.kind == "twilio" else FakePlivo()  # org B's own, valid account
    secrets = ({"account_sid": other.account_sid, "auth_token": other.auth_token} if line.kind == "twilio"
               else {"auth_id": other.auth_id, "auth_token": other.auth_token})
    store_credential(org_b, line.kind, {**secrets, "base_url": PUBLIC})
    assert line.answer(fake=other).status_code == 403
    leg = TransferLeg.objects.get()
    assert leg.state == "dialing" and not leg.answered_at
    assert line.post(line.leg_url("join"), {line.id_field(): line.leg_id()}, other).status_code == 403
    assert line.caller_conference() is None
    assert CallEvent.objects.filter(call=line.call, kind="webhook.bad_signature").count() == 2
    # an unknown leg id is a 404, whoever signs it
    assert line.post(f"{line.leg_url('answer').split('?')[0]}?leg=00000000-0000-0000-0000-000000000000&step=answer",
                     {line.id_field(): line.leg_id()}).status_code == 404


def test_one_warm_transfer_at_a_time_and_only_to_named_destinations(line: Line, editor_a: Any, admin_a: Any,
                                                                   api: Any) -> None:
    refused = start(line, api(admin_a), to="+14155550123", mode="warm")
    assert refused.status_code == 400
    assert "a warm transfer goes only to one of this agent's transfer destinations" in \
        refused.json()["error"]["fields"]["to"][0]
    assert start(line, api(editor_a)).status_code == 200
    busy = start(line, api(editor_a), to="Manager")
    assert busy.status_code == 400
    assert busy.json()["error"]["fields"]["to"] == ["a transfer to Sales is already being dialled on this call"]


def test_cold_transfer_still_dials_straight_through(line: Line, editor_a: Any, api: Any) -> None:
    done = start(line, api(editor_a), to="front desk")
    assert done.status_code == 200 and done.json()["transfer_to"] == "sip:desk@pbx.example.com"
    assert TransferLeg.objects.count() == 0
    cold = start(line, api(editor_a), to="Sales", mode="cold")  # a warm destination, sent cold on request
    assert cold.status_code == 200 and TransferLeg.objects.count() == 0


def test_dashboard_starts_a_warm_transfer_and_shows_the_leg(line: Line, editor_a: Any, login: Any) -> None:
    from calls.services.timeline import push_live_update

    push_live_update(str(line.call.public_id), "transcript", {"role": "caller", "text": "I need a cake for Sunday."})
    page = login(editor_a).get(f"/calls/{line.call.public_id}/").content.decode()
    assert '<button name="mode" value="warm"' in page  # the control on the live call
    response = login(editor_a).post(f"/calls/{line.call.public_id}/",
                                    {"action": "transfer", "to": "Manager", "mode": "warm"}, follow=True)
    shown = response.content.decode()
    assert "Dialling the destination; the caller stays with the agent" in shown
    assert "Warm transfers" in shown and "Dialing" in shown
    leg = TransferLeg.objects.get()
    assert (leg.destination, leg.state, leg.started_by) == ("Manager", "dialing", "operator")
    assert leg.whisper.endswith("They said: I need a cake for Sunday.")  # from the transcript so far
    line.status("busy")
    assert "Busy" in login(editor_a).get(f"/calls/{line.call.public_id}/").content.decode()


def test_the_agents_tool_offers_names_only_starts_warm_and_hears_when_a_destination_is_closed(
        line: Line, office_hours: Any) -> None:
    from calls.tests.test_tool_contracts import LoopThread, close, dispatch, prepared_session, spec_of

    with LoopThread() as loop:
        session = loop.run(prepared_session(line.call, line.kind))
        spec = spec_of(session, "transfer_call")["parameters"]["properties"]["destination"]
        assert spec["enum"] == ["Sales", "Manager", "Night desk", "Front desk"]  # names, never numbers
        invented = loop.run(dispatch(session, "transfer_call", {"destination": "+14155550199"}))
        assert "invalid arguments" in invented["error"] and TransferLeg.objects.count() == 0

        office_hours.move_to(datetime(2026, 12, 5, 12, 0, tzinfo=UTC))  # Saturday
        closed = loop.run(dispatch(session, "transfer_call", {"destination": "Night desk"}))
        assert closed == {"error": "Night desk takes calls only mon–fri 09:00–17:00 Europe/London, and it is "
                                   "closed now: tell the caller and offer another way to help"}

        warm = loop.run(dispatch(session, "transfer_call", {"destination": "Sales", "reason": "a wedding cake"}))
        assert warm["ok"] is True and warm["status"] == "dialing"
        assert not session.ending  # the caller stays with the agent while Sales is dialled
        leg = TransferLeg.objects.get()
        assert leg.started_by == "agent" and "about a wedding cake." in leg.whisper
        assert line.leg_request()["to"].lstrip("+") == "14155550142"
        loop.run(close(session))
    # the caller left before anyone answered: the ringing leg is not left open
    leg.refresh_from_db()
    assert leg.state == "canceled"
