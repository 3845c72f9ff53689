"""MCP client: connect to a remote MCP server, list its tools, call them — with worded errors.

Two layers:
- one-shot helpers (:func:`list_tools`, :func:`call_tool`, :func:`list_tools_sync`) used by
  "test connection" in the dashboard/API and by tests;
- :class:`McpToolbox`, which a call session opens once per phone call: it keeps one MCP
  session per server open for the call's lifetime, offers the allowed tools to the AI
  provider as function specs, runs each call with a timeout and turns every failure into a
  tool error the model can read — it never raises into the call.

Every connection to a customer's server goes through the outbound guard
(:mod:`voiceplatform.outbound`, via the SDK's httpx client factory, for both
transports): the host is resolved once, non-public addresses are refused
(``McpErrorKind.BLOCKED``) and the connection goes to the checked address. Only the
deployment's own servers (``ServerSpec.trusted``, set by the services for the URL this
deployment configured) skip it, since they usually listen on 127.0.0.1. Over SSE the
endpoint the server announces is posted to on connections of its own, each resolved and
checked again; the SDK only logs a failed POST, so a watch on the transport
(:class:`_TransportWatch`) ends the request waiting for its answer at once with the
guard's refusal (or the connection error, or the HTTP status) instead of a timeout.

Every failure is a :class:`McpClientError` with a :class:`McpErrorKind` (DNS, TLS, refused,
401, 403, other HTTP status, protocol, timeout) and a sentence a human can act on. The SDK
reports most transport problems as nested ``ExceptionGroup``s or as a bare JSON-RPC
``-32603 Server returned an error response``; :func:`classify_error` digs out the root
cause (and the HTTP status, captured with a response hook) so the message says what
actually went wrong.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from voiceplatform import outbound

logger = logging.getLogger(__name__)

Transport = Literal["streamable_http", "sse"]
TRANSPORTS: tuple[Transport, ...] = ("streamable_http", "sse")

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_CALL_TIMEOUT_S = 20.0
# What the model gets back is spoken about on a phone call; a megabyte of JSON helps nobody
# and costs tokens, so tool output is clipped.
MAX_TOOL_OUTPUT_CHARS = 8000
# One HTTP response (for SSE: the whole event stream of a session) may not exceed this.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_FUNCTION_NAME_RE = re.compile(r"[^a-zA-Z0-9_-]+")


class McpErrorKind(StrEnum):
    DNS = "dns"
    TLS = "tls"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION = "connection"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    HTTP_STATUS = "http_status"
    PROTOCOL = "protocol"
    TIMEOUT = "timeout"
    BLOCKED = "blocked"
    TOOL = "tool"
    UNKNOWN_TOOL = "unknown_tool"
    BAD_ARGUMENTS = "bad_arguments"


class McpClientError(Exception):
    """A failure talking to an MCP server, with a kind for code and a message for people."""

    def __init__(self, kind: McpErrorKind, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.url = url
        self.status = status

    def as_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "message": self.message, "status": self.status}


@dataclass(frozen=True)
class ServerSpec:
    """How to reach one MCP server. ``headers`` carry secrets: never log them.

    ``trusted`` skips the outbound guard: only for the deployment's own servers at the
    URL the deployment configured, never for a URL a customer typed.
    """

    url: str
    transport: Transport = "streamable_http"
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    trusted: bool = False

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {self.transport!r}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"MCP server URL must be an absolute http(s) URL, not {self.url!r}")

    def __repr__(self) -> str:  # headers deliberately left out
        return f"ServerSpec(url={self.url!r}, transport={self.transport!r})"


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    input_schema: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


@dataclass(frozen=True)
class ToolResult:
    """Outcome of one tool call. ``text`` is what the model reads (errors included)."""

    is_error: bool
    text: str
    structured: Any
    duration_ms: int


# --------------------------------------------------------------------------- classification


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(_leaves(inner))
        return found
    return [exc]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _status_error(status: int, url: str) -> McpClientError:
    if status == 401:
        return McpClientError(
            McpErrorKind.UNAUTHORIZED,
            f"the MCP server at {url} rejected our credentials (HTTP 401): check the Authorization header",
            url=url, status=status,
        )
    if status == 403:
        return McpClientError(
            McpErrorKind.FORBIDDEN,
            f"the MCP server at {url} refused access (HTTP 403): the credentials lack permission",
            url=url, status=status,
        )
    if status == 404:
        return McpClientError(
            McpErrorKind.HTTP_STATUS,
            f"no MCP endpoint at {url} (HTTP 404): check the path (usually /mcp for streamable HTTP, /sse for SSE)",
            url=url, status=status,
        )
    return McpClientError(
        McpErrorKind.HTTP_STATUS, f"the MCP server at {url} answered HTTP {status}", url=url, status=status
    )


def classify_error(exc: BaseException, url: str, *, last_status: int | None = None) -> McpClientError:
    """Turn whatever the SDK/transport raised into one worded :class:`McpClientError`."""
    if isinstance(exc, McpClientError):
        return exc
    host = urlsplit(url).hostname or url
    for leaf in _leaves(exc):
        for link in _chain(leaf):
            if isinstance(link, McpClientError):
                return link
            if isinstance(link, outbound.OutboundUnresolvable):
                return McpClientError(
                    McpErrorKind.DNS, f"DNS lookup for {host} failed ({link.message}): check the URL's host name",
                    url=url,
                )
            if isinstance(link, outbound.OutboundRefused):
                return McpClientError(McpErrorKind.BLOCKED, f"the MCP server URL {url} is not allowed: {link.message}",
                                      url=url)
            if isinstance(link, outbound.OutboundDeadline):
                return McpClientError(McpErrorKind.TIMEOUT, f"the MCP server at {url} did not answer in time", url=url)
            if isinstance(link, outbound.OutboundTooLarge):
                return McpClientError(McpErrorKind.PROTOCOL, f"the MCP server at {url} sent too much: {link.message}",
                                      url=url)
            if isinstance(link, socket.gaierror):
                return McpClientError(
                    McpErrorKind.DNS, f"DNS lookup for {host} failed ({link.strerror or link}): check the URL's host name",
                    url=url,
                )
            if isinstance(link, ssl.SSLCertVerificationError):
                return McpClientError(
                    McpErrorKind.TLS,
                    f"TLS certificate of {host} could not be verified ({link.verify_message or link})", url=url,
                )
            if isinstance(link, ssl.SSLError):
                return McpClientError(
                    McpErrorKind.TLS,
                    f"TLS handshake with {host} failed ({link.reason or link}): is the server really speaking https?",
                    url=url,
                )
            if isinstance(link, ConnectionRefusedError):
                return McpClientError(
                    McpErrorKind.CONNECTION_REFUSED,
                    f"connection to {url} refused: nothing is listening on that host and port", url=url,
                )
            if isinstance(link, httpx2.HTTPStatusError):
                return _status_error(link.response.status_code, url)
            if isinstance(link, (TimeoutError, httpx2.TimeoutException)):
                return McpClientError(McpErrorKind.TIMEOUT, f"the MCP server at {url} did not answer in time", url=url)
        for link in _chain(leaf):
            if isinstance(link, MCPError):
                if last_status is not None and last_status >= 400:
                    return _status_error(last_status, url)
                return McpClientError(
                    McpErrorKind.PROTOCOL,
                    f"the server at {url} did not speak MCP correctly: {link.error.message} (JSON-RPC {link.error.code})",
                    url=url,
                )
            if isinstance(link, (httpx2.ConnectError, OSError)):
                return McpClientError(McpErrorKind.CONNECTION, f"could not connect to {url}: {link}", url=url)
    first = _leaves(exc)[0]
    if last_status is not None and last_status >= 400:
        return _status_error(last_status, url)
    return McpClientError(
        McpErrorKind.PROTOCOL, f"talking to the MCP server at {url} failed: {type(first).__name__}: {first}", url=url
    )


# --------------------------------------------------------------------------- sessions


class _TransportWatch:
    """What one session's HTTP requests ran into.

    It remembers the last HTTP error status, so a bare JSON-RPC error can be blamed on a
    401/403. Over SSE it also ends every wait for the server's answer as soon as a message
    POST fails: the SDK posts each message from a task of its own and only logs a failure
    there (``mcp.client.sse``'s ``post_writer``), so the request it carried would wait for
    an answer that never comes and the user would be told "did not answer in time" instead
    of why: above all the outbound guard's refusal of the endpoint the server announced (its
    host resolved again, now to a private address), but also a refused connection or an
    HTTP error status. Every wait open at that moment (:meth:`interrupting`) ends with it,
    already worded, and so does every later one at once: the SDK's writer stops at its first
    failure, so the session can send nothing more.
    """

    def __init__(self, url: str, *, interrupt: bool) -> None:
        self.url = url
        self.interrupt = interrupt
        self.last_error_status: int | None = None
        self.failure: McpClientError | None = None
        self._waits: set[anyio.CancelScope] = set()

    async def __call__(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            self.last_error_status = response.status_code
            if response.request.method == "POST":
                self.fail(_status_error(response.status_code, self.url))

    def fail(self, error: McpClientError) -> None:
        if not self.interrupt or self.failure is not None:
            return
        self.failure = error
        for scope in list(self._waits):
            scope.cancel()  # the waiting task ends now, with the failure (anyio allows it from any task)

    def _raise_failure(self) -> None:
        error = self.failure
        if error is not None:
            raise McpClientError(error.kind, error.message, url=error.url, status=error.status)

    @contextlib.contextmanager
    def interrupting(self) -> Iterator[None]:
        """Wait for the server's answer, unless a message POST fails first (then raise its error)."""
        self._raise_failure()
        with anyio.CancelScope() as scope:
            self._waits.add(scope)
            try:
                yield
            finally:
                self._waits.discard(scope)
        if scope.cancelled_caught:
            self._raise_failure()


