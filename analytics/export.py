"""CSV export of the analytics services' results: the same dicts the API returns as
JSON, flattened to one figure per line (``section, item, metric, value``), so a
spreadsheet and the dashboard read the same numbers.

- ``section``: the result's top-level key (``totals``, ``days``, ``latency``…);
- ``item``: for list entries, what identifies the entry (``day=2026-12-01``,
  ``provider=openai_realtime/model=…/carrier=twilio``), empty otherwise;
- ``metric``: the figure's name, dotted for nested figures (``outcomes.completed``);
- ``value``: the figure as in the JSON (empty for null). Cells a spreadsheet would
  evaluate as a formula are escaped (``batches.report``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from batches.report import iter_csv

HEADER = ("section", "item", "metric", "value")
#: Keys that identify a list entry rather than measure it, in the order they are named.
LABELS = ("day", "hour", "stage", "reason", "number", "version", "provider", "model", "carrier", "currency")


def _is_label(key: str, value: Any) -> bool:
    return key in LABELS and not isinstance(value, dict | list)


def _label(entry: dict[str, Any]) -> str:
    return "/".join(f"{k}={entry[k]}" for k in LABELS if k in entry and _is_label(k, entry[k]))


def _figures(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _figures(f"{prefix}.{key}" if prefix else str(key), inner)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            if isinstance(inner, dict):
                measures = {k: v for k, v in inner.items() if not _is_label(k, v)}
                yield from _figures(f"{prefix}[{_label(inner) or index}]", measures)
            else:
                yield f"{prefix}[{index}]", inner
    else:
        yield prefix, value


def rows(result: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """The ``(section, item, metric, value)`` lines of a service result."""
    for section, value in result.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for entry in value:
                measures = {k: v for k, v in entry.items() if not _is_label(k, v)}
                for metric, figure in _figures("", measures):
                    yield section, _label(entry), metric, figure
        elif isinstance(value, dict | list):
            for metric, figure in _figures("", value):
                yield section, "", metric, figure
        else:
            yield section, "", "", value


def to_csv(result: dict[str, Any]) -> Iterator[str]:
    """The CSV text of ``result``, line by line (UTF-8 BOM first, for spreadsheets)."""
    return iter_csv(HEADER, ([s, i, m, "" if v is None else v] for s, i, m, v in rows(result)))
