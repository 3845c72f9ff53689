"""The outbound-request guard: every request to a customer-supplied destination goes through here.

Customer-supplied destinations (webhook endpoints, MCP servers, provider and carrier
``base_url`` overrides, knowledge URLs, custom tools) are a server-side request forgery
risk: a tenant must not be able to make this deployment call its own network (the
database, Redis, our own MCP servers, the cloud metadata service at 169.254.169.254 or
100.100.100.200). The guard's contract:

* **Resolve once, check every address, connect to the checked one.** A host name is
  resolved exactly once per connection; if *any* address it resolves to is refused the
  destination is refused (a name with one public and one private record is refused);
  the connection then goes to the first checked address. Nothing resolves the name a
  second time, so a DNS answer that changes between check and connect (rebinding)
  cannot redirect the connection. TLS still verifies the certificate for the *name*
  (SNI and hostname check), and the ``Host`` header carries the name.
* **Refused:** loopback, private (RFC 1918, ULA ``fc00::/7``), link-local
  (``169.254/16``, ``fe80::/10``), shared/CGNAT ``100.64.0.0/10``, reserved, multicast,
  unspecified, documentation/benchmark ranges (anything not globally routable),
  IPv4-mapped and IPv4-compatible IPv6, NAT64/6to4/Teredo (they embed an IPv4 address),
  and host names written as odd numeric forms (``2130706433``, ``0177.0.0.1``,
  ``0x7f.1``, ``127.1``) that some resolvers turn into an address.
* **Every redirect is re-checked** (each new connection goes through the same check),
  and the number of redirects is bounded by the client.
* **Time and size are bounded.** A per-read timeout is not a deadline (a server
  trickling one byte every 9 s never trips a 10 s read timeout), so every socket
  operation's timeout is clamped to what is left of the request's *total* deadline, and
  the response body is counted against a byte cap, both as received and as it inflates
  (a capped request accepts only gzip/deflate, counted while decompressing without
  keeping the output, so a small gzip bomb cannot hand the caller gigabytes; another
  coding, or several stacked, is refused). Breaches raise
  :class:`OutboundDeadline` / :class:`OutboundTooLarge`.
* **Private targets only by explicit setting**: ``settings.OUTBOUND_ALLOW_PRIVATE``
  (env ``OUTBOUND_ALLOW_PRIVATE``; on by default only with ``DEBUG`` or under tests).
  With it on the guard still pins the address and bounds time and size; it only stops
  refusing non-public addresses.

Use :func:`check_url` / :func:`validate_url` at save time (forms, serializers, admin all
go through the services) and a guarded client at request time (DNS may have changed):
:func:`sync_client`, :func:`async_client` (``httpx`` or the ``httpx2`` fork the MCP SDK
uses), :class:`GuardedRequestsAdapter` (``requests``-based SDKs) and
:func:`open_connection` (a connected socket for ``websockets``' ``sock=``),
:func:`aiohttp_session` (aiohttp-based SDKs such as ``livekit-api``). Tests inject
DNS answers with :func:`using_resolver`.

This module imports no app code (Django only lazily, for the setting and
``ValidationError``), so bridges and carriers, which import no Django, can use it.
"""
from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import requests
from requests.adapters import HTTPAdapter

from voiceplatform.inflation import ACCEPT_ENCODING, InflatedSize

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

DEFAULT_TOTAL_TIMEOUT_S = 30.0
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# The last label of a host name that some resolvers (inet_aton) read as a number.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


# --------------------------------------------------------------------------- errors


