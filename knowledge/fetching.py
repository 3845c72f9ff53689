"""Fetch a URL source in the worker, with size, time and address limits.

The URL comes from a tenant, so the fetch refuses private, loopback and link-local
addresses (cloud metadata endpoints, the database) unless
`settings.KNOWLEDGE_URL_ALLOW_PRIVATE` is on (tests, single-tenant installs on a
LAN). Every hop of a redirect is checked the same way.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from knowledge.extraction import ExtractionError

MAX_REDIRECTS = 5


class FetchError(ExtractionError):
    code = "fetch_failed"


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    data: bytes
    content_type: str
    filename: str


def _check_host(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{url}: only http and https URLs can be fetched")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"{url}: cannot resolve host {parts.hostname!r}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise FetchError(f"{url}: refusing to fetch a private or local address ({address})")


def fetch_url(url: str, *, max_bytes: int, timeout: float, allow_private: bool = False) -> Fetched:
    """GET `url` following up to MAX_REDIRECTS redirects; FetchError names what went wrong."""
    deadline = time.monotonic() + timeout
    current = url
    with httpx.Client(follow_redirects=False, timeout=timeout,
                      headers={"User-Agent": "voiceplatform-knowledge/1.0"}) as client:
        for _ in range(MAX_REDIRECTS + 1):
            _check_host(current, allow_private)
            try:
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(f"{current}: redirect without a Location header")
                        current = urljoin(current, location)
                        continue
                    if response.status_code >= 400:
                        raise FetchError(f"{current}: the server answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise FetchError(f"{current}: the page is {int(declared):,} bytes, "
                                         f"the limit is {max_bytes:,} bytes")
                    body = bytearray()
                    for piece in response.iter_bytes():
                        body.extend(piece)
                        if len(body) > max_bytes:
                            raise FetchError(f"{current}: the page is larger than the limit of "
                                             f"{max_bytes:,} bytes")
                        if time.monotonic() > deadline:
                            raise FetchError(f"{current}: download took longer than {timeout:g} s")
                    path = urlsplit(current).path.rstrip("/")
                    filename = path.rsplit("/", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
                    return Fetched(url=current, data=bytes(body),
                                   content_type=response.headers.get("content-type", ""),
                                   filename=filename)
            except httpx.TimeoutException as exc:
                raise FetchError(f"{current}: no answer within {timeout:g} s") from exc
            except httpx.HTTPError as exc:
                raise FetchError(f"{current}: cannot fetch ({type(exc).__name__}: {exc})") from exc
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")
