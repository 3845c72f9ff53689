"""Fake Gemini Live (Developer API) server for the real ``google-genai`` SDK.

Serves ``wss://127.0.0.1:PORT/ws/google.ai.generativelanguage.{ver}.GenerativeService.BidiGenerateContent``
over TLS with a certificate generated at start (the SDK forces ``wss://``;
protocols.md §4.8). Point the SDK at it with
``HttpOptions(base_url=fake.url, async_client_args={"ssl": fake.client_ssl_context()})``,
or pass :meth:`session_config_kwargs` into a ``SessionConfig``.

Behaviour (protocols.md §4):

* The first frame must be ``setup``; answered with ``setupComplete``. A setup
  carrying ``sessionResumption.handle`` must name a handle this fake issued,
  otherwise the socket closes with 1007 like the real service.
* With ``sessionResumption`` in the setup, a ``sessionResumptionUpdate`` with a
  fresh handle follows setup and every completed turn.
* Simple VAD on ``realtimeInput.audio`` (PCM16 16 kHz): the first audio after
  silence sends ``voiceActivity`` ACTIVITY_START; after ``turn_bytes`` the
  caller turn ends (ACTIVITY_END, ``inputTranscription`` with the next text from
  :meth:`caller_says`) and the next script step runs. Caller audio during a paced
  :class:`AgentTurn` interrupts it (``serverContent.interrupted``); during a
  pending :class:`FunctionCall` it cancels it (``toolCallCancellation``).
* ``clientContent`` with ``turnComplete``, ``realtimeInput.text`` and
  ``toolResponse`` run the next script step; ``turnComplete`` first interrupts a
  streaming turn (``serverContent.interrupted``), as the service does. Turns
  with a role other than ``user``/``model`` close the socket with 1007.
  :meth:`user_texts` lists the text sent as the user.
* ``realtimeInput.video`` (still frames, e.g. JPEG from a camera) is recorded
  and otherwise ignored; :meth:`images_received` lists them.
* A setup asking for ``responseModalities: ["TEXT"]`` is a text session, as the service
  runs one: an :class:`AgentTurn` streams its transcript's words as ``modelTurn`` text
  parts, with no audio and no ``outputTranscription``. ``audio_only=True`` plays a
  native-audio model instead, which refuses a text session: the socket closes with 1007
  ("Cannot extract voices from a non-audio request.", as reported against the service).
* :class:`GoAway` sends ``goAway`` and closes the socket (1000) after its delay;
  :class:`ProviderFailure` closes with its ``close_code`` (Gemini reports errors
  only as close codes).

Client frames are recorded with keys normalised to camelCase (the SDK mixes
snake_case and camelCase); :meth:`message_type` is the top-level key.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from agents.testing.script import AgentTurn, FunctionCall, GoAway, ProviderFailure, Step
from agents.testing.server import ConnState, FakeServer
from agents.testing.tls import LocalCert, make_local_cert

_PATH_PREFIX = "/ws/google.ai.generativelanguage."
_PATH_SUFFIX = ".GenerativeService.BidiGenerateContent"
# Keys whose values are user data (schemas, tool args/results), never renamed.
_OPAQUE_KEYS = {"response", "args", "parameters", "parametersJsonSchema", "properties", "data"}


def b64decode_any(data: str) -> bytes:
    """Decode standard or URL-safe base64 (the SDK sends URL-safe, other clients standard)."""
    data = data.replace("-", "+").replace("_", "/")
    return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)


def camelize(value: Any) -> Any:
    """snake_case → camelCase for protocol keys, leaving user payloads untouched."""
    if isinstance(value, list):
        return [camelize(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, val in value.items():
        head, *rest = key.split("_")
        new_key = head + "".join(p[:1].upper() + p[1:] for p in rest)
        out[new_key] = val if new_key in _OPAQUE_KEYS else camelize(val)
    return out


class FakeGeminiLive(FakeServer):
    """See module docstring. ``turn_bytes``: caller PCM16 16 kHz audio per VAD turn."""

    def __init__(self, *, api_key: str = "gemini-test-key", turn_bytes: int = 6400,
                 quiet_silence: bool = False, audio_only: bool = False) -> None:
        self.cert: LocalCert = make_local_cert()
        super().__init__(ssl_context=self.cert.server_context())
        self.api_key = api_key
        self.turn_bytes = turn_bytes
        # True: digital silence (all-zero PCM, a phone line's idle frames) is not speech, and
        # silence after speech ends the turn, as the real VAD does; False: every byte counts.
        self.quiet_silence = quiet_silence
        self.audio_only = audio_only
        self._counter = itertools.count(1)
        self._handles: set[str] = set()
        #: the newest resumption handle issued (sent after setup and after every turn)
        self.last_handle: str | None = None
        #: the resumption handle of every setup, ``None`` for a fresh session
        self.setups: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client_ssl_context(self) -> Any:
        return self.cert.client_context()

    def session_config_kwargs(self) -> dict[str, Any]:
        """``SessionConfig`` fields that point the Gemini bridge at this fake."""
        return {
            "credentials": {"api_key": self.api_key},
            "base_url": self.url,
            "ssl_context": self.client_ssl_context(),
        }

    def message_type(self, message: dict[str, Any]) -> str:
        return next(iter(message), "")

    def authorize(self, request: Request) -> int | None:
        path = request.path.split("?")[0]
        if not (path.startswith(_PATH_PREFIX) and path.endswith(_PATH_SUFFIX)):
            return 404
        if request.headers.get("x-goog-api-key") != self.api_key:
            return 401
        return None

    def user_texts(self) -> list[str]:
        """Text the client sent as the user: ``clientContent`` user turns and ``realtimeInput.text``."""
        texts: list[str] = []
        for m in self.received:
            if "clientContent" in m:
                turns = m["clientContent"].get("turns") or []
                for turn in [turns] if isinstance(turns, dict) else turns:
                    if turn.get("role") == "user":
                        texts.extend(p["text"] for p in turn.get("parts", []) if "text" in p)
            elif m.get("realtimeInput", {}).get("text"):
                texts.append(m["realtimeInput"]["text"])
        return texts

    def audio_received(self) -> bytes:
        return b"".join(
            b64decode_any(m["realtimeInput"]["audio"]["data"])
            for m in self.received_of("realtimeInput")
            if "audio" in m["realtimeInput"]
        )

    def images_received(self) -> list[tuple[str, bytes]]:
        """The still frames the client showed the model (``realtimeInput.video``): (mime type, bytes)."""
        return [
            (m["realtimeInput"]["video"].get("mimeType", ""), b64decode_any(m["realtimeInput"]["video"]["data"]))
            for m in self.received_of("realtimeInput")
            if "video" in m["realtimeInput"]
        ]

    # -- protocol --------------------------------------------------------------

    async def handle(self, conn: ServerConnection) -> None:
        st = _Conn(conn, n=next(self._counter))
        try:
            setup = camelize(json.loads(await conn.recv()))
            self._record(setup)
            if "setup" not in setup:
                await conn.close(1007, "first message must be setup")
                return
            cfg = setup["setup"]
            resumption = cfg.get("sessionResumption")
            handle = resumption.get("handle") if isinstance(resumption, dict) else None
            with self._lock:
                self.setups.append({"model": cfg.get("model"), "handle": handle})
                valid = handle is None or handle in self._handles
            if not valid:
                await conn.close(1007, "Invalid session resumption handle")
                return
            st.resumable = resumption is not None
            modalities = (cfg.get("generationConfig") or {}).get("responseModalities") or ["AUDIO"]
            st.text_only = modalities == ["TEXT"]
            if st.text_only and self.audio_only:
                await conn.close(1007, "Cannot extract voices from a non-audio request.")
                return
            await self.send_json(conn, {"setupComplete": {"sessionId": f"session-{st.n}"}})
            await self._issue_handle(st)
            async for raw in conn:
                msg = camelize(json.loads(raw))
                self._record(msg)
                await self._dispatch(st, msg)
        except ConnectionClosed:
            pass
        finally:
            if st.turn_task is not None:
                st.turn_task.cancel()

    async def _issue_handle(self, st: _Conn) -> None:
        if not st.resumable:
            return
        handle = f"handle-{st.n}-{next(self._counter)}"
        with self._lock:
            self._handles.add(handle)
            self.last_handle = handle
        await self.send_json(st.conn, {"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})

    async def _dispatch(self, st: _Conn, msg: dict[str, Any]) -> None:
        if "realtimeInput" in msg:
            rt = msg["realtimeInput"]
            if "audio" in rt:
                audio = b64decode_any(rt["audio"].get("data", ""))
                if self.quiet_silence and not audio.strip(b"\x00"):
                    if st.in_speech:
                        await self._end_turn(st)
                else:
                    await self._on_audio(st, len(audio))
            if rt.get("text"):
                await self._trigger(st)
        elif "clientContent" in msg:
            content = msg["clientContent"]
            turns = content.get("turns") or []
            if isinstance(turns, dict):
                turns = [turns]
            if any(t.get("role") not in ("user", "model") for t in turns):
                await st.conn.close(1007, "Request contains an invalid argument.")
                return
            if content.get("turnComplete"):
                # turn_complete unconditionally interrupts a generation in progress
                await self._interrupt_turn(st)
                await self._trigger(st)
        elif "toolResponse" in msg:
            for response in msg["toolResponse"].get("functionResponses", []):
                st.pending_calls.discard(response.get("id"))
            await self._trigger(st)

    async def _on_audio(self, st: _Conn, n: int) -> None:
        if not st.in_speech:
            st.in_speech = True
            await self.send_json(st.conn, {"voiceActivity": {"type": "ACTIVITY_START"}})
            if st.speaking():
                await self._interrupt_turn(st)
            if st.pending_calls:
                ids = sorted(st.pending_calls)
                st.pending_calls.clear()
                await self.send_json(st.conn, {"toolCallCancellation": {"ids": ids}})
        st.pending_bytes += n
        if st.pending_bytes >= self.turn_bytes:
            await self._end_turn(st)

    async def _end_turn(self, st: _Conn) -> None:
        st.pending_bytes = 0
        st.in_speech = False
        await self.send_json(st.conn, {"voiceActivity": {"type": "ACTIVITY_END"}})
        text = self.next_caller_text()
        if text is not None:
            await self.send_json(st.conn, {"serverContent": {"inputTranscription": {"text": text}}})
        await self._trigger(st)

    async def _interrupt_turn(self, st: _Conn) -> None:
        if await st.stop_turn():
            await self.send_json(st.conn, {"serverContent": {"interrupted": True}})

    async def _trigger(self, st: _Conn) -> None:
        await self.run_script(st, lambda step: self._run(st, step))

    async def _run(self, st: _Conn, step: Step) -> bool:
        conn = st.conn
        if isinstance(step, AgentTurn):
            await st.start_turn(self._speak(st, step), paced=step.pace > 0)
            return True
        if isinstance(step, FunctionCall):
            st.pending_calls.add(step.call_id)
            await self.send_json(conn, {"toolCall": {"functionCalls": [
                {"id": step.call_id, "name": step.name, "args": step.arguments}]}})
            return True
        if isinstance(step, GoAway):
            await self.send_json(conn, {"goAway": {"timeLeft": step.time_left}})
            await asyncio.sleep(step.delay)
            await conn.close(1000, "session time limit reached")
            return True
        if isinstance(step, ProviderFailure):
            await conn.close(step.close_code, step.message[:100])
            return True
        raise TypeError(f"unknown step {step!r}")

    async def _speak(self, st: _Conn, turn: AgentTurn) -> None:
        conn = st.conn
        words = turn.transcript.split(" ") if turn.transcript else []
        chunks = [turn.audio[i:i + turn.chunk_bytes] for i in range(0, len(turn.audio), turn.chunk_bytes)]
        if st.text_only:
            # a text session: the words as model-turn text parts, no audio at all
            chunks = []
        for i in range(max(len(chunks), len(words))):
            content: dict[str, Any] = {}
            if st.text_only:
                content["modelTurn"] = {"role": "model", "parts": [{"text": words[i] if i == 0 else " " + words[i]}]}
            if i < len(chunks):
                content["modelTurn"] = {"role": "model", "parts": [{"inlineData": {
                    "mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(chunks[i]).decode()}}]}
            if i < len(words) and not st.text_only:
                content["outputTranscription"] = {"text": words[i] if i == 0 else " " + words[i]}
            await self.send_json(conn, {"serverContent": content})
            if turn.pace:
                await asyncio.sleep(turn.pace)
        await self.send_json(conn, {"serverContent": {"generationComplete": True}})
        await self.send_json(conn, {"serverContent": {"turnComplete": True}, "usageMetadata": {
            "promptTokenCount": turn.usage.get("input_tokens", 0),
            "responseTokenCount": turn.usage.get("output_tokens", 0),
            "totalTokenCount": turn.usage.get("total_tokens", 0)}})
        await self._issue_handle(st)


class _Conn(ConnState):
    def __init__(self, conn: ServerConnection, n: int) -> None:
        super().__init__(conn)
        self.n = n
        self.resumable = False
        self.text_only = False  # the setup asked for TEXT replies
        self.pending_calls: set[str] = set()
