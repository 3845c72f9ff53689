"""One error type for every refusal a service gives, and its two presentations.

A service refuses a request with a ``ServiceError`` (or an app's subclass: ``CallError``,
``BatchError``, ``AgentError``, ``ScheduleError``, ``UploadError``…). It carries:

- ``message``: the human sentence, without a ``"field: "`` prefix (the field is data, not text);
- ``field``: the API/form input at fault, or None when no single input is;
- ``code``: the machine-readable kind, stable for API clients;
- ``status``: the HTTP status the API answers with.

It is presented in exactly two places, so views never translate errors themselves:

- the API: ``voiceplatform.drf.exception_handler`` (via ``api_exception``). An error with a
  field answers 400 like a serializer error (``{"code": "invalid", "message": "to: why",
  "fields": {"to": ["why"]}}``); one without answers ``status`` with its own ``code``.
- the dashboard (and the admin's forms): ``show_error``/``form_error`` put the message on
  the form field it names (or on the form as a whole), or, with no form, in the page's
  messages.

This module imports no DRF at the top: DRF loads ``voiceplatform.drf`` while starting up.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django import forms
    from django.http import HttpRequest
    from rest_framework.exceptions import APIException


class ServiceError(Exception):
    """A service refused the request; see the module docstring for the attributes."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


def api_exception(error: ServiceError) -> APIException:
    """The DRF exception the API answers ``error`` with (the one mapping for the API)."""
    from rest_framework import exceptions

    if error.field:
        return exceptions.ValidationError({error.field: [error.message]})
    answer = exceptions.APIException(detail=error.message, code=error.code)
    answer.status_code = error.status
    return answer


def show_error(request: HttpRequest, error: ServiceError, form: forms.BaseForm | None = None, *,
               fields: Mapping[str | None, str] | None = None) -> None:
    """Show ``error`` where the user is looking (the one mapping for the dashboard): on
    ``form`` (see ``form_error``) when there is one, else as an error message of the page."""
    if form is not None:
        form_error(form, error, fields=fields)
        return
    from django.contrib import messages

    messages.error(request, error.message)


def form_error(form: forms.BaseForm, error: ServiceError, *,
               fields: Mapping[str | None, str] | None = None) -> None:
    """Put ``error`` on the form field it names when the form has it, else at the top of
    the form. ``fields`` renames a service field to the form's (``{"calling_window":
    "window_days"}``); its key None places errors that name no field."""
    name: Any = (fields or {}).get(error.field, error.field)
    form.add_error(name if name in form.fields else None, error.message)
