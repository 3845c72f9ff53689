"""Fetch a URL source in the worker, through the outbound guard, with size and time limits.

The URL comes from a tenant, so the fetch goes through :mod:`voiceplatform.outbound`: the
host is resolved once, non-public addresses (cloud metadata endpoints, the database,
this server) are refused unless ``OUTBOUND_ALLOW_PRIVATE`` is on (development, tests,
single-tenant installs on a LAN), and the connection goes to the address that was
checked (no second resolution, so DNS rebinding cannot slip past). Every redirect hop
is checked the same way. ``timeout`` is a deadline for the whole fetch, redirects and a
trickling body included, not a per-read timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from knowledge.extraction import ExtractionError
from voiceplatform import outbound

MAX_REDIRECTS = 5


class FetchError(ExtractionError):
    code = "fetch_failed"


class PageTooLargeError(FetchError):
    """The page passed the size cap (as received or once decompressed): the version's
    state is `too_large`, worded like a file over a cap."""

    code = "too_large"


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    data: bytes
    content_type: str
    filename: str


def fetch_url(url: str, *, max_bytes: int, timeout: float) -> Fetched:
    """GET `url` following up to MAX_REDIRECTS redirects; FetchError names what went wrong."""
    policy = outbound.Policy(total_timeout_s=timeout, max_response_bytes=max_bytes)
    current = url
    with outbound.deadline(timeout), outbound.sync_client(
            policy, timeout=timeout, headers={"User-Agent": "voiceplatform-knowledge/1.0"}) as client:
        for _ in range(MAX_REDIRECTS + 1):
            if urlsplit(current).scheme not in ("http", "https"):
                raise FetchError(f"{current}: only http and https URLs can be fetched")
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
                    data = response.read()
                    path = urlsplit(current).path.rstrip("/")
                    filename = path.rsplit("/", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
                    return Fetched(url=current, data=data, content_type=response.headers.get("content-type", ""),
                                   filename=filename)
            except outbound.OutboundRefused as exc:
                raise FetchError(f"{current}: refused: {exc.message}") from exc
            except outbound.OutboundTooLarge as exc:
                what = "once decompressed" if "decompressed" in exc.message else "as received"
                raise PageTooLargeError(f"{current}: file too large: the page is larger than {max_bytes:,} bytes "
                                        f"{what}, limit {max_bytes:,} bytes") from exc
            except (outbound.OutboundDeadline, httpx.TimeoutException) as exc:
                raise FetchError(f"{current}: download took longer than {timeout:g} s") from exc
            except httpx.HTTPError as exc:
                raise FetchError(f"{current}: cannot fetch ({type(exc).__name__}: {exc})") from exc
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")
