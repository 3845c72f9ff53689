"""Testing a stored provider credential: one cheap, read-only, authenticated call to the vendor.

What each provider is asked, through its own SDK (so a key that works here works for calls):

- OpenAI: list models (``GET /v1/models``; Azure OpenAI, when the credential has an
  ``api_version``: ``GET /openai/models?api-version=…``);
- Gemini: list models (``GET /v1beta/models``);
- Twilio: fetch the account (``GET /2010-04-01/Accounts/{sid}.json``);
- Plivo: get the account details (``GET /v1/Account/{auth_id}/``);
- Deepgram: list the key's projects (``GET /v1/projects``);
- LiveKit: list the server's rooms (Twirp ``POST /twirp/livekit.RoomService/ListRooms``
  with a token the ``livekit-api`` package mints from the key pair, granting ``roomList``
  only). The server URL is the org's own: it always goes through the outbound guard.

The vendor's answer is classified into one ``kind`` with a sentence for people:
``ok``, ``bad_key`` (the vendor does not accept the key), ``no_permission`` (accepted, but
not allowed to do this), ``unreachable`` (no answer, a timeout, or a vendor server error),
``rate_limited`` and ``other``. A credential with a customer-supplied ``base_url`` is asked
through the outbound guard (``voiceplatform.outbound``: resolved once, private networks
refused, time and size bounded); a refused URL is ``other`` with the guard's reason.
Secrets never appear in a message or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from orgs.models import Provider, ProviderCredential
from orgs.services import Actor, record_audit
from voiceplatform import outbound

logger = logging.getLogger(__name__)

TEST_TIMEOUT_S = 10.0
TESTABLE = (Provider.OPENAI, Provider.GEMINI, Provider.TWILIO, Provider.PLIVO, Provider.DEEPGRAM, Provider.LIVEKIT)
KINDS = ("ok", "bad_key", "no_permission", "unreachable", "rate_limited", "other")


@dataclass(frozen=True)
class CredentialTest:
    """The outcome of one test: ``kind`` (one of ``KINDS``) and what to tell the user."""

    provider: str
    kind: str
    message: str

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "ok": self.ok, "kind": self.kind, "message": self.message}


def classify_status(label: str, status: int | None, vendor_text: str = "") -> tuple[str, str]:
    said = f" ({vendor_text.strip()[:200]})" if vendor_text and vendor_text.strip() else ""
    if status == 401:
        return "bad_key", f"{label} does not accept this key{said}. Check it was copied whole and is still active."
    if status == 403:
        return "no_permission", (f"{label} accepted the key but it is not allowed to do this{said}; "
                                 f"check the key's permissions or project.")
    if status == 429:
        return "rate_limited", f"{label} is rate-limiting this key right now{said}; try again in a minute."
    if status is not None and status >= 500:
        return "unreachable", f"{label} answered with a server error (HTTP {status}); try again later."
    return "other", f"{label} refused the test (HTTP {status}){said}."


def _refusal(exc: BaseException) -> outbound.OutboundError | None:
    """The outbound guard's error behind ``exc``, if any (SDKs wrap transport errors)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, outbound.OutboundError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def guard_result(label: str, exc: BaseException) -> tuple[str, str] | None:
    guard = _refusal(exc)
    if isinstance(guard, outbound.OutboundRefused):
        return "other", f"The {label} base URL is not allowed: {guard.message}."
    if guard is not None:
        return "unreachable", f"{label} at the configured base URL did not answer in time: {guard.message}."
    return None


def policy() -> outbound.Policy:
    return outbound.Policy(total_timeout_s=TEST_TIMEOUT_S)


def _test_openai(cred: dict[str, str]) -> tuple[str, str]:
    import httpx2
    import openai

    base_url = cred.get("base_url") or None
    http_client = outbound.sync_client(policy(), hx=httpx2, timeout=TEST_TIMEOUT_S) if base_url else None
    client: openai.OpenAI
    if cred.get("api_version") and base_url:
        # Azure OpenAI: GET {endpoint}/openai/models?api-version=… with the api-key header.
        client = openai.AzureOpenAI(api_key=cred["api_key"], azure_endpoint=base_url, api_version=cred["api_version"],
                                    timeout=TEST_TIMEOUT_S, max_retries=0, http_client=http_client)
    else:
        client = openai.OpenAI(api_key=cred["api_key"], base_url=base_url, timeout=TEST_TIMEOUT_S, max_retries=0,
                               http_client=http_client)
    try:
        models = [m.id for m in client.models.list()]
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return classify_status("OpenAI", exc.status_code, str(body.get("message") or ""))
    except openai.APIConnectionError as exc:
        return guard_result("OpenAI", exc) or ("unreachable", "OpenAI could not be reached; check the network "
                                                               "or the base URL.")
    return "ok", f"OpenAI accepted the key: {len(models)} model(s) available."