class _WatchedTransport(httpx2.AsyncBaseTransport):
    """The guarded transport, telling the session's watch when a message POST fails in it."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, watch: _TransportWatch) -> None:
        self._inner = inner
        self._watch = watch

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._inner.handle_async_request(request)
        except Exception as exc:
            if request.method == "POST":
                self._watch.fail(classify_error(exc, self._watch.url))
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


# Each open session's watch, for the waits made through the session (tool calls come from
# other tasks than the one that opened it).
_WATCHES: weakref.WeakKeyDictionary[ClientSession, _TransportWatch] = weakref.WeakKeyDictionary()


def _interrupting(session: ClientSession) -> contextlib.AbstractContextManager[None]:
    watch = _WATCHES.get(session)
    return watch.interrupting() if watch is not None else contextlib.nullcontext()


@contextlib.asynccontextmanager
async def open_session(spec: ServerSpec) -> AsyncIterator[ClientSession]:
    """An initialized :class:`ClientSession`; every failure surfaces as :class:`McpClientError`.

    Must be entered and exited in the same task (the SDK's transports use anyio task
    groups); :class:`McpToolbox` handles that for long-lived sessions.
    """
    recorder = _TransportWatch(spec.url, interrupt=spec.transport == "sse")
    headers = dict(spec.headers)
    timeout = httpx2.Timeout(spec.connect_timeout_s, read=300.0)

    def client_factory(
        headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
    ) -> httpx2.AsyncClient:
        kwargs: dict[str, Any] = {"headers": headers, "timeout": timeout, "auth": auth,
                                  "event_hooks": {"response": [recorder]}}
        if spec.trusted:
            return httpx2.AsyncClient(**kwargs)
        # Session-long streams: the SDK's operations carry their own timeouts, so no total deadline here.
        policy = outbound.Policy(total_timeout_s=None, max_response_bytes=MAX_RESPONSE_BYTES)
        return outbound.async_client(policy, hx=httpx2, wrap=lambda guarded: _WatchedTransport(guarded, recorder),
                                     **kwargs)

    try:
        if spec.transport == "sse":
            transport_cm: Any = sse_client(
                spec.url, headers=headers, timeout=spec.connect_timeout_s, httpx_client_factory=client_factory
            )
        else:
            transport_cm = streamable_http_client(spec.url, http_client=client_factory(headers=headers, timeout=timeout))
        async with transport_cm as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                _WATCHES[session] = recorder
                with anyio.fail_after(spec.connect_timeout_s), recorder.interrupting():
                    await session.initialize()
                yield session
    except McpClientError:
        raise
    except Exception as exc:  # noqa: BLE001 - every transport failure is classified, not swallowed
        raise classify_error(exc, spec.url, last_status=recorder.last_error_status) from exc


def _tool_infos(result: Any) -> list[ToolInfo]:
    return [
        ToolInfo(name=t.name, description=t.description or "", input_schema=dict(t.input_schema or {}))
        for t in result.tools
    ]


async def _list_all_tools(session: ClientSession) -> list[ToolInfo]:
    tools: list[ToolInfo] = []
    cursor: str | None = None
    while True:
        with _interrupting(session):
            result = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
        tools.extend(_tool_infos(result))
        cursor = getattr(result, "next_cursor", None)
        if not cursor:
            return tools


async def list_tools(spec: ServerSpec) -> list[ToolInfo]:
    """Connect, initialize and list every tool with its input schema."""
    try:
        with anyio.fail_after(spec.connect_timeout_s * 2):
            async with open_session(spec) as session:
                return await _list_all_tools(session)
    except TimeoutError as exc:
        raise McpClientError(
            McpErrorKind.TIMEOUT, f"the MCP server at {spec.url} did not answer in time", url=spec.url
        ) from exc


def list_tools_sync(spec: ServerSpec) -> list[ToolInfo]:
    """For sync callers (Django views, admin actions): runs :func:`list_tools` on a fresh loop."""
    return asyncio.run(list_tools(spec))


def _result_text(result: Any) -> str:
    parts: list[str] = []
    for item in result.content or []:
        text = getattr(item, "text", None)
        if text is not None:
            parts.append(text)
        else:
            parts.append(f"[{getattr(item, 'type', 'content')} omitted]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(parts)
    if len(text) > MAX_TOOL_OUTPUT_CHARS:
        text = text[:MAX_TOOL_OUTPUT_CHARS] + "… [truncated]"
    return text


async def _timed_call(
    session: ClientSession, name: str, arguments: Mapping[str, Any], timeout_s: float, url: str
) -> ToolResult:
    started = time.monotonic()
    try:
        with anyio.fail_after(timeout_s), _interrupting(session):
            result = await session.call_tool(name, dict(arguments))
    except TimeoutError as exc:
        raise McpClientError(
            McpErrorKind.TIMEOUT, f"tool {name} did not finish within {timeout_s:g}s", url=url
        ) from exc
    except McpClientError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise classify_error(exc, url) from exc
    return ToolResult(
        is_error=bool(result.is_error),
        text=_result_text(result),
        structured=result.structured_content,
        duration_ms=int((time.monotonic() - started) * 1000),
    )


async def call_tool(
    spec: ServerSpec, name: str, arguments: Mapping[str, Any], *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> ToolResult:
    """One-shot: connect, call ``name`` with ``arguments`` under ``timeout_s``, disconnect.

    A tool that reports an error returns ``is_error=True`` (its message in ``text``);
    failures to reach or talk to the server raise :class:`McpClientError`.
    """
    async with open_session(spec) as session:
        return await _timed_call(session, name, arguments, timeout_s, spec.url)


# --------------------------------------------------------------------------- toolbox


@dataclass(frozen=True)
class ToolboxServer:
    """One server as the call session needs it: a stable key and the tools it may use.

    ``allowed_tools=None`` offers every tool the server lists.
    """

    key: str
    spec: ServerSpec
    allowed_tools: frozenset[str] | None = None


@dataclass(frozen=True)
class ToolCallOutcome:
    """What happened when the model called a function; goes onto the call's timeline."""

    function_name: str
    server_key: str
    tool_name: str
    is_error: bool
    output: str
    duration_ms: int
    error_kind: str | None = None