class OutboundError(Exception):
    """A request to a customer-supplied destination was stopped by the guard."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        # kwargs: ``request=`` when it is also a requests exception (see RequestsRefused).
        super().__init__(message)
        self.message = message
        if "request" in kwargs:
            self.request: Any = kwargs["request"]  # loose, like requests.RequestException's (a subclass)
            self.response: Any = None


class OutboundRefused(OutboundError):
    """The destination is not allowed (bad URL, non-public address, unresolvable name)."""


class OutboundUnresolvable(OutboundRefused):
    """The host name does not resolve (so there is nothing to check or connect to)."""


class OutboundDeadline(OutboundError):
    """The whole request (connect, redirects, body) took longer than its total deadline."""


class OutboundTooLarge(OutboundError):
    """The response body is larger than the cap."""


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Policy:
    """Limits for one kind of outbound request.

    ``allow_private=None`` reads ``settings.OUTBOUND_ALLOW_PRIVATE`` when used;
    ``total_timeout_s``/``max_response_bytes`` ``None`` mean unbounded (long-lived MCP
    sessions, whose operations are bounded by their own timeouts). The deadline is per
    request; a client that follows redirects itself starts a new one per hop, so wrap a
    multi-request operation in :func:`deadline` to bound it as a whole.
    """

    total_timeout_s: float | None = DEFAULT_TOTAL_TIMEOUT_S
    max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES
    allow_private: bool | None = None
    #: Non-public networks allowed anyway (``None``: ``settings.OUTBOUND_ALLOWED_NETWORKS``),
    #: e.g. one LAN subnet with an MCP server while everything else private stays refused.
    allowed_networks: tuple[str, ...] | None = None

    def private_allowed(self) -> bool:
        if self.allow_private is not None:
            return self.allow_private
        return bool(_setting("OUTBOUND_ALLOW_PRIVATE", False))

    def excepted(self, address: IPAddress) -> bool:
        networks = self.allowed_networks if self.allowed_networks is not None \
            else tuple(_setting("OUTBOUND_ALLOWED_NETWORKS", ()) or ())
        return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


def _setting(name: str, default: Any) -> Any:
    """A Django setting; ``default`` when Django is not configured (a bench script): fail closed."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:
        return default


# --------------------------------------------------------------------------- resolution


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


_global_resolver: list[Resolver] = [_system_resolver]


@contextlib.contextmanager
def using_resolver(resolver: Resolver) -> Iterator[None]:
    """Answer DNS with ``resolver(host, port) -> [address, …]`` inside the block (tests).

    Set process-wide (not per task/thread) so the guard in a worker thread or another
    task of the same process sees it too.
    """
    previous = _global_resolver[0]
    _global_resolver[0] = resolver
    try:
        yield
    finally:
        _global_resolver[0] = previous


