"""Suites as YAML files, for review in a repository and import elsewhere.

The file is ``services.export_suite``'s mapping: ``suite``, ``description``,
``concurrency``, ``required_for_publish`` and ``scenarios`` (each with the scenario's
fields by name). Loading uses ``yaml.safe_load`` only (no Python objects from a file), and
a file that is not a mapping is refused before anything is imported.

Size is bounded twice: the file (``MAX_YAML_BYTES``) and what it expands into. YAML
aliases (``&a``/``*a``) let a few hundred bytes name the same list nine times at each of
nine levels (the "billion laughs"): ``safe_load`` shares the objects, but storing the
scenario's JSON fields writes every copy out, so a 400-byte file became tens of
megabytes of JSON and a slightly longer one all the memory of the web process. A file
without aliases never expands past its own size, so the cap on the expanded size
(``MAX_EXPANDED``, counted in values plus characters, and counted only up to the cap)
refuses only such files.
"""

from __future__ import annotations

from typing import Any

import yaml

from simulations.models import Suite
from simulations.services import SimulationError, export_suite

MAX_YAML_BYTES = 512 * 1024
MAX_EXPANDED = 2 * MAX_YAML_BYTES


def dump_suite(suite: Suite) -> str:
    return yaml.safe_dump(export_suite(suite), sort_keys=False, allow_unicode=True, width=100)


def load_suite(text: str | bytes) -> Any:
    if len(text) > MAX_YAML_BYTES:
        raise SimulationError(f"the file is larger than {MAX_YAML_BYTES // 1024} KB", field="file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise SimulationError(f"the file is not valid YAML{line}", field="file") from exc
    if _expands_past(data, MAX_EXPANDED):
        raise SimulationError(f"the file expands past {MAX_EXPANDED:,} values and characters once its YAML "
                              f"aliases (*name) are resolved; write the values out instead", field="file")
    return data


def _expands_past(data: Any, limit: int) -> bool:
    """Whether ``data``, with every shared (aliased) object counted each time it is used,
    holds more than ``limit`` values plus string characters. Stops counting at the limit,
    so it costs at most ``limit`` steps however far the file would expand."""
    seen = 0
    stack = [data]
    while stack:
        value = stack.pop()
        seen += 1 + (len(value) if isinstance(value, (str, bytes)) else 0)
        if seen > limit:
            return True
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, (list, tuple, set)):
            stack.extend(value)
    return False