def _function_name(server_key: str, tool: str) -> str:
    name = _FUNCTION_NAME_RE.sub("_", f"{server_key}__{tool}")
    return name[:64]


class _LiveSession:
    """Keeps one MCP session open in its own task so any task may call through it.

    The SDK's transports are anyio task groups that must be exited by the task that
    entered them; a phone call opens its toolbox in one task and may close it from
    another (hang-up handler), so the session lives in a dedicated runner task.
    """

    def __init__(self, server: ToolboxServer) -> None:
        self.server = server
        self.session: ClientSession | None = None
        self.tools: list[ToolInfo] = []
        self.error: McpClientError | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mcp-session-{self.server.key}")

    async def _run(self) -> None:
        try:
            async with open_session(self.server.spec) as session:
                tools = await _list_all_tools(session)
                allowed = self.server.allowed_tools
                self.tools = [t for t in tools if allowed is None or t.name in allowed]
                self.session = session
                self._ready.set()
                await self._closing.wait()
        except McpClientError as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - a broken server must not take the call down
            self.error = classify_error(exc, self.server.spec.url)
        finally:
            self.session = None
            self._ready.set()

    async def wait_ready(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            self.error = McpClientError(
                McpErrorKind.TIMEOUT,
                f"the MCP server at {self.server.spec.url} did not answer within {timeout_s:g}s",
                url=self.server.spec.url,
            )

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            if not self._task.done() and self.session is None:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5.0)


