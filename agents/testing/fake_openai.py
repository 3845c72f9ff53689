"""Fake OpenAI Realtime (GA) server for the real ``openai`` SDK.

Serves ``ws://127.0.0.1:PORT/v1/realtime?model=…`` and speaks the GA event
names (``response.output_audio.delta`` etc.; protocols.md §3). Point the SDK at
it with ``AsyncOpenAI(api_key=fake.api_key, websocket_base_url=fake.url)``, or
pass ``base_url=fake.url`` in a :class:`~agents.bridges.base.SessionConfig`.

Behaviour:

* ``session.created`` on connect; ``session.update`` → ``session.updated``.
* A tiny server VAD: the first ``input_audio_buffer.append`` after silence
  emits ``input_audio_buffer.speech_started``; after ``turn_bytes`` of caller
  audio it emits ``speech_stopped``, ``committed``, the caller transcription
  (next text from :meth:`caller_says`, if any) and runs the next script step —
  unless the session's ``turn_detection.create_response`` is false (held: the turn
  is transcribed and nobody answers until a ``response.create``).
  Caller audio while a paced :class:`AgentTurn` is streaming is a barge-in: the
  server cancels the response (``response.done`` with status ``cancelled``), as
  the real API does with ``interrupt_response: true``.
* While a conversation response is in progress (``response.created``, no ``response.done``
  yet) a ``response.create`` is refused with ``conversation_already_has_active_response``,
  as the service refuses it; out-of-band asides do not count.
* ``response.create`` (after a ``function_call_output`` or a user text
  message, or on its own) runs the next script step. ``conversation.item.create``
  items are checked as the API does (a user message carries ``input_text``/
  ``input_audio``/``input_image`` parts, an assistant one ``output_*``); a bad
  one gets an ``invalid_value`` error. :meth:`user_texts` lists the user text sent.
* ``response.create`` with ``response.conversation: "none"`` (out of band) speaks its
  instructions' line (the text after the first ``": "``) with ``aside_audio``, echoing ``metadata`` in ``response.created``, without using a script step.
  ``response.cancel`` with a ``response_id`` cancels only that response.
* A session updated with ``output_modalities: ["text"]`` answers each :class:`AgentTurn`
  with ``response.output_text.delta``/``done`` (its transcript) and no audio.
* ``conversation.item.truncate`` → ``conversation.item.truncated``.
* Anything unknown → an ``error`` event, like the real API.
* Azure OpenAI shape (``azure_api_version`` given): serves
  ``/openai/realtime?api-version=…&deployment=…`` instead, authenticated by the
  ``api-key`` header; a wrong version or deployment is a 404 as on Azure.
  :attr:`azure_endpoint` is the credential ``base_url`` for it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from agents.testing.script import AgentTurn, FunctionCall, GoAway, ProviderFailure, Step
from agents.testing.server import ConnState, FakeServer


class FakeOpenAIRealtime(FakeServer):
    """See module docstring. ``turn_bytes``: caller audio that makes one VAD turn."""

    def __init__(self, *, api_key: str = "sk-test", turn_bytes: int = 1600,
                 azure_api_version: str | None = None, azure_deployment: str = "",
                 aside_audio: bytes = b"\x10" * 1600, quiet_silence: bool = False) -> None:
        super().__init__()
        self.api_key = api_key
        self.aside_audio = aside_audio
        # True: µ-law silence (a phone line's idle frames) is not speech, and silence after
        # speech ends the turn, as the real server VAD does (the simulation line streams
        # audio continuously); False: every appended byte counts toward ``turn_bytes``.
        self.quiet_silence = quiet_silence
        self.azure_api_version = azure_api_version
        self.azure_deployment = azure_deployment
        self.turn_bytes = turn_bytes
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        """The ``websocket_base_url`` for the SDK."""
        return f"ws://127.0.0.1:{self.port}/v1"

    def session_config_kwargs(self) -> dict[str, Any]:
        """``SessionConfig`` fields that point the OpenAI bridge at this fake."""
        return {"credentials": {"api_key": self.api_key}, "base_url": self.url}

    def message_type(self, message: dict[str, Any]) -> str:
        return str(message.get("type", ""))

    @property
    def azure_endpoint(self) -> str:
        """The Azure-style endpoint (credential ``base_url``) of this fake."""
        return f"http://127.0.0.1:{self.port}"

    def authorize(self, request: Request) -> int | None:
        if self.azure_api_version is not None:
            parts = urlsplit(request.path)
            query = parse_qs(parts.query)
            if (parts.path != "/openai/realtime" or query.get("api-version") != [self.azure_api_version]
                    or query.get("deployment") != [self.azure_deployment]):
                return 404
            return None if request.headers.get("api-key") == self.api_key else 401
        if not request.path.startswith("/v1/realtime"):
            return 404
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401
        return None

    def user_texts(self) -> list[str]:
        """The text of every user message item the client created, in order."""
        return [
            part["text"]
            for m in self.received_of("conversation.item.create")
            if m.get("item", {}).get("type") == "message" and m["item"].get("role") == "user"
            for part in m["item"].get("content", [])
            if part.get("type") == "input_text"
        ]

    def audio_received(self) -> bytes:
        """All caller audio appended so far, decoded."""
        return b"".join(
            base64.b64decode(m["audio"]) for m in self.received_of("input_audio_buffer.append")
        )

    # -- protocol --------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    async def handle(self, conn: ServerConnection) -> None:
        state = _Conn(conn)
        session: dict[str, Any] = {"type": "realtime", "id": self._id("sess"), "object": "realtime.session"}
        state.session = session
        await self.send_json(conn, {"type": "session.created", "event_id": self._id("event"), "session": session})
        try:
            async for raw in conn:
                msg = json.loads(raw)
                self._record(msg)
                await self._dispatch(state, session, msg)
        except ConnectionClosed:
            pass
        finally:
            if state.turn_task is not None:
                state.turn_task.cancel()

    async def _dispatch(self, st: _Conn, session: dict[str, Any], msg: dict[str, Any]) -> None:
        release = st.late_done if st.late_done_due else None
        await self._on_message(st, session, msg)
        if release is not None and st.late_done is release:
            st.late_done, st.late_done_due = None, False
            await self._done(st, release)

    async def _done(self, st: _Conn, done: dict[str, Any]) -> None:
        """Send a ``response.done``: the response is no longer active."""
        st.active.discard(done["response"].get("id"))
        await self.send_json(st.conn, done)

    async def _on_message(self, st: _Conn, session: dict[str, Any], msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        conn = st.conn
        if kind == "session.update":
            session.update(msg.get("session", {}))
            st.text_only = session.get("output_modalities") == ["text"]
            await self.send_json(conn, {"type": "session.updated", "event_id": self._id("event"), "session": session})
        elif kind == "input_audio_buffer.append":
            audio = base64.b64decode(msg.get("audio", ""))
            if self.quiet_silence and not audio.strip(b"\xff\x7f"):
                if st.in_speech:
                    await self._end_turn(st)
                return
            await self._on_audio(st, len(audio))
        elif kind == "conversation.item.create":
            item = dict(msg.get("item", {}))
            problem = _item_problem(item)
            if problem is not None:
                await self._error(conn, "invalid_request_error", "invalid_value", problem)
                return
            item.setdefault("id", self._id("item"))
            await self.send_json(conn, {"type": "conversation.item.added", "item": item})
            await self.send_json(conn, {"type": "conversation.item.done", "item": item})
            if (st.late_done is not None and item.get("type") == "function_call_output"
                    and item.get("call_id") == st.late_done["response"]["output"][0]["call_id"]):
                st.late_done_due = True  # finished after the client's next message
        elif kind == "response.create":
            response = msg.get("response") or {}
            if response.get("conversation") == "none":
                await self._speak_aside(st, response)
            elif st.active:
                await self._error(conn, "invalid_request_error", "conversation_already_has_active_response",
                                  f"Conversation already has an active response in progress: {min(st.active)}. "
                                  "Wait until the response is finished before creating a new one.")
            else:
                await self._trigger(st)
        elif kind == "conversation.item.truncate":
            await self.send_json(
                conn,
                {
                    "type": "conversation.item.truncated",
                    "item_id": msg.get("item_id"),
                    "content_index": msg.get("content_index", 0),
                    "audio_end_ms": msg.get("audio_end_ms"),
                },
            )
        elif kind == "response.cancel":
            if msg.get("response_id") and msg["response_id"] != st.response_id:
                await self._error(conn, "invalid_request_error", "response_cancel_not_active",
                                  "Cancellation failed: no active response found.")
            elif st.speaking():
                await self._cancel_turn(st)
            else:
                await self._error(conn, "invalid_request_error", "response_cancel_not_active",
                                  "Cancellation failed: no active response found.")
        else:
            await self._error(conn, "invalid_request_error", "unknown_event",
                              f"Invalid value: '{kind}'. Supported values are client events.")

    async def _error(self, conn: ServerConnection, type_: str, code: str, message: str) -> None:
        await self.send_json(
            conn,
            {"type": "error", "event_id": self._id("event"),
             "error": {"type": type_, "code": code, "message": message, "param": None, "event_id": None}},
        )

    async def _on_audio(self, st: _Conn, n: int) -> None:
        if st.speaking():
            # Server VAD with interrupt_response: caller speech cancels the reply.
            st.in_speech = True
            st.user_item = self._id("item")
            await self.send_json(st.conn, {"type": "input_audio_buffer.speech_started",
                                           "audio_start_ms": st.audio_ms, "item_id": st.user_item})
            await self._cancel_turn(st)
        elif not st.in_speech:
            st.in_speech = True
            st.user_item = self._id("item")
            await self.send_json(st.conn, {"type": "input_audio_buffer.speech_started",
                                           "audio_start_ms": st.audio_ms, "item_id": st.user_item})
        st.pending_bytes += n
        st.audio_ms += n // 8
        if st.pending_bytes >= self.turn_bytes:
            await self._end_turn(st)

    async def _end_turn(self, st: _Conn) -> None:
        """The caller's turn ends: stopped, committed, transcribed, answered."""
        st.pending_bytes = 0
        st.in_speech = False
        item = st.user_item or self._id("item")
        await self.send_json(st.conn, {"type": "input_audio_buffer.speech_stopped",
                                       "audio_end_ms": st.audio_ms, "item_id": item})
        await self.send_json(st.conn, {"type": "input_audio_buffer.committed", "item_id": item,
                                       "previous_item_id": None})
        text = self.next_caller_text()
        if text is not None:
            await self.send_json(st.conn, {"type": "conversation.item.input_audio_transcription.delta",
                                           "item_id": item, "content_index": 0, "delta": text})
            await self.send_json(st.conn, {"type": "conversation.item.input_audio_transcription.completed",
                                           "item_id": item, "content_index": 0, "transcript": text,
                                           "usage": {"type": "duration", "seconds": 1}})
        st.user_item = None
        turn_detection = st.session.get("audio", {}).get("input", {}).get("turn_detection") or {}
        if turn_detection.get("create_response", True):
            await self._trigger(st)

    async def _cancel_turn(self, st: _Conn) -> None:
        if await st.stop_turn():
            await self._done(st, {"type": "response.done", "response": {
                "id": st.response_id, "object": "realtime.response", "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "turn_detected"}, "output": [], "usage": None}})

    async def _trigger(self, st: _Conn) -> None:
        await self.run_script(st, lambda step: self._run(st, step))

    async def _run(self, st: _Conn, step: Step) -> bool:
        conn = st.conn
        if isinstance(step, AgentTurn):
            await st.start_turn(self._speak(st, step), paced=step.pace > 0)
            return True
        if isinstance(step, FunctionCall):
            rid, item = self._id("resp"), self._id("item")
            st.active.add(rid)
            await self.send_json(conn, {"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
            await self.send_json(conn, {"type": "response.output_item.added", "response_id": rid, "output_index": 0,
                                        "item": {"id": item, "type": "function_call", "call_id": step.call_id,
                                                 "name": step.name, "arguments": ""}})
            args = json.dumps(step.arguments)
            await self.send_json(conn, {"type": "response.function_call_arguments.delta", "response_id": rid,
                                        "item_id": item, "output_index": 0, "call_id": step.call_id, "delta": args})
            await self.send_json(conn, {"type": "response.function_call_arguments.done", "response_id": rid,
                                        "item_id": item, "output_index": 0, "call_id": step.call_id,
                                        "name": step.name, "arguments": args})
            done = {"type": "response.done", "response": {
                "id": rid, "status": "completed", "output": [{"id": item, "type": "function_call",
                "call_id": step.call_id, "name": step.name, "arguments": args}],
                "usage": step.usage}}
            if step.done_late:
                st.late_done = done
            else:
                await self._done(st, done)
            return True
        if isinstance(step, ProviderFailure):
            await self._error(conn, "server_error" if step.fatal or step.code == "server_error"
                              else "invalid_request_error", step.code, step.message)
            if step.fatal:
                await conn.close(step.close_code, step.message[:100])
                return True
            return False
        if isinstance(step, GoAway):
            raise TypeError("GoAway is a Gemini-only step")
        raise TypeError(f"unknown step {step!r}")

    async def _speak_aside(self, st: _Conn, response: dict[str, Any]) -> None:
        """An out-of-band response: voices what its instructions ask to say (the text after
        the first ": ") with ``aside_audio``, all at once as the API streams faster than
        real time; no script step is used."""
        text = str(response.get("instructions") or "").split(": ", 1)[-1]
        turn = AgentTurn(audio=self.aside_audio, transcript=text, chunk_bytes=160)
        await st.start_turn(self._speak(st, turn, metadata=response.get("metadata")), paced=False)

    async def _speak(self, st: _Conn, turn: AgentTurn, metadata: dict[str, Any] | None = None) -> None:
        conn = st.conn
        rid, item = self._id("resp"), self._id("item")
        st.response_id = rid
        if metadata is None:  # out-of-band asides are not the conversation's active response
            st.active.add(rid)
        await self.send_json(conn, {"type": "response.created", "response": {
            "id": rid, "status": "in_progress", "metadata": metadata}})
        await self.send_json(conn, {"type": "response.output_item.added", "response_id": rid, "output_index": 0,
                                    "item": {"id": item, "type": "message", "role": "assistant", "content": []}})
        if st.text_only:
            # a text session: the turn's words as output_text, no audio at all
            for i, word in enumerate(turn.transcript.split(" ") if turn.transcript else []):
                await self.send_json(conn, {"type": "response.output_text.delta", "response_id": rid, "item_id": item,
                                            "output_index": 0, "content_index": 0,
                                            "delta": word if i == 0 else " " + word})
            await self.send_json(conn, {"type": "response.output_text.done", "response_id": rid, "item_id": item,
                                        "output_index": 0, "content_index": 0, "text": turn.transcript})
            await self._done(st, {"type": "response.done", "response": {
                "id": rid, "object": "realtime.response", "status": "completed",
                "output": [{"id": item, "type": "message", "role": "assistant"}], "usage": turn.usage}})
            return
        words = turn.transcript.split(" ") if turn.transcript else []
        chunks = [turn.audio[i:i + turn.chunk_bytes] for i in range(0, len(turn.audio), turn.chunk_bytes)]
        for i in range(max(len(chunks), len(words))):
            if i < len(chunks):
                await self.send_json(conn, {"type": "response.output_audio.delta", "response_id": rid,
                                            "item_id": item, "output_index": 0, "content_index": 0,
                                            "delta": base64.b64encode(chunks[i]).decode()})
            if i < len(words):
                await self.send_json(conn, {"type": "response.output_audio_transcript.delta", "response_id": rid,
                                            "item_id": item, "output_index": 0, "content_index": 0,
                                            "delta": words[i] if i == 0 else " " + words[i]})
            if turn.pace:
                await asyncio.sleep(turn.pace)
        await self.send_json(conn, {"type": "response.output_audio.done", "response_id": rid, "item_id": item,
                                    "output_index": 0, "content_index": 0})
        await self.send_json(conn, {"type": "response.output_audio_transcript.done", "response_id": rid,
                                    "item_id": item, "output_index": 0, "content_index": 0,
                                    "transcript": turn.transcript})
        await self._done(st, {"type": "response.done", "response": {
            "id": rid, "object": "realtime.response", "status": "completed",
            "output": [{"id": item, "type": "message", "role": "assistant"}], "usage": turn.usage}})


class _Conn(ConnState):
    def __init__(self, conn: ServerConnection) -> None:
        super().__init__(conn)
        self.text_only = False  # the session asked for text replies (output_modalities ["text"])
        self.user_item: str | None = None
        self.response_id: str | None = None
        self.session: dict[str, Any] = {}
        # the conversation's responses in progress (response.created, no response.done yet):
        # a response.create meanwhile is refused, as the service refuses it
        self.active: set[str] = set()
        self.late_done: dict[str, Any] | None = None  # a FunctionCall(done_late)'s response.done
        self.late_done_due = False


# Content part types each message role may carry (GA; the API rejects others).
_CONTENT_TYPES = {
    "user": {"input_text", "input_audio", "input_image"},
    "system": {"input_text"},
    "assistant": {"output_text", "output_audio"},
}


def _item_problem(item: dict[str, Any]) -> str | None:
    """Why the real API would refuse this ``conversation.item.create`` item, or None."""
    kind = item.get("type")
    if kind == "function_call_output":
        return None if item.get("call_id") and "output" in item else "function_call_output needs call_id and output"
    if kind != "message":
        return None  # function_call etc.: accepted as they come
    allowed = _CONTENT_TYPES.get(item.get("role", ""))
    if allowed is None:
        return f"Invalid value: '{item.get('role')}'. Supported values are: 'user', 'assistant' and 'system'."
    content = item.get("content")
    if not isinstance(content, list) or not content:
        return "Missing required parameter: 'item.content'."
    for i, part in enumerate(content):
        if part.get("type") not in allowed:
            return f"Invalid value: '{part.get('type')}' for item.content[{i}].type (role {item['role']})."
        if part["type"] in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            return f"Missing required parameter: 'item.content[{i}].text'."
    return None
