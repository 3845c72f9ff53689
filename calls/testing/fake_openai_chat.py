"""A fake OpenAI Chat Completions API on 127.0.0.1 (``POST /v1/chat/completions``, ``GET /v1/models``;
Azure OpenAI's ``GET /openai/models?api-version=…`` with the ``api-key`` header).

Point the real ``openai`` SDK at it with ``OpenAI(api_key=fake.api_key,
base_url=fake.base_url + "/v1")`` — or store ``{"base_url": fake.base_url + "/v1"}``
as the org's OpenAI credential config. Replies are queued by the test with
:meth:`reply_json` (the assistant message content is the JSON text, as with
``response_format={"type": "json_schema", …}``) or :meth:`fail`.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from calls.testing.fake_http import FakeHttpServer, RecordedRequest, Reply


class FakeOpenAIChat(FakeHttpServer):
    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key or "sk-test-" + secrets.token_hex(12)
        self._replies: list[Reply | str] = []
        self.route("POST", r"/v1/chat/completions", self._complete)
        self.route("GET", r"/v1/models", self._models)
        # Azure OpenAI's shape of the same list (api-version query, api-key header).
        self.route("GET", r"/openai/models", self._models)

    @property
    def credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key, "base_url": self.base_url + "/v1"}

    def reply_json(self, payload: Any) -> None:
        """Queue one assistant reply whose content is ``payload`` as JSON text."""
        self._replies.append(json.dumps(payload))

    def reply_text(self, content: str) -> None:
        self._replies.append(content)

    def fail(self, status: int, message: str, code: str = "server_error") -> None:
        self._replies.append(Reply(status, {"error": {"message": message, "type": code, "param": None, "code": code}}))

    def authenticate(self, request: RecordedRequest) -> bool:
        if request.path.startswith("/openai/"):
            return request.header("api-key") == self.api_key and bool(request.query.get("api-version"))
        return request.header("Authorization") == f"Bearer {self.api_key}"

    def unauthorized(self) -> Reply:
        return Reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                     "param": None, "code": "invalid_api_key"}})

    def _models(self, req: RecordedRequest, m: Any) -> Reply:
        """The model list, as ``GET /v1/models`` returns it."""
        return Reply(200, {"object": "list", "data": [
            {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "openai"}
            for name in ("gpt-4.1-mini", "gpt-realtime")]})

    def _complete(self, req: RecordedRequest, m: Any) -> Reply:
        body = req.json if isinstance(req.json, dict) else {}
        if not body.get("model") or not isinstance(body.get("messages"), list) or not body["messages"]:
            return Reply(400, {"error": {"message": "model and messages are required", "type": "invalid_request_error",
                                         "param": "messages", "code": None}})
        if not self._replies:
            return Reply(500, {"error": {"message": "fake has no reply queued", "type": "server_error",
                                         "param": None, "code": None}})
        reply = self._replies.pop(0)
        if isinstance(reply, Reply):
            return reply
        return Reply(200, {
            "id": "chatcmpl-" + secrets.token_hex(8),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        })
