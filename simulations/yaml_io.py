"""Suites as YAML files, for review in a repository and import elsewhere.

The file is ``services.export_suite``'s mapping: ``suite``, ``description``,
``concurrency``, ``required_for_publish`` and ``scenarios`` (each with the scenario's
fields by name). Loading uses ``yaml.safe_load`` only (no Python objects from a file), and
a file that is not a mapping is refused before anything is imported.
"""

from __future__ import annotations

from typing import Any

import yaml

from simulations.models import Suite
from simulations.services import SimulationError, export_suite

MAX_YAML_BYTES = 512 * 1024


def dump_suite(suite: Suite) -> str:
    return yaml.safe_dump(export_suite(suite), sort_keys=False, allow_unicode=True, width=100)


def load_suite(text: str | bytes) -> Any:
    if len(text) > MAX_YAML_BYTES:
        raise SimulationError(f"the file is larger than {MAX_YAML_BYTES // 1024} KB", field="file")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise SimulationError(f"the file is not valid YAML{line}", field="file") from exc
