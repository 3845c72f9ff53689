"""Typed environment helpers that fail loudly on bad values.

Every setting that can come from the environment goes through one of these, so a
typo such as ``DEBUG=ture`` stops the process with a message naming the variable
instead of silently meaning ``False``.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ImproperlyConfiguredEnv(RuntimeError):
    """A variable is present but its value cannot be used."""


_MISSING = object()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value is not None else None


def env_str(name: str, default: str | object = _MISSING) -> str:
    value = _raw(name)
    if value is None or value == "":
        if default is _MISSING:
            raise ImproperlyConfiguredEnv(f"{name} must be set")
        return default  # type: ignore[return-value]
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfiguredEnv(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no)")


def _parsed(name: str, default: T, parse: Callable[[str], T], what: str) -> T:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        return parse(value)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name}={value!r} is not {what}") from None


def env_int(name: str, default: int) -> int:
    return _parsed(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    return _parsed(name, default, float, "a number")


def env_list(name: str, default: list[str] | None = None, sep: str = ",") -> list[str]:
    value = _raw(name)
    if value is None or value == "":
        return list(default or [])
    return [item.strip() for item in value.split(sep) if item.strip()]


def env_json(name: str, default: T, parse: Callable[[object], T] | None = None) -> T:
    """A JSON value, checked by ``parse`` (which raises ``ValueError`` naming what is wrong)."""
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        decoded = json.loads(value)
        return parse(decoded) if parse is not None else decoded
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ImproperlyConfiguredEnv(f"{name} is not valid: {exc}") from None
