"""The errors every calls service raises: one family, ``CallError`` at its root.

Each is a ``voiceplatform.errors.ServiceError``: ``field`` names the API/form input at
fault (None when no single input is), ``code`` is the machine-readable kind and
``status`` the HTTP status the API answers with (429 for ``ConcurrencyLimitReached``,
502 for ``CarrierUnavailable``, 400 otherwise).
"""

from __future__ import annotations

from voiceplatform.errors import ServiceError


class CallError(ServiceError):
    """A call operation was refused; ``field`` names the input at fault, if any."""

    code = "call_error"


class MissingVariables(CallError):
    """The agent's texts need call variables the request did not give."""

    code = "missing_variables"


class ConcurrencyLimitReached(CallError):
    """The organisation has as many live calls as it may have."""

    code = "concurrency_limit"
    status = 429


class DoNotCall(CallError):
    """A do-not-call check refused the number."""

    code = "do_not_call"


class CarrierUnavailable(CallError):
    """The carrier's API failed or refused; ``retryable`` says whether trying again may help."""

    code = "carrier_error"
    status = 502

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
