"""The results report: one line per input row, in file order.

Columns: row, phone as written, E.164, state, attempts, outcome, reason, call id,
call status, duration, who answered (the answer classification's outcome, empty when it
did not run), then the row's variables, then the analysis fields of the
row's last call (top-level keys; nested values as JSON). Cells are escaped for
spreadsheets by ``batches.report``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from batches.models import Batch, BatchEntry

FIXED = ["row", "phone", "e164", "state", "attempts", "outcome", "reason", "call_id", "call_status", "duration_s",
         "answered_as"]


def _analysis_keys(batch: Batch) -> list[str]:
    keys: dict[str, None] = {}
    analyses = (BatchEntry.objects.filter(batch=batch, last_call__isnull=False)
                .values_list("last_call__analysis", flat=True).iterator(chunk_size=2000))
    for analysis in analyses:
        if isinstance(analysis, dict):
            for key in analysis:
                keys.setdefault(str(key), None)
    return list(keys)


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def result_rows(batch: Batch) -> tuple[list[str], Iterator[list[Any]]]:
    variables = list((batch.variable_columns or {}).values())
    analysis = _analysis_keys(batch)
    header = FIXED + [f"var:{v}" for v in variables] + [f"analysis:{k}" for k in analysis]

    def rows() -> Iterator[list[Any]]:
        entries = (BatchEntry.objects.filter(batch=batch).order_by("row_number")
                   .select_related("last_call").iterator(chunk_size=2000))
        for entry in entries:
            call = entry.last_call
            line = [entry.row_number, entry.raw_phone, entry.e164, entry.state, entry.attempts, entry.outcome,
                    entry.reason, str(call.public_id) if call else "", call.status if call else "",
                    call.duration_s if call and call.duration_s is not None else "",
                    call.answer_outcome if call else ""]
            line += [entry.variables.get(v, "") for v in variables]
            data = call.analysis if call and isinstance(call.analysis, dict) else {}
            line += [_cell(data.get(k, "")) for k in analysis]
            yield line

    return header, rows()
