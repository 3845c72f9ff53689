"""Batch services and the dispatcher, in process, against the real database and
the fake Twilio server (the real twilio SDK talks to it over HTTP)."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from batches import dispatch
from batches.models import BatchCallAttempt, BatchEntry, BatchStatus, EntryState, Outcome
from batches.services import (
    BatchError,
    BatchSettings,
    add_do_not_call,
    cancel_batch,
    create_batch_from_rows,
    import_do_not_call,
    launch_batch,
    pause_batch,
    progress,
    remove_do_not_call,
    resume_batch,
)
from batches.tests.helpers import end_call, make_batch, us_numbers
from calls.models import Call
from calls.services.errors import DoNotCall
from calls.services.placement import place_outbound_call
from orgs.models import AuditLog
from orgs.services import SYSTEM
from voiceplatform.testing import refused

pytestmark = pytest.mark.django_db
CALLS = r"/2010-04-01/Accounts/AC\w+/Calls\.json"


def csv_of(numbers: list[str], extra: str = "") -> str:
    return "phone,customer_name\n" + "".join(f"{n},Cust {i}\n" for i, n in enumerate(numbers)) + extra


def dialled(fake: Any) -> list[str]:
    return [r.value("To") for r in fake.requests_to("POST", CALLS)]


def entry_calls(batch: Any) -> list[Call]:
    return [e.last_call for e in BatchEntry.objects.filter(batch=batch, state=EntryState.IN_CALL).select_related("last_call")]


def test_create_classifies_and_stores_every_row(twilio_org: Any, agent_a: Any, twilio_number: Any) -> None:
    add_do_not_call(twilio_org, SYSTEM, "+1 212 555 1003")
    text = csv_of(us_numbers(4), extra="not-a-number,Bad\n+1 (212) 555-1000,Dup\n")
    batch = make_batch(twilio_org, agent_a, twilio_number, text)
    assert (batch.total_rows, batch.valid_rows, batch.invalid_rows, batch.duplicate_rows, batch.do_not_call_rows) == (
        6, 3, 1, 1, 1)
    states = list(BatchEntry.objects.filter(batch=batch).values_list("row_number", "state", "reason"))
    assert states[3] == (4, "do_not_call", "on the do-not-call list")
    assert states[4] == (5, "invalid", "not a phone number")
    assert states[5] == (6, "duplicate", "same number as row 1")
    assert batch.variable_columns == {"customer_name": "customer_name"}
    assert AuditLog.objects.for_org(twilio_org).filter(action="batch.created").exists()


def test_settings_are_validated_with_field_names(twilio_org: Any, agent_a: Any, twilio_number: Any, org_b: Any) -> None:
    from calls.tests.factories import make_phone_number

    with refused(BatchError, field="concurrency", match="^must be a number from 1 to 100"):
        make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(1)), concurrency=0)
    with refused(BatchError, field="retry_on", match="^completed cannot be retried"):
        make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(1)), retry_on=["completed"])
    with refused(BatchError, field="calling_window", match="HH:MM"):
        make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(1)),
                   calling_window={"days": ["mon"], "start": "9", "end": "17:00"})
    other_number = make_phone_number(org_b)
    with refused(BatchError, field="from_number", match="^no such number"):
        make_batch(twilio_org, agent_a, other_number, csv_of(us_numbers(1)))


def test_broken_file_leaves_nothing_behind(twilio_org: Any, agent_a: Any, twilio_number: Any) -> None:
    from batches.importing import UploadError
    from batches.models import Batch

    text = csv_of(us_numbers(3)) + '+12125559999,"unclosed\n' + "x" * 70000
    with pytest.raises(UploadError, match="row 4"):
        make_batch(twilio_org, agent_a, twilio_number, text)
    assert not Batch.objects.for_org(twilio_org).exists()
    assert not BatchEntry.objects.exists()


def test_json_body_rows(twilio_org: Any, agent_a: Any, twilio_number: Any) -> None:
    settings = BatchSettings(name="API", agent=agent_a, from_number=twilio_number)
    batch = create_batch_from_rows(twilio_org, SYSTEM, settings, [{"to": "+12125551000", "order_id": 7}, {"to": "x"}])
    assert (batch.valid_rows, batch.invalid_rows, batch.phone_column) == (1, 1, "to")
    assert BatchEntry.objects.get(batch=batch, row_number=1).variables == {"order_id": "7"}


def test_runs_to_completion_with_concurrency_and_retries(twilio_org: Any, agent_a: Any, twilio_number: Any,
                                                          fake_twilio: Any) -> None:
    numbers = us_numbers(4)
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(numbers), concurrency=2, calls_per_second=50,
                       max_attempts=2, retry_delay_s=0)
    launch_batch(batch, SYSTEM)

    seq = iter(range(10, 100))

    def round_of(expected: list[str], outcomes: dict[str, tuple[str, str]]) -> None:
        before = len(dialled(fake_twilio))
        dispatch.run_dispatch(batch, budget_s=0)
        assert sorted(dialled(fake_twilio)[before:]) == sorted(expected)
        # never more than `concurrency` rows dialing or in a call
        assert BatchEntry.objects.filter(batch=batch, state__in=["dialing", "in_call"]).count() == len(expected)
        for call in entry_calls(batch):
            outcome, answered_by = outcomes[call.to_number]
            end_call(fake_twilio, call, outcome, sequence=next(seq), answered_by=answered_by)

    human, machine = ("completed", ""), ("completed", "machine_end_beep")
    round_of(numbers[:2], {numbers[0]: ("busy", ""), numbers[1]: human})
    # rows 3 and 4 were due before row 1's retry (FIFO by due time)
    round_of(numbers[2:], {numbers[2]: ("no_answer", ""), numbers[3]: machine})
    round_of([numbers[0], numbers[2]], {numbers[0]: ("no_answer", ""), numbers[2]: human})
    round_of([numbers[3]], {numbers[3]: human})
    assert dispatch.run_dispatch(batch, budget_s=0) is None

    batch.refresh_from_db()
    assert batch.status == BatchStatus.COMPLETED
    rows = {e.e164: (e.state, e.attempts, e.outcome) for e in BatchEntry.objects.filter(batch=batch)}
    assert rows == {
        numbers[0]: ("failed", 2, "no_answer"),
        numbers[1]: ("done", 1, "completed"),
        numbers[2]: ("done", 2, "completed"),
        numbers[3]: ("done", 2, "completed"),
    }
    assert len(dialled(fake_twilio)) == 7
    assert AuditLog.objects.for_org(twilio_org).filter(action="batch.completed").count() == 1
    assert progress(batch)["percent"] == 100


def test_voicemail_outcome_is_retried_then_fails(twilio_org: Any, agent_a: Any, twilio_number: Any,
                                                  fake_twilio: Any) -> None:
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(1)), calls_per_second=50,
                       max_attempts=2, retry_delay_s=0)
    launch_batch(batch, SYSTEM)
    for _attempt in (1, 2):
        dispatch.run_dispatch(batch, budget_s=0)
        (call,) = entry_calls(batch)
        end_call(fake_twilio, call, "completed", answered_by="machine_end_beep")
    assert dispatch.run_dispatch(batch, budget_s=0) is None
    entry = BatchEntry.objects.get(batch=batch)
    assert (entry.state, entry.outcome, entry.attempts) == ("failed", Outcome.VOICEMAIL, 2)
    log = list(BatchCallAttempt.objects.filter(entry=entry).values_list("number", "outcome"))
    assert log == [(1, "voicemail"), (2, "voicemail")]
    assert len(dialled(fake_twilio)) == 2
    batch.refresh_from_db()
    assert batch.status == BatchStatus.COMPLETED
    audit = AuditLog.objects.for_org(twilio_org).get(action="batch.completed")
    assert audit.changes["failed"] == 1 and audit.changes["rows"] == 1


def test_retry_delay_is_honoured(twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any) -> None:
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(1)), calls_per_second=50,
                       retry_delay_s=3600)
    launch_batch(batch, SYSTEM)
    dispatch.run_dispatch(batch, budget_s=0)
    (call,) = entry_calls(batch)
    end_call(fake_twilio, call, "busy")
    wait = dispatch.run_dispatch(batch, budget_s=0)
    assert wait is not None and 3500 < wait or wait == 30.0  # capped re-check interval
    entry = BatchEntry.objects.get(batch=batch)
    assert entry.state == "pending" and entry.next_attempt_at > call.created_at + timedelta(minutes=59)
    assert len(dialled(fake_twilio)) == 1


def test_calls_per_second_spacing(twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any) -> None:
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(3)), concurrency=10,
                       calls_per_second=0.5)
    launch_batch(batch, SYSTEM)
    # Time stands still while the first row is dialled: the wait until the next slot is
    # then exactly the calls-per-second gap, however long dialling the fake carrier took.
    with time_machine.travel(timezone.now(), tick=False):
        wait = dispatch.run_dispatch(batch, budget_s=0)
    assert len(dialled(fake_twilio)) == 1
    assert wait == 2.0
    batch.refresh_from_db()
    Call.objects.get(to_number=us_numbers(1)[0])  # the first row was dialled, once
    assert batch.next_dial_at is not None


def test_org_concurrent_call_limit(twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any) -> None:
    twilio_org.max_concurrent_calls = 1
    twilio_org.save()
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(3)), concurrency=5, calls_per_second=50)
    launch_batch(batch, SYSTEM)
    dispatch.run_dispatch(batch, budget_s=0)
    assert len(dialled(fake_twilio)) == 1
    assert BatchEntry.objects.filter(batch=batch, state="pending", attempts=0).count() == 2


def test_calling_window_defers_rows(twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any,
                                    settings: Any) -> None:
    from batches import clock
    from batches.windows import CallingWindow, next_allowed

    # A one-hour window that is closed now in New York: opens 3h from now.
    now = clock.now()
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo("America/New_York"))
    start = (local.hour + 3) % 24
    window = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": f"{start:02d}:00",
              "end": f"{(start + 1) % 24:02d}:00" if start != 23 else "24:00"}
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(2)), calling_window=window,
                       calls_per_second=50)
    launch_batch(batch, SYSTEM)
    wait = dispatch.run_dispatch(batch, budget_s=0)
    assert dialled(fake_twilio) == []
    entry = BatchEntry.objects.filter(batch=batch).first()
    expected = next_allowed(CallingWindow.from_dict(window), entry.e164, "Europe/London", now)
    assert entry.next_attempt_at == expected
    assert wait is not None and wait > 0
    # Move the batches clock to inside the window: both rows are dialled.
    settings.BATCHES_CLOCK_OFFSET_S = float(str((expected - now).total_seconds() + 60))
    dispatch.run_dispatch(batch, budget_s=0)
    assert len(dialled(fake_twilio)) == 2


def test_pause_resume_cancel(twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any) -> None:
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(4)), concurrency=1, calls_per_second=50)
    with pytest.raises(BatchError, match="only a running batch can be paused"):
        pause_batch(batch, SYSTEM)
    launch_batch(batch, SYSTEM)
    dispatch.run_dispatch(batch, budget_s=0)
    pause_batch(batch, SYSTEM)
    (call,) = entry_calls(batch)
    end_call(fake_twilio, call, "completed")
    # Paused: the finished call is recorded, nothing new is dialled.
    assert dispatch.run_dispatch(batch, budget_s=0) is None
    assert len(dialled(fake_twilio)) == 1
    assert BatchEntry.objects.get(batch=batch, row_number=1).state == "done"
    resume_batch(batch, SYSTEM)
    dispatch.run_dispatch(batch, budget_s=0)
    assert len(dialled(fake_twilio)) == 2
    cancel_batch(batch, SYSTEM)
    assert dispatch.run_dispatch(batch, budget_s=0) is not None  # a call is still live
    counts = progress(batch)["counts"]
    assert (counts["canceled"], counts["in_call"], counts["done"]) == (2, 1, 1)
    (call,) = entry_calls(batch)
    end_call(fake_twilio, call, "busy")
    assert dispatch.run_dispatch(batch, budget_s=0) is None
    assert BatchEntry.objects.get(batch=batch, row_number=2).state == "failed"
    assert len(dialled(fake_twilio)) == 2
    with pytest.raises(BatchError, match="already canceled"):
        cancel_batch(batch, SYSTEM)


def test_claim_is_exactly_once_across_redelivery_and_dead_worker(twilio_org: Any, agent_a: Any,
                                                                   twilio_number: Any, fake_twilio: Any) -> None:
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(2)), calls_per_second=50)
    launch_batch(batch, SYSTEM)
    # A worker claims row 1 and dies before dialling.
    claim = dispatch.claim_next(batch)
    assert claim.entry is not None and claim.entry.state == "dialing"
    # Another dispatcher does not take the claimed row.
    batch.refresh_from_db()
    batch.next_dial_at = None
    batch.save()
    other = dispatch.claim_next(batch)
    assert other.entry is not None and other.entry.pk != claim.entry.pk
    dispatch.dial(batch, other.entry)
    # After STALE_CLAIM the dead claim is recovered with the same attempt number...
    BatchEntry.objects.filter(pk=claim.entry.pk).update(claimed_at=claim.entry.claimed_at - timedelta(hours=1))
    dispatch.reconcile(batch)
    recovered = BatchEntry.objects.get(pk=claim.entry.pk)
    assert (recovered.state, recovered.attempts) == ("pending", 0)
    # ...and a late redelivery of the original dial (same idempotency key) dials at most once.
    batch.next_dial_at = None
    batch.save()
    again = dispatch.claim_next(batch)
    assert again.entry.pk == claim.entry.pk and again.entry.attempts == 1
    dispatch.dial(batch, again.entry)
    dispatch.dial(batch, again.entry)
    assert sorted(dialled(fake_twilio)) == sorted(us_numbers(2))


def test_stale_claim_whose_call_exists_is_adopted_not_redialled(twilio_org: Any, agent_a: Any,
                                                                 twilio_number: Any, fake_twilio: Any) -> None:
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(1)), calls_per_second=50)
    launch_batch(batch, SYSTEM)
    claim = dispatch.claim_next(batch)
    # The worker placed the call, then died before recording it on the row.
    place_outbound_call(twilio_org, agent_a, claim.entry.e164, twilio_number, {}, SYSTEM,
                        idempotency_key=claim.entry.idempotency_key)
    BatchEntry.objects.filter(pk=claim.entry.pk).update(claimed_at=claim.entry.claimed_at - timedelta(hours=1))
    dispatch.reconcile(batch)
    entry = BatchEntry.objects.get(pk=claim.entry.pk)
    assert entry.state == "in_call" and entry.last_call is not None
    dispatch.run_dispatch(batch, budget_s=0)
    assert len(dialled(fake_twilio)) == 1


def test_do_not_call_list_blocks_every_outbound_path(twilio_org: Any, agent_a: Any, twilio_number: Any,
                                                     fake_twilio: Any) -> None:
    entry = add_do_not_call(twilio_org, SYSTEM, "+1 (212) 555-1000")
    assert entry.e164 == "+12125551000"
    assert add_do_not_call(twilio_org, SYSTEM, "+12125551000").pk == entry.pk
    with pytest.raises(DoNotCall):
        place_outbound_call(twilio_org, agent_a, "+12125551000", twilio_number, {}, SYSTEM)
    # Added after the batch was created: the dial is refused and the row says why.
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(2, start=1001)), calls_per_second=50)
    add_do_not_call(twilio_org, SYSTEM, "+12125551001")
    launch_batch(batch, SYSTEM)
    dispatch.run_dispatch(batch, budget_s=0)
    row = BatchEntry.objects.get(batch=batch, row_number=1)
    assert row.state == "do_not_call" and "do-not-call" in row.reason
    assert dialled(fake_twilio) == ["+12125551002"]
    remove_do_not_call(entry, SYSTEM)
    place_outbound_call(twilio_org, agent_a, "+12125551000", twilio_number, {}, SYSTEM)


def test_do_not_call_rows_take_no_calls_per_second_slot(twilio_org: Any, agent_a: Any, twilio_number: Any,
                                                       fake_twilio: Any) -> None:
    # Ten listed rows ahead of one callable row, at one call per second: the
    # listed rows are refused at the claim, so the callable row is dialled in the
    # same pass, however fast or slow the machine is.
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(11, start=1001)), calls_per_second=1)
    for n in us_numbers(10, start=1001):  # listed after the upload was classified
        add_do_not_call(twilio_org, SYSTEM, n)
    launch_batch(batch, SYSTEM)
    dispatch.run_dispatch(batch, budget_s=0)
    assert dialled(fake_twilio) == ["+12125551011"]
    rows = BatchEntry.objects.filter(batch=batch).order_by("row_number")
    assert [r.state for r in rows][:10] == ["do_not_call"] * 10
    assert all(r.attempts == 0 for r in rows[:10])


def test_listed_between_claim_and_dial_hands_the_slot_back(twilio_org: Any, agent_a: Any, twilio_number: Any,
                                                          fake_twilio: Any) -> None:
    batch = make_batch(twilio_org, agent_a, twilio_number, csv_of(us_numbers(2, start=1001)), calls_per_second=1)
    launch_batch(batch, SYSTEM)
    claim = dispatch.claim_next(batch)
    assert claim.entry is not None and claim.entry.e164 == "+12125551001"
    add_do_not_call(twilio_org, SYSTEM, "+12125551001")
    dispatch.dial(batch, claim.entry)
    claim.entry.refresh_from_db()
    assert claim.entry.state == "do_not_call"
    nxt = dispatch.claim_next(batch)
    assert nxt.entry is not None and nxt.entry.e164 == "+12125551002"


def test_do_not_call_import(twilio_org: Any) -> None:
    add_do_not_call(twilio_org, SYSTEM, "+12125551000")
    data = b"number;note\n+12125551000;x\n+1 212-555-1001;y\n001 212 555 1001;z\nnope;w\n"
    result = import_do_not_call(twilio_org, SYSTEM, io.BytesIO(data), filename="dnc.csv", phone_column="number")
    assert (result.added, result.already_listed) == (1, 2)
    assert result.invalid == [(4, "not a phone number")]