ToolCallObserver = Callable[[ToolCallOutcome], Awaitable[None] | None]


class McpToolbox:
    """The MCP tools available during one phone call.

    ``async with McpToolbox(servers) as box:`` opens every server's session concurrently
    (a server that fails is reported in ``box.unavailable`` and its tools are simply not
    offered), ``box.function_specs()`` gives provider-neutral function specs, and
    ``await box.call(name, arguments)`` always returns a :class:`ToolCallOutcome` — errors
    included — so the conversation continues whatever the tool does.
    """

    def __init__(
        self,
        servers: Sequence[ToolboxServer],
        *,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        observer: ToolCallObserver | None = None,
    ) -> None:
        keys = [s.key for s in servers]
        if len(set(keys)) != len(keys):
            raise ValueError(f"toolbox server keys must be unique, got {keys}")
        self._sessions = [_LiveSession(s) for s in servers]
        self._call_timeout_s = call_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._observer = observer
        self._functions: dict[str, tuple[_LiveSession, ToolInfo]] = {}
        self.unavailable: dict[str, McpClientError] = {}

    async def __aenter__(self) -> McpToolbox:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        for live in self._sessions:
            live.start()
        await asyncio.gather(*(live.wait_ready(self._connect_timeout_s) for live in self._sessions))
        for live in self._sessions:
            if live.error is not None or live.session is None:
                error = live.error or McpClientError(
                    McpErrorKind.PROTOCOL, f"session with {live.server.spec.url} closed during setup",
                    url=live.server.spec.url,
                )
                self.unavailable[live.server.key] = error
                logger.warning(
                    "mcp server unavailable for call",
                    extra={"server_key": live.server.key, "error_kind": str(error.kind)},
                )
                continue
            for tool in live.tools:
                self._functions[_function_name(live.server.key, tool.name)] = (live, tool)

    async def aclose(self) -> None:
        await asyncio.gather(*(live.close() for live in self._sessions), return_exceptions=True)

    def function_specs(self) -> list[dict[str, Any]]:
        """``[{"name", "description", "parameters"}]`` — the JSON-schema function shape all providers take."""
        specs = []
        for name, (_live, tool) in self._functions.items():
            schema = dict(tool.input_schema) or {"type": "object", "properties": {}}
            schema.pop("title", None)
            specs.append({"name": name, "description": tool.description or tool.name, "parameters": schema})
        return specs

    def has_function(self, name: str) -> bool:
        return name in self._functions

    def session_handlers(self, error_cls: type[Exception]) -> dict[str, Callable[..., Awaitable[str]]]:
        """Handlers in the call session's shape: ``async (arguments, session) -> str``.

        A failed call raises ``error_cls`` (the session's ``ToolError``) with the message
        for the model, so the timeline records it as a failed tool call; the session's own
        timeout wraps the handler, so keep ``call_timeout_s`` below it.
        """

        def make(name: str) -> Callable[..., Awaitable[str]]:
            async def handler(arguments: Mapping[str, Any] | str | None, session: Any = None) -> str:
                outcome = await self.call(name, arguments)
                if outcome.is_error:
                    raise error_cls(outcome.output.removeprefix("error: "))
                return outcome.output

            return handler

        return {name: make(name) for name in self._functions}

    async def call(self, function_name: str, arguments: Mapping[str, Any] | str | None) -> ToolCallOutcome:
        started = time.monotonic()
        entry = self._functions.get(function_name)
        server_key, tool_name = (entry[0].server.key, entry[1].name) if entry else ("", function_name)

        def outcome(is_error: bool, output: str, kind: str | None = None, duration_ms: int | None = None) -> ToolCallOutcome:
            return ToolCallOutcome(
                function_name=function_name, server_key=server_key, tool_name=tool_name, is_error=is_error,
                output=output, duration_ms=duration_ms if duration_ms is not None else int((time.monotonic() - started) * 1000),
                error_kind=kind,
            )

        if entry is None:
            result = outcome(True, f"error: no tool named {function_name!r} is available on this call",
                             str(McpErrorKind.UNKNOWN_TOOL))
        else:
            live, tool = entry
            parsed = _parse_arguments(arguments)
            if isinstance(parsed, str):
                result = outcome(True, parsed, str(McpErrorKind.BAD_ARGUMENTS))
            elif live.session is None:
                result = outcome(True, f"error: the {server_key} tools are no longer reachable this call",
                                 str(McpErrorKind.CONNECTION))
            else:
                try:
                    res = await _timed_call(live.session, tool.name, parsed, self._call_timeout_s, live.server.spec.url)
                    result = outcome(res.is_error, ("error: " + res.text) if res.is_error else res.text,
                                     str(McpErrorKind.TOOL) if res.is_error else None)
                except McpClientError as exc:
                    result = outcome(True, f"error: {exc.message}", str(exc.kind))
                except Exception as exc:  # noqa: BLE001 - tool failures must never crash the call
                    err = classify_error(exc, live.server.spec.url)
                    result = outcome(True, f"error: {err.message}", str(err.kind))
        logger.info(
            "mcp tool call",
            extra={"server_key": result.server_key, "tool": result.tool_name, "is_error": result.is_error,
                   "duration_ms": result.duration_ms, "error_kind": result.error_kind},
        )
        if self._observer is not None:
            maybe = self._observer(result)
            if asyncio.iscoroutine(maybe):
                await maybe
        return result


def _parse_arguments(arguments: Mapping[str, Any] | str | None) -> dict[str, Any] | str:
    """Providers send arguments as a JSON string or a dict; a string result is an error message."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except json.JSONDecodeError as exc:
            return f"error: the arguments are not valid JSON ({exc.msg} at position {exc.pos})"
        if not isinstance(value, dict):
            return "error: the arguments must be a JSON object"
        return value
    return dict(arguments)
