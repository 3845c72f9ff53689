"""Custom HTTP function tools: the state changes (API, dashboard and admin all call these),
which agents may use them, and what a call offers the model.

Refusals are :class:`HttpToolError` (a ``ServiceError``) naming the field and why. Every
change is audited with header *names* only: header values and the signing secret never
reach an audit entry, a log line, the API or a page after creation. The URL passes the
outbound guard when saved (and :mod:`integrations.http_tool_client` checks it again on
every request). The request format and signature are described in
:mod:`integrations.http_tool_client`.
"""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from jsonschema import SchemaError
from jsonschema.validators import Draft202012Validator

from integrations.http_tool_client import HttpToolOutcome, HttpToolSpec, call_http_tool
from integrations.models import HttpMethod, HttpTool, HttpToolGrant
from orgs.models import Organization
from orgs.services import Actor, diff_fields, record_audit
from voiceplatform import outbound
from voiceplatform.errors import ServiceError

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MIN_TIMEOUT_S = 1.0
MAX_TIMEOUT_S = 30.0
MAX_DESCRIPTION_CHARS = 1000
MAX_HEADERS = 20
#: Names the built-in tools use; an HTTP tool may not shadow them.
RESERVED_NAMES = frozenset({"end_call", "transfer_call", "send_dtmf", "send_sms", "search_knowledge"})
#: Headers the platform sets itself (or the HTTP layer owns).
_RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection",
                               "user-agent"})
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_EDITABLE = ("name", "description", "parameters", "url", "method", "timeout_s", "filler_text", "enabled")


class HttpToolError(ServiceError):
    """A custom HTTP tool (or a grant of it) was refused; ``field`` names the input at fault."""


# --------------------------------------------------------------------------- validation


def clean_name(name: Any) -> str:
    name = str(name or "").strip()
    if not NAME_RE.match(name):
        raise HttpToolError("Use 1–64 letters, digits or underscores, starting with a letter (e.g. lookup_order).",
                            field="name")
    if name in RESERVED_NAMES:
        raise HttpToolError(f"{name} is a built-in tool's name; choose another.", field="name")
    return name


