"""The agents app's part of provider credentials (``orgs`` keeps the credentials; it sits below
the agents app and imports none of its code, so the checks that need the bridges' knowledge
of a vendor are registered from ``AgentsConfig.ready``):

- Deepgram's "Test": list the key's projects through the SDK, at the bridge's endpoint;
- Azure OpenAI settings on an OpenAI credential: API version, deployment, resource endpoint.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError

from agents.bridges.deepgram_agent import environment_for
from agents.bridges.openai_realtime import AZURE_API_VERSION_PATTERN, AZURE_DEPLOYMENT_PATTERN
from orgs.credential_checks import TEST_TIMEOUT_S, classify_status, guard_result, policy, register_credential_test
from orgs.models import Provider
from orgs.services import register_credential_config_check
from voiceplatform import outbound


def check_deepgram(cred: dict[str, str]) -> tuple[str, str]:
    import httpx
    from deepgram import DeepgramClient
    from deepgram.core.api_error import ApiError

    kwargs: dict[str, Any] = {"api_key": cred["api_key"], "timeout": TEST_TIMEOUT_S}
    if cred.get("base_url"):
        kwargs["environment"] = environment_for(cred["base_url"])
        kwargs["httpx_client"] = outbound.sync_client(policy(), timeout=TEST_TIMEOUT_S)
    try:
        projects = DeepgramClient(**kwargs).manage.v1.projects.list(request_options={"max_retries": 0}).projects or []
    except ApiError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return classify_status("Deepgram", exc.status_code, str(body.get("err_msg") or ""))
    except (httpx.TransportError, outbound.OutboundError) as exc:
        return guard_result("Deepgram", exc) or ("unreachable", "Deepgram could not be reached; check the network "
                                                                 "or the base URL.")
    return "ok", f"Deepgram accepted the key: {len(projects)} project(s)."


def check_azure_config(provider: str, config: dict[str, str]) -> None:
    """An Azure OpenAI credential: an API version in Azure's shape, a deployment name, and
    the resource endpoint as ``base_url`` (``agents.bridges.openai_realtime.azure_settings``)."""
    if not (config.get("api_version") or config.get("azure_deployment")):
        return
    version, deployment = str(config.get("api_version") or ""), str(config.get("azure_deployment") or "")
    errors: dict[str, str] = {}
    if not version:
        errors["api_version"] = "An Azure deployment needs the API version too, e.g. 2025-04-01-preview."
    elif not re.match(AZURE_API_VERSION_PATTERN, version):
        errors["api_version"] = f"“{version}” is not an Azure OpenAI API version (e.g. 2025-04-01-preview)."
    if deployment and not re.match(AZURE_DEPLOYMENT_PATTERN, deployment):
        errors["azure_deployment"] = "A deployment name has only letters, digits, '-', '_' and '.' (up to 64)."
    if not config.get("base_url"):
        errors["base_url"] = "Azure OpenAI needs the resource endpoint, e.g. https://<resource>.openai.azure.com."
    if errors:
        raise ValidationError(errors)


def register() -> None:
    register_credential_test(Provider.DEEPGRAM, check_deepgram)
    register_credential_config_check(check_azure_config)
