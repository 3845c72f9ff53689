"""Uploads have a size cap (issue 11): every upload endpoint, API and dashboard (knowledge
documents and versions, batch CSV/JSON and its preview, do-not-call imports, test-suite
YAML imports), answers a body over UPLOAD_MAX_BYTES with 413 and the limit, and stores nothing.

Through the production ASGI stack (uvicorn, as compose runs it) the cap holds before
Django reads the body: a declared Content-Length over it is answered without reading a
byte of the body, and a chunked body with no length is cut off as it streams past it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.parsers import MultiPartParser

from batches.models import Batch, DoNotCallNumber
from calls.tests.factories import make_ready_agent
from knowledge import services as knowledge
from knowledge.models import Document, DocumentVersion
from orgs.services import SYSTEM
from simulations.models import Scenario, Suite
from simulations.yaml_io import MAX_YAML_BYTES
from voiceplatform.testing import subprocess_env

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 1024


def stored() -> tuple[int, ...]:
    return (Document.objects.count(), DocumentVersion.objects.count(), Batch.objects.count(),
            DoNotCallNumber.objects.count(), Suite.objects.count(), Scenario.objects.count())


def big_csv() -> bytes:
    rows = "\n".join(f"+1415555{n % 10000:04d},Customer {n}" for n in range(LIMIT // 20))
    return f"phone,name\n{rows}\n".encode()


def endpoints(kb: Any, document: Any, agent: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, url, form fields) of every upload the platform accepts."""
    return [
        ("api", "/api/v1/test-suites/import/", {"agent": str(agent.public_id)}),
        ("dashboard", "/tests/", {"agent": str(agent.public_id)}),
        ("api", f"/api/v1/knowledge-bases/{kb.public_id}/documents/", {}),
        ("api", f"/api/v1/knowledge-bases/{kb.public_id}/documents/{document.public_id}/versions/", {}),
        ("api", "/api/v1/batches/", {"name": "Spring"}),
        ("api", "/api/v1/batches/preview/", {}),
        ("api", "/api/v1/do-not-call/import/", {}),
        ("dashboard", f"/knowledge/{kb.public_id}/add/", {}),
        ("dashboard", f"/knowledge/{kb.public_id}/documents/{document.public_id}/", {}),
        ("dashboard", "/batches/new/", {"name": "Spring"}),
        ("dashboard", "/batches/do-not-call/", {}),
    ]


def _multipart_views() -> set[type]:
    """Every DRF view in the URL conf that chose to accept multipart bodies (file uploads);
    DRF's default parsers would take them on any view, which the cap covers alike."""
    from rest_framework.views import APIView

    found: set[type] = set()

    def walk(patterns: list[Any]) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                cls = getattr(pattern.callback, "cls", None)
                chosen = cls is not None and any("parser_classes" in vars(k) for k in cls.__mro__ if k is not APIView)
                if chosen and any(issubclass(p, MultiPartParser) for p in cls.parser_classes):
                    found.add(cls)

    walk(get_resolver().url_patterns)
    return found