def _resolve(host: str, port: int) -> list[str]:
    resolver = _global_resolver[0]
    try:
        addresses = resolver(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundUnresolvable(f"the host {host!r} cannot be resolved ({exc})") from exc
    if not addresses:
        raise OutboundUnresolvable(f"the host {host!r} resolves to no address")
    return addresses


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached from here (``"a loopback address"``), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"an IPv4-mapped IPv6 address (of {address.ipv4_mapped})"
        if address in _IPV4_COMPATIBLE and not address.is_unspecified and not address.is_loopback:
            return "an IPv4-compatible IPv6 address"
        if any(address in net for net in _NAT64):
            return "a NAT64 address (it embeds an IPv4 address)"
        if address.sixtofour is not None:
            return "a 6to4 address (it embeds an IPv4 address)"
        if address.teredo is not None:
            return "a Teredo address (it embeds an IPv4 address)"
        if address.scope_id:
            return "a scoped IPv6 address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a non-public address"
    return None


def _literal(host: str) -> IPAddress | None:
    """The address ``host`` spells in standard form, None for a name; odd numeric forms refused."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host or "%" in host:
        raise OutboundRefused(f"{host!r} is not a valid IPv6 address")
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.match(last):
        # 2130706433, 0177.0.0.1, 0x7f.1, 127.1: inet_aton reads them as 127.0.0.1.
        raise OutboundRefused(f"the host {host!r} is not a standard IP address or host name "
                              f"(numeric forms such as decimal, octal, hex or shortened addresses are refused)")
    return None


def pin(host: str, port: int, policy: Policy | None = None) -> str:
    """Resolve ``host`` once, check every address, return the address to connect to.

    Raises :class:`OutboundRefused` with a sentence such as ``the host 'localhost'
    resolves to 127.0.0.1, a loopback address``.
    """
    policy = policy or Policy()
    host = host.strip("[]")
    literal = _literal(host)
    candidates = [str(literal)] if literal is not None else _resolve(host, port)
    allow_private = policy.private_allowed()
    for text in candidates:
        try:
            address = ipaddress.ip_address(text)
        except ValueError as exc:
            raise OutboundRefused(f"the host {host!r} resolves to {text!r}, not an IP address") from exc
        reason = refusal_reason(address)
        if reason is not None and not allow_private and not policy.excepted(address):
            where = f"the address {address}" if literal is not None else f"the host {host!r} resolves to {address}"
            raise OutboundRefused(f"{where}, {reason}; requests to non-public addresses are not allowed")
    return candidates[0]


@dataclass(frozen=True)
class Destination:
    url: str
    scheme: str
    host: str
    port: int
    address: str  # the checked address a connection made now would use


def _split(url: str, schemes: Iterable[str]) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"{url!r} is not a valid URL ({exc})") from exc
    allowed = tuple(schemes)
    if parts.scheme not in allowed or not parts.hostname:
        raise OutboundRefused(f"must be an absolute {' or '.join(s + '://' for s in allowed)} URL")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused("must not carry a user name or password in the URL")
    default = 443 if parts.scheme in ("https", "wss") else 80
    return parts.scheme, parts.hostname, port or default


def check_url(url: str, *, policy: Policy | None = None,
              schemes: Iterable[str] = ("http", "https")) -> Destination:
    """Parse, resolve and check ``url``; :class:`OutboundRefused` says why it is not allowed."""
    scheme, host, port = _split(url, schemes)
    return Destination(url=url, scheme=scheme, host=host, port=port, address=pin(host, port, policy))


def validate_url(url: str, *, field: str, what: str, policy: Policy | None = None,
                 schemes: Iterable[str] = ("http", "https")) -> None:
    """Save-time check for forms, serializers and services: ``ValidationError({field: …})``.

    The message names the field and the reason, e.g. ``The webhook URL is not allowed:
    the host 'localhost' resolves to 127.0.0.1, a loopback address; …``.
    """
    from django.core.exceptions import ValidationError

    policy = policy or Policy()
    try:
        if policy.private_allowed():
            # Development/tests: any address goes, so a name need not resolve yet; the
            # request-time check still pins whatever it resolves to then.
            _literal(_split(url, schemes)[1].strip("[]"))
        else:
            check_url(url, policy=policy, schemes=schemes)
    except OutboundRefused as exc:
        raise ValidationError({field: f"{what} is not allowed: {exc.message}."}) from None


# --------------------------------------------------------------------------- deadlines

_outer_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("outbound_outer", default=None)
_current_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("outbound_current", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound everything guarded inside the block (several requests, redirects) by one deadline."""
    token = _outer_deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _outer_deadline.reset(token)


def _start_request(policy: Policy) -> float | None:
    candidates = [d for d in (_outer_deadline.get(),) if d is not None]
    if policy.total_timeout_s is not None:
        candidates.append(time.monotonic() + policy.total_timeout_s)
    chosen = min(candidates) if candidates else None
    _current_deadline.set(chosen)
    return chosen


def _clamp(timeout: float | None) -> float | None:
    """``timeout`` limited to what is left of the current request's deadline."""
    current = _current_deadline.get()
    if current is None:
        return timeout
    left = current - time.monotonic()
    if left <= 0:
        raise OutboundDeadline("the request took longer than its total time limit")
    return left if timeout is None else min(timeout, left)


def _deadline_error(policy: Policy, end: float | None) -> OutboundDeadline | None:
    if end is not None and time.monotonic() >= end - 0.01:
        limit = f" of {policy.total_timeout_s:g} s" if policy.total_timeout_s is not None else ""
        return OutboundDeadline(f"the request took longer than its total time limit{limit}")
    return None


def _too_large(policy: Policy, seen: int, *, decoded: bool = False) -> OutboundTooLarge:
    return OutboundTooLarge(f"the response is larger than the limit of {policy.max_response_bytes:,} bytes"
                            + (f" (Content-Length {seen:,})" if seen else "")
                            + (" once decompressed" if decoded else ""))


def _inflation_counter(policy: Policy, content_encoding: str) -> InflatedSize | None:
    """The counter for a size-capped response's ``Content-Encoding`` (None: not encoded or
    no cap); :class:`OutboundTooLarge` for a coding the guard cannot count."""
    if policy.max_response_bytes is None:
        return None
    try:
        return InflatedSize.for_encoding(content_encoding)
    except ValueError as exc:
        raise OutboundTooLarge(str(exc)) from None


class _BodyBounds:
    """The size and deadline checks of one response body, chunk by chunk (the sync and
    async streams share them). A compressed body is also counted as it inflates."""

    def __init__(self, policy: Policy, end: float | None, content_encoding: str = "") -> None:
        self._policy, self._end, self._seen = policy, end, 0
        self._inflated = _inflation_counter(policy, content_encoding)
        self._decoded = 0

    def admit(self, chunk: bytes) -> bytes:
        """``chunk``, unless the body has now grown past the size limit (as received or
        once decompressed) or the request's deadline has passed (then
        ``OutboundTooLarge``/``OutboundDeadline``)."""
        self._seen += len(chunk)
        cap = self._policy.max_response_bytes
        if cap is not None and self._seen > cap:
            raise _too_large(self._policy, 0)
        if cap is not None and self._inflated is not None:
            self._decoded += self._inflated.count(chunk, cap - self._decoded)
            if self._decoded > cap:
                raise _too_large(self._policy, 0, decoded=True)
        if (err := _deadline_error(self._policy, self._end)) is not None:
            raise err
        return chunk

    def timed_out(self, exc: Exception) -> Exception:
        """What a read timeout means: the request's deadline when that is what ran out."""
        return _deadline_error(self._policy, self._end) or exc


# --------------------------------------------------------------------------- httpcore backends


def _backends(core: ModuleType) -> tuple[type, type]:
    """A sync and an async network backend for ``core`` (httpcore or httpcore2) that pin and clamp."""

    class Stream(core.NetworkStream):  # type: ignore[name-defined, misc]
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._inner.read(max_bytes, _clamp(timeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _clamp(timeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                      timeout: float | None = None) -> Any:
            return Stream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class Backend(core.NetworkBackend):  # type: ignore[name-defined, misc]
        def __init__(self, policy: Policy) -> None:
            self._policy = policy
            self._inner = core.SyncBackend()

        def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                        local_address: str | None = None, socket_options: Any = None) -> Any:
            address = pin(host, port, self._policy)
            return Stream(self._inner.connect_tcp(address, port, _clamp(timeout), local_address, socket_options))

        def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
            raise OutboundRefused("unix sockets are not outbound destinations")

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    class AsyncStream(core.AsyncNetworkStream):  # type: ignore[name-defined, misc]
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return await self._inner.read(max_bytes, _clamp(timeout))

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            await self._inner.write(buffer, _clamp(timeout))

        async def aclose(self) -> None:
            await self._inner.aclose()

        async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                            timeout: float | None = None) -> Any:
            return AsyncStream(await self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class AsyncBackend(core.AsyncNetworkBackend):  # type: ignore[name-defined, misc]
        def __init__(self, policy: Policy) -> None:
            self._policy = policy
            self._inner = core.AnyIOBackend()

        async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                              local_address: str | None = None, socket_options: Any = None) -> Any:
            import anyio.to_thread

            address = await anyio.to_thread.run_sync(pin, host, port, self._policy)
            stream = await self._inner.connect_tcp(address, port, _clamp(timeout), local_address, socket_options)
            return AsyncStream(stream)

        async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
            raise OutboundRefused("unix sockets are not outbound destinations")

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    return Backend, AsyncBackend


def _transports(hx: ModuleType, core: ModuleType) -> tuple[type, type]:
    """Guarded sync/async transports for ``hx`` (httpx or httpx2) over ``core``."""
    backend_cls, async_backend_cls = _backends(core)

    class BoundedStream(hx.SyncByteStream):  # type: ignore[name-defined, misc]
        def __init__(self, inner: Any, bounds: _BodyBounds) -> None:
            self._inner, self._bounds = inner, bounds

        def __iter__(self) -> Iterator[bytes]:
            try:
                for chunk in self._inner:
                    yield self._bounds.admit(chunk)
            except hx.TimeoutException as exc:
                raise self._bounds.timed_out(exc) from exc

        def close(self) -> None:
            self._inner.close()

    class AsyncBoundedStream(hx.AsyncByteStream):  # type: ignore[name-defined, misc]
        def __init__(self, inner: Any, bounds: _BodyBounds) -> None:
            self._inner, self._bounds = inner, bounds

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._inner:
                    yield self._bounds.admit(chunk)
            except hx.TimeoutException as exc:
                raise self._bounds.timed_out(exc) from exc

        async def aclose(self) -> None:
            await self._inner.aclose()

    def accept_countable_codings(request: Any, policy: Policy) -> None:
        # Only codings _BodyBounds can count (not br/zstd); another sent anyway is refused there.
        if policy.max_response_bytes is not None and request.headers.get("accept-encoding", "identity") != "identity":
            request.headers["Accept-Encoding"] = ACCEPT_ENCODING

    def bounds(response: Any, policy: Policy, end: float | None) -> _BodyBounds:
        return _BodyBounds(policy, end, response.headers.get("content-encoding", ""))

    def declared_too_large(response: Any, policy: Policy) -> int:
        declared = response.headers.get("content-length", "")
        if policy.max_response_bytes is not None and declared.isdigit() and int(declared) > policy.max_response_bytes:
            return int(declared)
        return 0

    class Transport(hx.HTTPTransport):  # type: ignore[name-defined, misc]
        def __init__(self, policy: Policy, *, verify: ssl.SSLContext | bool = True, **limits: Any) -> None:
            super().__init__(verify=verify, trust_env=False)
            self._policy = policy
            self._pool = core.ConnectionPool(ssl_context=hx.create_ssl_context(verify=verify, trust_env=False),
                                             network_backend=backend_cls(policy), **limits)

        def handle_request(self, request: Any) -> Any:
            end = _start_request(self._policy)
            accept_countable_codings(request, self._policy)
            try:
                response = super().handle_request(request)
            except hx.TimeoutException as exc:
                raise (_deadline_error(self._policy, end) or exc) from exc
            try:
                if size := declared_too_large(response, self._policy):
                    raise _too_large(self._policy, size)
                checked = bounds(response, self._policy, end)
            except OutboundTooLarge:
                response.close()
                raise
            response.stream = BoundedStream(response.stream, checked)
            return response

    class AsyncTransport(hx.AsyncHTTPTransport):  # type: ignore[name-defined, misc]
        def __init__(self, policy: Policy, *, verify: ssl.SSLContext | bool = True, **limits: Any) -> None:
            super().__init__(verify=verify, trust_env=False)
            self._policy = policy
            self._pool = core.AsyncConnectionPool(ssl_context=hx.create_ssl_context(verify=verify, trust_env=False),
                                                  network_backend=async_backend_cls(policy), **limits)

        async def handle_async_request(self, request: Any) -> Any:
            end = _start_request(self._policy)
            accept_countable_codings(request, self._policy)
            try:
                response = await super().handle_async_request(request)
            except hx.TimeoutException as exc:
                raise (_deadline_error(self._policy, end) or exc) from exc
            try:
                if size := declared_too_large(response, self._policy):
                    raise _too_large(self._policy, size)
                checked = bounds(response, self._policy, end)
            except OutboundTooLarge:
                await response.aclose()
                raise
            response.stream = AsyncBoundedStream(response.stream, checked)
            return response

    return Transport, AsyncTransport


_transport_cache: dict[str, tuple[type, type]] = {}


def _transport_classes(hx: ModuleType) -> tuple[type, type]:
    name = hx.__name__
    if name not in _transport_cache:
        core = __import__("httpcore2" if name == "httpx2" else "httpcore")
        _transport_cache[name] = _transports(hx, core)
    return _transport_cache[name]


def transport(policy: Policy | None = None, *, hx: ModuleType = httpx, verify: ssl.SSLContext | bool = True) -> Any:
    """A guarded sync transport (``hx`` is ``httpx`` or ``httpx2``)."""
    return _transport_classes(hx)[0](policy or Policy(), verify=verify)


def async_transport(policy: Policy | None = None, *, hx: ModuleType = httpx,
                    verify: ssl.SSLContext | bool = True) -> Any:
    """A guarded async transport (``hx`` is ``httpx`` or ``httpx2``)."""
    return _transport_classes(hx)[1](policy or Policy(), verify=verify)


def _client_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("follow_redirects", False)
    kwargs.setdefault("max_redirects", DEFAULT_MAX_REDIRECTS)
    kwargs["trust_env"] = False  # an environment proxy would resolve the name itself
    return kwargs


def sync_client(policy: Policy | None = None, *, hx: ModuleType = httpx, verify: ssl.SSLContext | bool = True,
                **kwargs: Any) -> Any:
    """``httpx.Client`` (or ``httpx2``) whose every connection is guarded; redirects off unless asked."""
    return hx.Client(transport=transport(policy, hx=hx, verify=verify), **_client_kwargs(kwargs))


def async_client(policy: Policy | None = None, *, hx: ModuleType = httpx, verify: ssl.SSLContext | bool = True,
                 wrap: Callable[[Any], Any] | None = None, **kwargs: Any) -> Any:
    """``httpx.AsyncClient`` (or ``httpx2``) whose every connection is guarded; redirects off unless asked.
    ``wrap(transport)`` may put a transport around the guarded one (to observe its refusals); it must
    send every request through it."""
    guarded = async_transport(policy, hx=hx, verify=verify)
    return hx.AsyncClient(transport=wrap(guarded) if wrap else guarded, **_client_kwargs(kwargs))


# --------------------------------------------------------------------------- requests


class RequestsRefused(OutboundRefused, requests.exceptions.InvalidURL):
    """:class:`OutboundRefused` that ``requests``-based SDKs also catch as a RequestException."""


class RequestsDeadline(OutboundDeadline, requests.exceptions.Timeout):
    """:class:`OutboundDeadline` that ``requests``-based SDKs also catch as a timeout."""


class RequestsTooLarge(OutboundTooLarge, requests.exceptions.RequestException):
    """:class:`OutboundTooLarge` that ``requests``-based SDKs also catch as a RequestException."""


class GuardedRequestsAdapter(HTTPAdapter):
    """A ``requests`` adapter that sends through the guarded httpx client (and optionally rebases).

    ``rebase`` (a ``scheme://host[:port]`` URL) sends every request there, keeping path
    and query: how the carrier SDKs are pointed at a ``base_url`` override. Sending
    through :func:`sync_client` gives ``requests``-based SDKs the same guarantees as
    everything else (pinned address with the name kept for ``Host`` and TLS, a total
    deadline, a size cap); redirects come back through the session and :meth:`send`
    checks them again. Guard errors are also ``requests`` exceptions, so SDKs' own
    error handling sees them.
    """

    def __init__(self, policy: Policy | None = None, *, rebase: str | None = None) -> None:
        super().__init__()
        self._policy = policy or Policy()
        self._rebase = urlsplit(rebase) if rebase else None
        self._client: httpx.Client | None = None

    def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True,
             cert: Any = None, proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url or "")
        if self._rebase is not None:
            parts = parts._replace(scheme=self._rebase.scheme, netloc=self._rebase.netloc)
        url = urlunsplit(parts)
        if isinstance(timeout, tuple):
            timeout = httpx.Timeout(None, connect=timeout[0], read=timeout[1], write=timeout[1], pool=timeout[0])
        if self._client is None:
            self._client = sync_client(self._policy, verify=verify if isinstance(verify, (bool, ssl.SSLContext))
                                       else True)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        try:
            _split(url, ("http", "https"))
            answer = self._client.request(request.method, url, headers=headers, content=request.body,
                                          timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except OutboundRefused as exc:
            raise RequestsRefused(exc.message, request=request) from exc
        except OutboundDeadline as exc:
            raise RequestsDeadline(exc.message, request=request) from exc
        except OutboundTooLarge as exc:
            raise RequestsTooLarge(exc.message, request=request) from exc
        except httpx.TimeoutException as exc:
            raise requests.exceptions.Timeout(str(exc), request=request) from exc
        except httpx.HTTPError as exc:
            raise requests.exceptions.ConnectionError(str(exc), request=request) from exc
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.reason_phrase
        response.headers = requests.structures.CaseInsensitiveDict(answer.headers.multi_items())
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response._content = answer.content
        response.url = url
        response.request = request
        response.connection = self
        return response

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        super().close()


# --------------------------------------------------------------------------- sockets (websockets)


async def open_connection(url: str, *, policy: Policy | None = None, timeout: float = 10.0,
                          schemes: Iterable[str] = ("ws", "wss", "http", "https")) -> tuple[socket.socket, str]:
    """A TCP socket connected to the checked address of ``url``, and the host name.

    For ``websockets.connect(url, sock=sock, server_hostname=name)``: the library then
    does no resolution of its own and TLS verifies the name.
    """
    import asyncio

    import anyio.to_thread

    scheme, host, port = _split(url, schemes)
    address = await anyio.to_thread.run_sync(pin, host, port, policy or Policy())
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (address, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return sock, host


def aiohttp_session(policy: Policy | None = None) -> Any:
    """An ``aiohttp.ClientSession`` for SDKs built on aiohttp (``livekit-api``): every
    connection, redirects included, resolves its host once through :func:`pin` (refused
    addresses raise :class:`OutboundRefused` before any connect; no DNS cache, so nothing
    reuses an old answer) and connects to that address, while TLS verifies the name; the
    policy's total deadline is the session's timeout, and its size cap bounds what
    ``read()`` (and so ``text()``/``json()``) takes in, decompressed, before it is kept.
    The caller closes the session.
    """
    import aiohttp
    import anyio.to_thread
    from aiohttp.abc import ResolveResult

    checked = policy or Policy()

    class PinnedConnector(aiohttp.TCPConnector):
        # The connector's one resolution step, for names and address literals alike (its
        # resolver hook is skipped for literals, which must be checked too).
        async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
            address = await anyio.to_thread.run_sync(pin, host, port, checked)
            return [ResolveResult(hostname=host, host=address, port=port, proto=0, flags=socket.AI_NUMERICHOST,
                                  family=socket.AF_INET6 if ":" in address else socket.AF_INET)]

    class CappedResponse(aiohttp.ClientResponse):
        async def read(self) -> bytes:
            cap = checked.max_response_bytes
            if self._body is None and cap is not None:
                body = bytearray()
                try:
                    async for piece in self.content.iter_chunked(64 * 1024):
                        body.extend(piece)
                        if len(body) > cap:
                            raise _too_large(checked, 0, decoded=bool(self.headers.get("Content-Encoding")))
                except BaseException:
                    self.close()
                    raise
                self._body = bytes(body)
            return await super().read()

    connector = PinnedConnector(use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector, response_class=CappedResponse,
                                 timeout=aiohttp.ClientTimeout(total=checked.total_timeout_s))


__all__ = [
    "Destination", "GuardedRequestsAdapter", "OutboundDeadline", "OutboundError", "OutboundRefused",
    "OutboundTooLarge", "OutboundUnresolvable", "Policy", "RequestsDeadline", "RequestsRefused", "RequestsTooLarge",
    "aiohttp_session", "async_client", "async_transport", "check_url", "deadline", "open_connection",
    "pin", "refusal_reason", "sync_client", "transport", "using_resolver", "validate_url",
]
