"""Fake Deepgram management REST API on 127.0.0.1: ``GET /v1/projects`` (what the
credential test asks), authenticated by ``Authorization: Token <key>``.

Point the real ``deepgram-sdk`` at it through its environment's ``base`` URL, or store
``{"base_url": fake.base_url}`` as the org's Deepgram credential config.
"""

from __future__ import annotations

import secrets
from typing import Any

from calls.testing.fake_http import FakeHttpServer, RecordedRequest, Reply


class FakeDeepgramRest(FakeHttpServer):
    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key or "dg-test-" + secrets.token_hex(12)
        self.route("GET", r"/v1/projects", self._projects)

    def authenticate(self, request: RecordedRequest) -> bool:
        return request.header("Authorization") == f"Token {self.api_key}"

    def unauthorized(self) -> Reply:
        return Reply(401, {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                           "request_id": "fake-request"})

    def _projects(self, req: RecordedRequest, m: Any) -> Reply:
        return Reply(200, {"projects": [{"project_id": "3f1c0e3a-0000-4000-8000-000000000001", "name": "Voice"}]})