def clean_parameters(schema: Any) -> dict[str, Any]:
    """The arguments' JSON Schema: an object schema that is valid Draft 2020-12 and refers to nothing outside."""
    if schema in (None, "", {}):
        return {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise HttpToolError("Parameters must be a JSON object (a JSON Schema).", field="parameters")
    if schema.get("type") != "object":
        raise HttpToolError('Parameters must be an object schema: {"type": "object", "properties": {…}}.',
                            field="parameters")
    if "properties" in schema and not isinstance(schema["properties"], dict):
        raise HttpToolError('"properties" must be an object of name → schema.', field="parameters")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise HttpToolError(f"Not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}",
                            field="parameters") from None
    refs = _external_refs(schema)
    if refs:
        raise HttpToolError(f"$ref must point inside the schema (#/…); {refs[0]!r} does not.", field="parameters")
    return schema


def _external_refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [str(value["$ref"])] if isinstance(value.get("$ref"), str) and not value["$ref"].startswith("#") else []
        return found + [r for v in value.values() for r in _external_refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _external_refs(v)]
    return []


def clean_url(url: Any) -> str:
    """HTTPS only (plain HTTP only where private targets are allowed, i.e. development), through the guard."""
    url = str(url or "").strip()
    policy = outbound.Policy()
    schemes = ("https", "http") if policy.private_allowed() else ("https",)
    if not url.lower().startswith(tuple(f"{s}://" for s in schemes)):
        raise HttpToolError("The endpoint must be an https:// URL.", field="url")
    try:
        outbound.validate_url(url, field="url", what="The tool's endpoint", schemes=schemes)
    except ValidationError as exc:
        raise HttpToolError(" ".join(exc.message_dict["url"]), field="url") from None
    return url


def clean_headers(headers: Any) -> dict[str, str]:
    """Name → single-line value; the platform's own headers (X-VP-*, Content-Type, Host…) cannot be set."""
    if headers in (None, ""):
        return {}
    if not isinstance(headers, dict):
        raise HttpToolError("Headers must be an object of name → value.", field="headers")
    if len(headers) > MAX_HEADERS:
        raise HttpToolError(f"At most {MAX_HEADERS} headers.", field="headers")
    cleaned: dict[str, str] = {}
    for name, value in headers.items():
        name = str(name).strip()
        if not _HEADER_NAME_RE.match(name):
            raise HttpToolError(f"Invalid header name {name!r}.", field="headers")
        if name.lower() in _RESERVED_HEADERS or name.lower().startswith("x-vp-"):
            raise HttpToolError(f"Header {name} is set by the platform and cannot be stored.", field="headers")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise HttpToolError(f"Header {name} must be a single-line text value.", field="headers")
        cleaned[name] = value.strip()
    return cleaned


def clean_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The given editable fields, cleaned; ``HttpToolError`` names the first bad one."""
    out: dict[str, Any] = {}
    if "name" in values:
        out["name"] = clean_name(values["name"])
    if "description" in values:
        description = str(values["description"] or "").strip()
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise HttpToolError(f"At most {MAX_DESCRIPTION_CHARS} characters.", field="description")
        out["description"] = description
    if "parameters" in values:
        out["parameters"] = clean_parameters(values["parameters"])
    if "url" in values:
        out["url"] = clean_url(values["url"])
    if "method" in values:
        method = str(values["method"] or "").upper()
        if method not in HttpMethod.values:
            raise HttpToolError(f"Method must be one of {', '.join(HttpMethod.values)}.", field="method")
        out["method"] = method
    if "timeout_s" in values:
        try:
            timeout = float(values["timeout_s"])
        except (TypeError, ValueError):
            raise HttpToolError("The timeout must be a number of seconds.", field="timeout_s") from None
        if not MIN_TIMEOUT_S <= timeout <= MAX_TIMEOUT_S:
            raise HttpToolError(f"The timeout must be between {MIN_TIMEOUT_S:g} and {MAX_TIMEOUT_S:g} seconds.",
                                field="timeout_s")
        out["timeout_s"] = timeout
    if "filler_text" in values:
        filler = " ".join(str(values["filler_text"] or "").split())
        if len(filler) > 200:
            raise HttpToolError("At most 200 characters.", field="filler_text")
        out["filler_text"] = filler
    if "enabled" in values:
        out["enabled"] = bool(values["enabled"])
    return out


def _save(tool: HttpTool) -> None:
    try:
        with transaction.atomic():
            tool.save()
    except IntegrityError:
        raise HttpToolError(f"This organisation already has a tool named {tool.name!r}.", field="name") from None


# --------------------------------------------------------------------------- verbs


@transaction.atomic
def create_http_tool(org: Organization, actor: Actor, *, name: str, url: str, description: str = "",
                     parameters: dict[str, Any] | None = None, method: str = HttpMethod.POST,
                     headers: dict[str, str] | None = None, timeout_s: float = 5.0, filler_text: str = "",
                     enabled: bool = True) -> HttpTool:
    """Define a tool for the org; a new signing secret is generated (``tool.signing_secret``:
    show it once). Audited with header names only."""
    values = clean_fields({"name": name, "description": description, "parameters": parameters, "url": url,
                     "method": method, "timeout_s": timeout_s, "filler_text": filler_text, "enabled": enabled})
    tool = HttpTool(org=org, headers=cast(Any, clean_headers(headers)), signing_secret=HttpTool.new_secret(), **values)
    _save(tool)
    record_audit(org, actor, "http_tool.created", tool,
                 {"name": tool.name, "url": tool.url, "method": tool.method, "headers": tool.header_names})
    return tool


@transaction.atomic
def update_http_tool(tool: HttpTool, actor: Actor, **values: Any) -> HttpTool:
    """Change any editable field; ``headers`` replaces all headers when given (absent: kept).
    A new URL passes the guard again. Audited (header names only)."""
    headers_given = "headers" in values
    if headers_given:
        tool.headers = cast(Any, clean_headers(values.pop("headers")))
    changes = diff_fields(tool, clean_fields({k: v for k, v in values.items() if k in _EDITABLE}))
    _save(tool)
    if headers_given:
        changes["headers"] = tool.header_names
    if changes:
        record_audit(tool.org, actor, "http_tool.updated", tool, changes)
    return tool


@transaction.atomic
def rotate_http_tool_secret(tool: HttpTool, actor: Actor) -> HttpTool:
    """Replace the signing secret (show the new one once). Audited."""
    tool.signing_secret = HttpTool.new_secret()
    tool.save(update_fields=["signing_secret", "updated_at"])
    record_audit(tool.org, actor, "http_tool.secret_rotated", tool)
    return tool


@transaction.atomic
def delete_http_tool(tool: HttpTool, actor: Actor) -> None:
    """Delete the tool (its grants go with it). Audited with its name and URL."""
    record_audit(tool.org, actor, "http_tool.deleted", tool, {"name": tool.name, "url": tool.url})
    tool.delete()


@transaction.atomic
def set_http_tool_agents(tool: HttpTool, actor: Actor, agents: Iterable[Any]) -> list[Any]:
    """The agents that may call ``tool`` become exactly ``agents`` (all of the tool's org,
    else ``HttpToolError`` on ``agents``: another org's agent reads like a missing one)."""
    chosen = {agent.pk: agent for agent in agents}
    if any(agent.org_id != tool.org_id for agent in chosen.values()):
        raise HttpToolError("No such agent in this organisation.", field="agents", status=404)
    HttpToolGrant.objects.filter(tool=tool).exclude(agent_id__in=list(chosen)).delete()
    existing = set(HttpToolGrant.objects.filter(tool=tool).values_list("agent_id", flat=True))
    HttpToolGrant.objects.bulk_create([HttpToolGrant(org=tool.org, tool=tool, agent=a)
                                       for pk, a in chosen.items() if pk not in existing])
    record_audit(tool.org, actor, "http_tool.agents_set", tool,
                 {"agents": sorted(str(a.public_id) for a in chosen.values())})
    return sorted(chosen.values(), key=lambda a: a.name)


def sample_arguments(schema: Mapping[str, Any]) -> Any:
    """A deterministic example instance of ``schema`` (const/default/examples/enum first, then
    a typed placeholder honouring simple bounds); used by the "Test" button."""
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return sample_arguments(schema[key][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: sample_arguments(sub if isinstance(sub, dict) else {}) for name, sub in props.items()}
    if kind == "array":
        items: Mapping[str, Any] = schema["items"] if isinstance(schema.get("items"), dict) else {}
        return [sample_arguments(items) for _ in range(int(schema.get("minItems") or 1))]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = "example"
    return (text * (1 + int(schema.get("minLength") or 0) // len(text)))[: max(int(schema.get("maxLength") or 64),
                                                                             int(schema.get("minLength") or 0))]


def spec_of(tool: HttpTool) -> HttpToolSpec:
    """The plain values the request needs (headers and secret decrypted)."""
    return HttpToolSpec(name=tool.name, url=tool.url, method=tool.method, timeout_s=tool.timeout_s,
                        signing_secret=tool.signing_secret, headers=stored_headers(tool))


def stored_headers(tool: HttpTool) -> dict[str, str]:
    """The tool's headers, decrypted (for the request only: never shown or logged)."""
    return dict(cast(dict[str, str], tool.headers or {}))


def send_test_request(tool: HttpTool, actor: Actor) -> tuple[dict[str, Any], HttpToolOutcome]:
    """Send one signed sample request (arguments generated from the schema, call id
    ``test``) and return ``(arguments, outcome)``. Audited with the status only."""
    arguments = sample_arguments(tool.parameters or {"type": "object"})
    outcome = async_to_sync(call_http_tool)(spec_of(tool), arguments, call_id="test", variables={})
    record_audit(tool.org, actor, "http_tool.tested", tool, {"ok": outcome.ok, "status": outcome.status})
    return arguments, outcome


# --------------------------------------------------------------------------- during a call


def function_spec(tool: HttpTool) -> dict[str, Any]:
    """What the model is given: name, description and the parameters schema. The filler
    line is not in it: the platform says it when the request is slow (calls.media.filler),
    so the model must not say it as well."""
    return {"name": tool.name, "description": tool.description or tool.name,
            "parameters": dict(tool.parameters or {"type": "object", "properties": {}})}


def tools_for_agent(org: Organization, agent: Any) -> list[HttpTool]:
    """The enabled HTTP tools ``agent`` (of ``org``) was granted, by name."""
    if agent is None:
        return []
    return list(HttpTool.objects.for_org(org).filter(enabled=True, grants__agent=agent).order_by("name"))


Handler = Callable[[dict[str, Any], Any], Awaitable[Any]]


def session_handler(spec: HttpToolSpec, *, call_id: str, variables: Mapping[str, Any],
                    error_cls: type[Exception]) -> Handler:
    """A handler in the call session's shape ``async (arguments, session)``: sends the
    request, puts it on the timeline (``http_tool.request`` / ``http_tool.response``: method,
    URL without its query, header names, argument names, sizes, status, latency; never
    header values, query strings or bodies) and raises ``error_cls`` with the short reason
    when the call failed."""
    header_names = sorted(spec.headers)
    # A query string may carry a key (?api_key=…): the timeline gets the URL without it.
    shown_url = urlsplit(spec.url)._replace(query="", fragment="").geturl()

    async def handler(arguments: dict[str, Any], session: Any = None) -> Any:
        if session is not None:
            session.record("http_tool.request", name=spec.name, method=spec.method, url=shown_url,
                           headers=header_names, arguments=sorted(arguments))
        outcome = await call_http_tool(spec, arguments, call_id=call_id, variables=variables)
        if session is not None:
            session.record("http_tool.response", name=spec.name, ok=outcome.ok, status=outcome.status,
                           size=outcome.size, request_size=outcome.request_size, latency_ms=outcome.duration_ms,
                           **({"error": outcome.error} if outcome.error else {}))
        if outcome.error is not None:
            raise error_cls(f"{spec.name} failed: {outcome.error}")
        return outcome.output if isinstance(outcome.output, (dict, str)) else {"result": outcome.output}

    return handler
