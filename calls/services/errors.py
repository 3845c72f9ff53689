"""The errors every calls service raises: one family, ``CallError`` at its root.

``field`` names the API/form input at fault (None when no single input is); views and
the API map these to their responses (``CarrierUnavailable`` → 503, the others → 400/409).
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
    code = "missing_variables"


class ConcurrencyLimitReached(CallError):
    code = "concurrency_limit"


class DoNotCall(CallError):
    code = "do_not_call"


class CarrierUnavailable(CallError):
    code = "carrier_error"

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
