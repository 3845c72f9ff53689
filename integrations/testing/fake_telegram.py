"""A fake Telegram Bot API (``/bot<token>/<method>``) on 127.0.0.1.

Speaks the real envelope: ``{"ok": true, "result": …}`` / ``{"ok": false, "error_code", "description"}``
with Telegram's real status codes (401 for a bad token, 400 "chat not found").
"""
from __future__ import annotations

import itertools
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from integrations.testing.asgi_server import FakeServer


class FakeTelegram(FakeServer):
    def __init__(self, *, tokens: set[str] | None = None, chats: dict[int, str] | None = None) -> None:
        super().__init__()
        self.tokens = tokens if tokens is not None else {"123:ABC"}
        self.chats: dict[int, str] = chats if chats is not None else {1001: "alice", -2002: "support group"}
        self.sent: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(500)
        self.app = Starlette(routes=[Route("/bot{token}/{method}", self._dispatch, methods=["POST", "GET"])])

    def queue_incoming(self, chat_id: int, text: str, sender: str = "alice") -> int:
        """A user wrote to the bot; it shows up in getUpdates."""
        update_id = next(self._update_ids)
        self.updates.append(
            {
                "update_id": update_id,
                "message": {
                    "message_id": next(self._ids),
                    "from": {"id": chat_id, "is_bot": False, "first_name": sender, "username": sender},
                    "chat": {"id": chat_id, "type": "private", "first_name": sender},
                    "date": int(time.time()),
                    "text": text,
                },
            }
        )
        return update_id

    @staticmethod
    def _fail(code: int, description: str) -> JSONResponse:
        return JSONResponse({"ok": False, "error_code": code, "description": description}, status_code=code)

    async def _dispatch(self, request: Request) -> JSONResponse:
        token = request.path_params["token"]
        method = request.path_params["method"]
        payload = await request.json() if request.method == "POST" else dict(request.query_params)
        self.requests.append({"method": method, "token": token, "payload": payload})
        if token not in self.tokens:
            return self._fail(401, "Unauthorized")
        if method == "sendMessage":
            return self._send(payload)
        if method == "getUpdates":
            return self._get_updates(payload)
        return self._fail(404, "Not Found")

    def _send(self, payload: dict[str, Any]) -> JSONResponse:
        raw_chat = payload.get("chat_id")
        if raw_chat is None or not payload.get("text"):
            return self._fail(400, "Bad Request: message text is empty" if raw_chat else "Bad Request: chat_id is empty")
        try:
            chat_id = int(raw_chat)
        except (TypeError, ValueError):
            return self._fail(400, "Bad Request: chat not found")
        if chat_id not in self.chats:
            return self._fail(400, "Bad Request: chat not found")
        message = {
            "message_id": next(self._ids),
            "from": {"id": 42, "is_bot": True, "first_name": "VoiceBot", "username": "voice_bot"},
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group", "first_name": self.chats[chat_id]},
            "date": int(time.time()),
            "text": payload["text"],
        }
        self.sent.append({**payload, "message_id": message["message_id"]})
        return JSONResponse({"ok": True, "result": message})

    def _get_updates(self, payload: dict[str, Any]) -> JSONResponse:
        offset = payload.get("offset")
        if offset is not None:
            # Telegram semantics: updates with id < offset are confirmed and forgotten.
            self.updates = [u for u in self.updates if u["update_id"] >= int(offset)]
        limit = int(payload.get("limit", 100))
        return JSONResponse({"ok": True, "result": self.updates[:limit]})