def _test_gemini(cred: dict[str, str]) -> tuple[str, str]:
    import httpx
    from google import genai
    from google.genai import errors, types

    options = types.HttpOptions(timeout=int(TEST_TIMEOUT_S * 1000), retry_options=types.HttpRetryOptions(attempts=1))
    if cred.get("base_url"):
        options.base_url = cred["base_url"]
        options.httpx_client = outbound.sync_client(policy(), timeout=TEST_TIMEOUT_S)
    try:
        client = genai.Client(api_key=cred["api_key"], http_options=options)
        pager = client.models.list(config={"page_size": 50})
        count = len(list(pager.page))
    except errors.APIError as exc:
        status = exc.code
        # Gemini answers a bad key with 400 INVALID_ARGUMENT "API key not valid".
        if status == 400 and "api key" in (exc.message or "").lower():
            status = 401
        return classify_status("Gemini", status, exc.message or "")
    except (httpx.TransportError, outbound.OutboundError) as exc:
        return guard_result("Gemini", exc) or ("unreachable", "Gemini could not be reached; check the network "
                                                               "or the base URL.")
    return "ok", f"Gemini accepted the key: {count} model(s) available."


#: Twirp error codes LiveKit answers for a key pair it does not accept / a grant it refuses.
_LIVEKIT_STATUS = {"unauthenticated": 401, "permission_denied": 403, "resource_exhausted": 429}


def _test_livekit(cred: dict[str, str]) -> tuple[str, str]:
    import asyncio

    import aiohttp
    from livekit import api

    async def list_rooms() -> int:
        # failover off: region discovery would send the request to other hosts than the URL
        # the org gave (LiveKit Cloud's regions), past the address the guard checked.
        async with outbound.aiohttp_session(policy()) as session:
            client = api.LiveKitAPI(cred["url"], cred["api_key"], cred["api_secret"], session=session,
                                    failover=False)
            return len((await client.room.list_rooms(api.ListRoomsRequest())).rooms)

    try:
        count = asyncio.run(list_rooms())
    except api.TwirpError as exc:
        return classify_status("LiveKit", _LIVEKIT_STATUS.get(exc.code, exc.status), exc.message)
    except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError, outbound.OutboundError) as exc:
        return guard_result("LiveKit", exc) or ("unreachable", "LiveKit could not be reached; check the network "
                                                                "or the server URL.")
    return "ok", f"LiveKit accepted the key: {count} active room(s)."


#: Provider → its test. OpenAI's, Gemini's and LiveKit's are here; Deepgram's (which needs the bridge's SDK
#: endpoint helper) is registered by the agents app and the carriers' by the calls app (from
#: their ``AppConfig.ready``): orgs sits below both and imports none of their code.
_TESTS: dict[Provider, Callable[[dict[str, str]], tuple[str, str]]] = {
    Provider.OPENAI: _test_openai, Provider.GEMINI: _test_gemini, Provider.LIVEKIT: _test_livekit}


def register_credential_test(provider: Provider, test: Callable[[dict[str, str]], tuple[str, str]]) -> None:
    """Make ``test`` (credential fields → ``(kind, message)``) the one for ``provider``."""
    _TESTS[provider] = test


def check_credential(credential: ProviderCredential, actor: Actor | None = None) -> CredentialTest:
    """Ask the vendor whether ``credential`` works (one read-only call); never raises for vendor
    errors. With an ``actor`` the outcome's kind is audited (``credential.tested``)."""
    provider = credential.provider
    label = Provider(provider).label
    runner = _TESTS.get(Provider(provider))
    if runner is None:
        return CredentialTest(provider, "other", f"{label} credentials cannot be tested here.")
    try:
        kind, message = runner({**credential.config, **cast(dict[str, str], credential.secrets)})
    except outbound.OutboundError as exc:  # some SDKs let the guard's own error through unwrapped
        kind, message = guard_result(label, exc) or ("other", str(exc))
    logger.info("credential.tested", extra={"provider": provider, "kind": kind})
    if actor is not None:
        record_audit(credential.org, actor, "credential.tested", credential, {"provider": provider, "kind": kind})
    return CredentialTest(provider, kind, message)
