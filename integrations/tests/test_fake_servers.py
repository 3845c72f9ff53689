"""The vendor fakes' own guarantees: a handler that raises is recorded and answered with a
complete 500 on a connection that stays usable (left to uvicorn, the connection closed right
after the 500, and a client that had already reused it for its next request got a
``ReadError``: a flaky network failure far from the crash); the Gmail fake refuses, as Gmail
does, a message whose To header Python's parser cannot read, instead of raising, and reads
every recipient header as strictly as Gmail."""
from __future__ import annotations

import base64
import contextlib
from email.message import EmailMessage

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from integrations.testing.asgi_server import FakeServer
from integrations.testing.fake_gmail import FakeGmail


class Crashing(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.app = Starlette(routes=[Route("/crash", self._crash, methods=["POST"]), Route("/ok", self._ok)])

    async def _crash(self, request: Request) -> JSONResponse:
        raise IndexError("string index out of range")

    async def _ok(self, request: Request) -> JSONResponse:
        assert request.client is not None
        return JSONResponse({"client_port": request.client.port})


def test_a_handler_that_raises_is_recorded_and_answered_500_on_a_connection_that_stays_open() -> None:
    with Crashing() as fake, httpx.Client(base_url=fake.url) as client:
        before = client.get("/ok").json()["client_port"]
        crashed = client.post("/crash")
        after = client.get("/ok")
    assert crashed.status_code == 500
    assert after.status_code == 200
    assert after.json()["client_port"] == before  # one keep-alive connection throughout: never closed
    assert [type(e) for e in fake.handler_errors] == [IndexError]


@contextlib.contextmanager
def gmail_sender():
    """(fake, send(raw message bytes) -> response) against a fresh Gmail fake."""
    fake = FakeGmail()
    with fake, httpx.Client(base_url=fake.url) as client:
        token = client.post("/token", data={"grant_type": "refresh_token", "client_id": fake.client[0],
                                            "client_secret": fake.client[1], "refresh_token": "1//refresh"})
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}

        def send(raw: bytes) -> httpx.Response:
            return client.post("/gmail/v1/users/me/messages/send", headers=bearer,
                               json={"raw": base64.urlsafe_b64encode(raw).decode().rstrip("=")})

        yield fake, send


def test_the_gmail_fake_refuses_an_unreadable_to_header_as_gmail_does() -> None:
    message = EmailMessage()
    # Two non-ASCII recipients: the header folds right after an "@", and parsing the
    # result raises IndexError in Python's address parser.
    message["To"] = "\x93ġ@5Òø.\U000edce2Ô\U000614b7, O\U000a8bdbĖã\x89å\U0006ec55v@\U000c0cddå绲ĕ.\x93ĝ\U0006a79dK\x8a\U000379e1Ö"
    message.set_content("hello")
    with gmail_sender() as (fake, send):
        answer = send(message.as_bytes())
    assert answer.status_code == 400
    assert answer.json()["error"] == {"code": 400, "message": "Invalid To header", "status": "INVALID_ARGUMENT"}
    assert fake.handler_errors == [] and fake.sent_raw == []


@pytest.mark.parametrize(("headers", "refused"), [
    # an encoded word inside an address, which Python's parser decodes without a defect
    (b"To: =?utf-8?q?ceo?= @example.com", "Invalid To header"),
    # ... and one it reads literally (after a "."), which another reader may decode
    (b"To: ok@example.com\nCc: a@b.=?utf-8?q?=C3=BC?=", "Invalid Cc header"),
    # raw UTF-8: Gmail's raw endpoint is reported to read header bytes as Latin-1
    ("To: jürgen@example.de".encode(), "Invalid To header"),
    (b"To: a@b..c", "Invalid To header"),  # no address a reader can parse
    (b"Cc: a@example.com", "Invalid To header"),  # no To at all
    (b"To: a@example.com\nBcc: b@", "Invalid Bcc header"),
    (b"To: Ada <a@example.com>, b@xn--bcher-kva.de\nCc: c.d@example.com", None),  # read as given
])
def test_the_gmail_fake_reads_recipient_headers_as_strictly_as_gmail(headers: bytes, refused: str | None) -> None:
    with gmail_sender() as (fake, send):
        answer = send(headers + b"\nSubject: s\n\nhello\n")
    assert fake.handler_errors == []
    if refused:
        assert (answer.status_code, answer.json()["error"]["message"]) == (400, refused)
        assert fake.sent_raw == []
    else:
        assert answer.status_code == 200, answer.text
        (sent,) = fake.sent_raw
        assert [a.addr_spec for a in sent["To"].addresses] == ["a@example.com", "b@xn--bcher-kva.de"]
