"""The vendor fakes' own guarantees: a handler that raises is recorded and answered with a
complete 500 on a connection that stays usable (left to uvicorn, the connection closed right
after the 500, and a client that had already reused it for its next request got a
``ReadError``: a flaky network failure far from the crash); the Gmail fake refuses, as Gmail
does, a message whose To header Python's parser cannot read, instead of raising."""
from __future__ import annotations

import base64
from email.message import EmailMessage

import httpx
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


def test_the_gmail_fake_refuses_an_unreadable_to_header_as_gmail_does() -> None:
    message = EmailMessage()
    # Two non-ASCII recipients: the header folds right after an "@", and parsing the
    # result raises IndexError in Python's address parser.
    message["To"] = "\x93ġ@5Òø.\U000edce2Ô\U000614b7, O\U000a8bdbĖã\x89å\U0006ec55v@\U000c0cddå绲ĕ.\x93ĝ\U0006a79dK\x8a\U000379e1Ö"
    message.set_content("hello")
    raw = base64.urlsafe_b64encode(message.as_bytes()).decode().rstrip("=")
    fake = FakeGmail()
    with fake, httpx.Client(base_url=fake.url) as client:
        token = client.post("/token", data={"grant_type": "refresh_token", "client_id": fake.client[0],
                                            "client_secret": fake.client[1], "refresh_token": "1//refresh"})
        answer = client.post("/gmail/v1/users/me/messages/send", json={"raw": raw},
                             headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert answer.status_code == 400
    assert answer.json()["error"] == {"code": 400, "message": "Invalid To header", "status": "INVALID_ARGUMENT"}
    assert fake.handler_errors == [] and fake.sent_raw == []