@pytest.mark.django_db
def test_every_upload_endpoint_refuses_an_oversized_body_with_413(org_a: Any, editor_a: Any, settings: Any,
                                                                  client: Any) -> None:
    settings.UPLOAD_MAX_BYTES = LIMIT
    kb = knowledge.create_knowledge_base(org_a, SYSTEM, name="Support")
    document = knowledge.add_document(kb, SYSTEM, knowledge.SourceInput(text="Opening hours: nine to five."))
    agent = make_ready_agent(org_a, name="Support line")
    listed = endpoints(kb, document, agent)
    # The list covers every multipart API view (a new upload endpoint must join it).
    covered = {get_resolver().resolve(url).func.cls for kind, url, _ in listed if kind == "api"}
    multipart = _multipart_views()
    assert len(multipart) >= 3 and multipart <= covered, multipart - covered

    client.force_login(editor_a)
    # The forms say the limit before anyone hits it.
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 32 * 1024
    assert "up to 32 KB" in client.get(f"/knowledge/{kb.public_id}/").content.decode()
    assert "up to 64 KB" in client.get("/batches/new/").content.decode()
    assert "up to 64 KB" in client.get("/batches/do-not-call/").content.decode()
    assert f"up to {MAX_YAML_BYTES // 1024} KB" in client.get("/tests/").content.decode()  # its own, smaller cap
    before = stored()
    payload = big_csv()
    assert len(payload) > LIMIT
    for kind, url, fields in listed:
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile("contacts.csv", payload, content_type="text/csv")
        response = client.post(url, {**fields, "file": upload})
        assert response.status_code == 413, (url, response.status_code, response.content[:300])
        text = response.content.decode()
        assert f"limit {LIMIT:,} bytes" in text, (url, text[:300])
        if kind == "api":
            error = response.json()["error"]
            assert error["code"] == "too_large" and error["limit_bytes"] == LIMIT
            assert error["message"].startswith("Upload too large: the request body is ")
        else:
            assert response["Content-Type"].startswith("text/html") and "Upload too large" in text
    assert stored() == before  # nothing was stored for any of them

    # Under the cap, uploads work as before.
    small = SimpleUploadedFile("faq.txt", b"Parking is free.", content_type="text/plain")
    assert client.post(f"/api/v1/knowledge-bases/{kb.public_id}/documents/", {"file": small}).status_code == 201


# --- the production ASGI stack ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def uvicorn_server(transactional_db: Any, tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    log = (tmp_path / "uvicorn.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "voiceplatform.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--ws", "websockets-sansio", "--http", "httptools"],
        cwd=ROOT, env=subprocess_env(UPLOAD_MAX_BYTES=str(LIMIT), MEDIA_ROOT=str(tmp_path / "media")),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "uvicorn.log").read_text()
                time.sleep(0.2)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return status, headers, body


@pytest.mark.slow
def test_asgi_stack_refuses_before_reading_and_while_streaming(uvicorn_server: int, org_a: Any,
                                                               api_key_client: Any) -> None:
    from orgs.services import create_api_key

    kb = knowledge.create_knowledge_base(org_a, SYSTEM, name="Support")
    _key, token = create_api_key(org_a, SYSTEM, "uploader", "editor")
    path = f"/api/v1/knowledge-bases/{kb.public_id}/documents/"
    boundary = "vpboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    common = (f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
              f"Content-Type: multipart/form-data; boundary={boundary}\r\n")

    # 1. A declared length over the cap: answered from the headers alone (no body is sent).
    with socket.create_connection(("127.0.0.1", uvicorn_server)) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{common}Content-Length: {50 * 1024 * 1024}\r\n\r\n".encode())
        status, headers, body = _read_response(sock)
    assert status == 413, body[:300]
    error = json.loads(body)["error"]
    assert error["code"] == "too_large" and error["message"] == (
        f"Upload too large: the request body is {50 * 1024 * 1024:,} bytes, limit {LIMIT:,} bytes.")

    # 2. No length (chunked): counted while it streams, cut off past the cap.
    with socket.create_connection(("127.0.0.1", uvicorn_server)) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{common}Transfer-Encoding: chunked\r\n\r\n".encode())
        chunks = [head] + [b"x" * 16384] * 64 + [tail]  # 1 MB of file, far past the cap
        try:
            for chunk in chunks:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the end of the body: as intended
        status, headers, body = _read_response(sock)
    assert status == 413, body[:300]
    assert json.loads(body)["error"]["message"] == (
        f"Upload too large: the request body is larger than that, limit {LIMIT:,} bytes.")
    assert not Document.objects.filter(knowledge_base=kb).exists()

    # 3. Under the cap, the upload goes through (Django parses multipart only with a length).
    small = head + b"Parking is free." + tail
    with socket.create_connection(("127.0.0.1", uvicorn_server)) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{common}Content-Length: {len(small)}\r\n\r\n".encode() + small)
        status, _, body = _read_response(sock)
    assert status == 201, body[:300]
    assert Document.objects.filter(knowledge_base=kb).count() == 1
