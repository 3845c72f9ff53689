"""Fake OpenAI and Gemini embedding APIs speaking the real wire format.

Vectors are deterministic and meaningful enough for search tests: a hashed bag of
word stems, L2-normalised, so texts that share words are close. Set
`fail_next = [(status, message), ...]` to make the next requests fail, and
`api_key` to require a key (401/400 otherwise, as the real services answer).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from typing import Any

from knowledge.testing.fake_server import FakeHTTPServer, RecordedRequest, Response, json_response

_WORD = re.compile(r"[a-z0-9]+")


def hashed_vector(text: str, dimensions: int) -> list[float]:
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word[:6].encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % dimensions
        vector[slot] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    if norm == 1.0 and not any(vector):
        vector[0] = 1.0
    return [v / norm for v in vector]


class _FakeEmbeddingAPI(FakeHTTPServer):
    native_dimensions: int = 1536

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.fail_next: list[tuple[int, str]] = []

    def _pop_failure(self) -> tuple[int, str] | None:
        with self._lock:
            return self.fail_next.pop(0) if self.fail_next else None


class FakeOpenAIEmbeddings(_FakeEmbeddingAPI):
    """POST /v1/embeddings as documented in the OpenAI API reference."""

    def handle(self, request: RecordedRequest) -> Response:
        if request.method != "POST" or request.path.split("?")[0] != "/v1/embeddings":
            return json_response(404, {"error": {"message": f"Invalid URL ({request.method} "
                                                 f"{request.path})", "type": "invalid_request_error",
                                                 "param": None, "code": None}})
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return json_response(401, {"error": {"message": "Incorrect API key provided.",
                                                 "type": "invalid_request_error", "param": None,
                                                 "code": "invalid_api_key"}})
        failure = self._pop_failure()
        if failure:
            return json_response(failure[0], {"error": {"message": failure[1], "type": "server_error",
                                                        "param": None, "code": None}})
        body: dict[str, Any] = request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = int(body.get("dimensions") or self.native_dimensions)
        data = []
        for index, text in enumerate(inputs):
            vector = hashed_vector(str(text), dims)
            if body.get("encoding_format") == "base64":
                embedding: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(str(t).split()) for t in inputs)
        return json_response(200, {"object": "list", "data": data, "model": body["model"],
                                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


class FakeGeminiEmbeddings(_FakeEmbeddingAPI):
    """POST /v1[beta]/models/{model}:batchEmbedContents (and :embedContent) as the
    Gemini Developer API serves them; the key arrives in `x-goog-api-key`."""

    native_dimensions = 3072
    MODELS = ("gemini-embedding-001", "gemini-2.5-flash")

    def handle(self, request: RecordedRequest) -> Response:
        if request.method == "GET" and re.fullmatch(r"/v1(?:beta)?/models", request.path.split("?")[0]):
            return self._list_models(request)
        match = re.fullmatch(r"/v1(?:beta)?/models/([^:/]+):(batchEmbedContents|embedContent)",
                             request.path.split("?")[0])
        if request.method != "POST" or not match:
            return json_response(404, {"error": {"code": 404, "message": "Not found",
                                                 "status": "NOT_FOUND"}})
        if self.api_key and request.headers.get("x-goog-api-key") != self.api_key:
            return json_response(400, {"error": {"code": 400, "message": "API key not valid. "
                                                 "Please pass a valid API key.",
                                                 "status": "INVALID_ARGUMENT"}})
        failure = self._pop_failure()
        if failure:
            status_name = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(failure[0], "INTERNAL")
            return json_response(failure[0], {"error": {"code": failure[0], "message": failure[1],
                                                        "status": status_name}})
        body = request.json()
        single = match.group(2) == "embedContent"
        requests = [body] if single else body["requests"]
        embeddings = []
        for item in requests:
            text = " ".join(part.get("text", "") for part in item["content"]["parts"])
            dims = int(item.get("outputDimensionality") or item.get("output_dimensionality")
                       or self.native_dimensions)
            embeddings.append({"values": hashed_vector(text, dims)})
        return json_response(200, {"embedding": embeddings[0]} if single else {"embeddings": embeddings})

    def _list_models(self, request: RecordedRequest) -> Response:
        """GET /v1beta/models (models.list), with the same key check and queued failures."""
        if self.api_key and request.headers.get("x-goog-api-key") != self.api_key:
            return json_response(400, {"error": {"code": 400, "message": "API key not valid. "
                                                 "Please pass a valid API key.",
                                                 "status": "INVALID_ARGUMENT"}})
        failure = self._pop_failure()
        if failure:
            status_name = {403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(
                failure[0], "INTERNAL")
            return json_response(failure[0], {"error": {"code": failure[0], "message": failure[1],
                                                        "status": status_name}})
        return json_response(200, {"models": [
            {"name": f"models/{name}", "displayName": name, "version": "001",
             "supportedGenerationMethods": ["embedContent"] if "embedding" in name else ["generateContent"]}
            for name in self.MODELS]})
