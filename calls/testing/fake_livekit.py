"""A LiveKit server's RoomService on 127.0.0.1, speaking its Twirp protocol, for the official
``livekit-api`` package pointed at it (``LiveKitAPI(fake.url, key, secret)``).

Twirp as LiveKit serves it: ``POST /twirp/livekit.RoomService/<Method>`` with
``Content-Type: application/protobuf``, the request a serialized ``livekit.*Request``
message, the answer the serialized response on 200; an error is JSON ``{"code", "msg"}``
(``unauthenticated`` 401, ``permission_denied`` 403, ``bad_route`` 404, ``internal`` 500).
Every request must carry ``Authorization: Bearer <JWT>`` minted from the key pair: the
fake verifies it with the package's own ``TokenVerifier`` (HS256, issuer = API key, exp
required) and checks the grant the method needs (``roomList`` for ``ListRooms``, as the
server does).

Implemented: ``ListRooms`` (the rooms in :attr:`rooms`, filtered by ``names``). A test can
make the next request fail with :meth:`fail_next`. ``requests`` records each call
(method, the claims' grants, never the token).
"""
from __future__ import annotations

from livekit import api
from livekit.protocol import models, room
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integrations.testing.asgi_server import FakeServer

_STATUS = {"unauthenticated": 401, "permission_denied": 403, "bad_route": 404, "internal": 500,
           "resource_exhausted": 429, "unavailable": 503}


def _error(code: str, msg: str) -> Response:
    return JSONResponse({"code": code, "msg": msg}, status_code=_STATUS.get(code, 400))


class FakeLiveKit(FakeServer):
    """See module docstring."""

    def __init__(self, *, api_key: str = "APIfakekey", api_secret: str = "fake-secret-0123456789abcdef") -> None:
        super().__init__()
        self.api_key = api_key
        self.api_secret = api_secret
        self.rooms: list[models.Room] = [models.Room(sid="RM_1", name="support-1", num_participants=2),
                                         models.Room(sid="RM_2", name="sales-7", num_participants=1)]
        self._fail: list[tuple[str, str]] = []
        self.app = Starlette(routes=[Route("/twirp/livekit.RoomService/{method}", self._room_service,
                                           methods=["POST"])])

    def fail_next(self, code: str, msg: str = "") -> None:
        """Answer the next request with this Twirp error code (e.g. ``internal``)."""
        self._fail.append((code, msg))

    def credentials(self) -> dict[str, str]:
        """The secrets a stored LiveKit credential for this fake has."""
        return {"url": self.url, "api_key": self.api_key, "api_secret": self.api_secret}

    async def _room_service(self, request: Request) -> Response:
        method = request.path_params["method"]
        auth = request.headers.get("authorization", "")
        try:
            claims = api.TokenVerifier(self.api_key, self.api_secret).verify(auth.removeprefix("Bearer "))
        except Exception:  # noqa: BLE001 - any bad token is what the server calls unauthenticated
            self.requests.append({"method": method, "authenticated": False})
            return _error("unauthenticated", "invalid token")
        grants = claims.video
        self.requests.append({"method": method, "authenticated": True,
                              "room_list": bool(grants and grants.room_list),
                              "room_admin": bool(grants and grants.room_admin),
                              "content_type": request.headers.get("content-type")})
        if self._fail:
            return _error(*self._fail.pop(0))
        if method != "ListRooms":
            return _error("bad_route", f"no handler for {method}")
        if not (grants and grants.room_list):
            return _error("permission_denied", "requires roomList grant")
        wanted = room.ListRoomsRequest.FromString(await request.body())
        found = [r for r in self.rooms if not wanted.names or r.name in wanted.names]
        body = room.ListRoomsResponse(rooms=found).SerializeToString()
        return Response(body, media_type="application/protobuf")
