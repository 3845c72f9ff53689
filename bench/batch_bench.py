#!/usr/bin/env python
"""Batch benchmark: import rate and dispatch rate.

    .venv/bin/python bench/batch_bench.py                 # 100k-row import, 300-call dispatch
    .venv/bin/python bench/batch_bench.py --rows 20000 --calls 100

1. Parse + validate: a generated 100,000-row CSV (phone + 2 variables, 2% invalid,
   1% duplicates, 1% on the do-not-call list) streamed through
   ``batches.importing.import_rows`` — decoding, delimiter sniffing, phonenumbers
   validation, duplicate and do-not-call classification. Rows/s and peak traced
   memory of a 10k-row run (tracemalloc slows things, so it is measured separately).
2. Full import: the same file through ``create_batch_from_upload`` into Postgres
   (bulk inserts of 2,000 rows in one transaction). Rows/s.
3. Dispatch: a launched batch dialled by the real dispatcher (claim with
   select_for_update(skip_locked), place_outbound_call, twilio SDK → fake Twilio on
   127.0.0.1), while a scripted carrier ends each call with a signed status webhook.
   Calls/s placed with concurrency 100 and calls_per_second 50 (the maxima allowed), with
   BATCHES_DIAL_THREADS carrier requests in flight (default 4). The fake server and the
   scripted carrier share this process (and its GIL), so the figure is a floor.

Runs on a throwaway test database (created and dropped). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceplatform.settings")
os.environ.setdefault("DEBUG", "true")

PUBLIC = "https://voice.bench.example"


def make_csv(rows: int) -> bytes:
    out = io.StringIO()
    out.write("phone,first_name,order_id\n")
    for i in range(rows):
        if i % 50 == 7:
            phone = f"bad-{i}"
        elif i % 100 == 3 and i > 3:
            phone = "+1 212 555 1000"  # duplicate of row 1
        else:
            # distinct valid US numbers across real New York / San Francisco area codes
            area = (212, 415, 646, 718, 917, 310, 312, 617, 206, 303)[i % 10]
            phone = f"+1 ({area}) {200 + (i // 10) // 10000:03d}-{(i // 10) % 10000:04d}"
        out.write(f"{phone},Name{i},{i}\n")
    return out.getvalue().encode()


def bench_parse(data: bytes, dnc: set[str]) -> None:
    from batches.importing import chunked, import_rows

    start = time.perf_counter()
    summary, rows = import_rows(io.BytesIO(data), default_region="US", do_not_call=dnc)
    count = sum(len(chunk) for chunk in chunked(rows, 2000))
    elapsed = time.perf_counter() - start
    print(f"parse+validate   {count:>7} rows in {elapsed:6.2f} s = {count / elapsed:8.0f} rows/s   "
          f"(valid {summary.valid}, invalid {summary.invalid}, duplicate {summary.duplicate}, "
          f"do-not-call {summary.do_not_call}; {len(data) / 1e6:.1f} MB)")
    small = data[: data.index(b"\n", len(data) // 10) + 1]
    tracemalloc.start()
    _, rows = import_rows(io.BytesIO(small), default_region="US", do_not_call=dnc)
    for _chunk in chunked(rows, 2000):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    lines = small.count(b"\n") - 1
    print(f"peak traced memory for {lines} rows: {peak / 1e6:.1f} MB "
          f"(chunk of 2,000 rows + one int per distinct number)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s)")
    data = make_csv(args.rows)
    dnc = {f"+1212200{i:04d}" for i in range(0, 10000, 100)}
    bench_parse(data, dnc)

    original = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        settings.PUBLIC_BASE_URL = PUBLIC
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        bench_db(data, args.calls)
    finally:
        connection.creation.destroy_test_db(original, verbosity=0)


def bench_db(data: bytes, calls: int) -> None:
    from batches import dispatch
    from batches.models import Batch, BatchEntry, BatchStatus
    from batches.services import BatchSettings, create_batch_from_upload, launch_batch
    from batches.testing.processes import CarrierScript
    from calls.testing.fake_twilio import FakeTwilio
    from calls.tests.factories import make_phone_number, make_ready_agent
    from orgs.models import Organization
    from orgs.services import SYSTEM, set_provider_credential

    org = Organization.objects.create(name="Bench", slug="bench-batches", default_country="US",
                                      max_concurrent_calls=1000)
    agent, number = make_ready_agent(org), make_phone_number(org, e164="+14155550100")
    settings_ = BatchSettings(name="Bench", agent=agent, from_number=number, concurrency=100,
                              calls_per_second=50, max_attempts=1)
    start = time.perf_counter()
    batch = create_batch_from_upload(org, SYSTEM, settings_, io.BytesIO(data), filename="bench.csv")
    elapsed = time.perf_counter() - start
    print(f"import into DB   {batch.total_rows:>7} rows in {elapsed:6.2f} s = {batch.total_rows / elapsed:8.0f} rows/s")

    with FakeTwilio() as fake:
        secrets = {k: v for k, v in fake.credentials.items() if k != "base_url"}
        set_provider_credential(org, SYSTEM, "twilio", secrets, config={"base_url": fake.credentials["base_url"]})
        lines = "phone\n" + "".join(f"+1212300{i:04d}\n" for i in range(calls))
        small = create_batch_from_upload(org, SYSTEM, settings_, io.BytesIO(lines.encode()), filename="calls.csv")
        launch_batch(small, SYSTEM)
        script = CarrierScript(fake, PUBLIC, lambda to, n: ("completed", ""), hold_s=0.0)
        stop = threading.Event()

        def carrier() -> None:
            # The phone network runs beside the dispatcher, ending calls as they come.
            from django.db import connection as thread_connection

            while not stop.is_set():
                script.tick()
                time.sleep(0.02)
            thread_connection.close()

        network = threading.Thread(target=carrier, daemon=True)
        network.start()
        start = time.perf_counter()
        placed_at: float | None = None
        while Batch.objects.get(pk=small.pk).status != BatchStatus.COMPLETED:
            dispatch.run_dispatch(small, budget_s=0.5)
            if placed_at is None and len(fake.calls) >= calls:
                placed_at = time.perf_counter() - start
        total = time.perf_counter() - start
        stop.set()
        network.join(timeout=10)
        done = BatchEntry.objects.filter(batch=small, state="done").count()
        print(f"dispatch         {len(fake.calls):>7} calls placed in {placed_at or total:6.2f} s = "
              f"{len(fake.calls) / (placed_at or total):8.1f} calls/s (one dispatcher; run to completion incl. "
              f"status webhooks {total:.2f} s, {done} rows done, most live at once {script.max_live})")


if __name__ == "__main__":
    main()
