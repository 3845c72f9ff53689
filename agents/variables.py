"""Call variables in prompts: ``{{customer_name}}``, with an optional default ``{{name|there}}``.

Values come from the call, the batch row or the API request. A variable with no
value and no default is an error at dial time (:class:`MissingVariable`), never a
literal ``{{…}}`` read out to a caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?:\|(?P<default>[^{}]*))?\}\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateSyntaxError(ValueError):
    """A ``{{`` … ``}}`` that is not a valid placeholder."""


class MissingVariable(KeyError):
    """Placeholders without a value; ``names`` lists every one (sorted)."""

    def __init__(self, names: list[str], where: str = "") -> None:
        self.names = sorted(set(names))
        self.where = where
        super().__init__(self.__str__())

    def __str__(self) -> str:
        place = f" in the {self.where}" if self.where else ""
        listed = ", ".join(self.names)
        return f"missing call variable(s){place}: {listed} (pass them in the call's variables)"


def check_syntax(template: str) -> None:
    """Raise :class:`TemplateSyntaxError` naming the first malformed placeholder."""
    stripped = _PLACEHOLDER.sub("", template)
    for marker in ("{{", "}}"):
        pos = stripped.find(marker)
        if pos != -1:
            snippet = stripped[max(0, pos - 15):pos + 25].replace("\n", " ")
            raise TemplateSyntaxError(
                f"malformed placeholder near “{snippet}”: use {{{{name}}}} with letters, digits and underscores"
            )


def variables_in(template: str) -> list[str]:
    """Names used in ``template``, in first-use order, without repeats."""
    seen: dict[str, None] = {}
    for match in _PLACEHOLDER.finditer(template):
        seen.setdefault(match.group("name"), None)
    return list(seen)


@dataclass(frozen=True)
class Placeholder:
    """One call variable a set of texts uses: its name and the default a call gets without a
    value (``None``: the call must give one, or it fails before anyone is connected)."""

    name: str
    default: str | None

    @property
    def required(self) -> bool:
        return self.default is None


def placeholders(*templates: str) -> list[Placeholder]:
    """The variables ``templates`` use, in first-use order, one entry per name.

    A name is required when any of its uses has no default (rendering that text would
    fail without a value); otherwise its default is the first one given, stripped as
    :func:`render` applies it."""
    defaults: dict[str, str | None] = {}
    required: set[str] = set()
    for template in templates:
        for match in _PLACEHOLDER.finditer(template or ""):
            name, default = match.group("name"), match.group("default")
            if default is None:
                required.add(name)
            if name not in defaults or defaults[name] is None:
                defaults[name] = default.strip() if default is not None else None
    return [Placeholder(name, None if name in required else default) for name, default in defaults.items()]


def required_variables(template: str) -> list[str]:
    """Names that have no default in ``template``."""
    required = {m.group("name") for m in _PLACEHOLDER.finditer(template) if m.group("default") is None}
    return [name for name in variables_in(template) if name in required]


def render(template: str, values: Mapping[str, Any], *, where: str = "") -> str:
    """Fill placeholders from ``values`` (None or "" counts as missing, then the default applies)."""
    check_syntax(template)
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        value = values.get(name)
        if value is None or value == "":
            if default is not None:
                return default.strip()
            missing.append(name)
            return ""
        return str(value)

    result = _PLACEHOLDER.sub(fill, template)
    if missing:
        raise MissingVariable(missing, where)
    return result


def validate_names(values: Mapping[str, Any]) -> None:
    """Variable names from API requests/batch rows must be placeholder-compatible."""
    bad = [k for k in values if not _NAME.match(str(k))]
    if bad:
        raise ValueError(f"invalid variable name(s): {', '.join(map(str, bad))} (letters, digits, underscores)")
