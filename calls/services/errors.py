"""The errors every calls service raises: one family, ``CallError`` at its root.

``field`` names the API/form input at fault (None when no single input is); ``code`` is
the machine-readable kind. The API answers ``ConcurrencyLimitReached`` with 429,
``CarrierUnavailable`` with 502 and the others with 400 (``calls.api.views``).
"""

from __future__ import annotations


class CallError(Exception):
    """A call operation was refused; ``field`` names the input at fault, if any."""

    code = "call_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class MissingVariables(CallError):
    """The agent's texts need call variables the request did not give."""

    code = "missing_variables"


class ConcurrencyLimitReached(CallError):
    """The organisation has as many live calls as it may have."""

    code = "concurrency_limit"


class DoNotCall(CallError):
    """A do-not-call check refused the number."""

    code = "do_not_call"


class CarrierUnavailable(CallError):
    """The carrier's API failed or refused; ``retryable`` says whether trying again may help."""

    code = "carrier_error"

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
