"""Dashboard pages for calls and phone numbers (server-rendered, htmx for live parts).

Every view reads through ``calls.selectors`` (org-scoped) and changes state through
``calls.services``; another org's call or number is a 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_date
from django.views.generic import TemplateView

from agents.runtime import readiness_problems
from agents.selectors import call_variables
from calls import selectors
from calls.agent_link import agent_settings
from calls.analysis import request_analysis
from calls.carriers import CARRIER_CHOICES
from calls.models import FINAL, AnalysisStatus, Call, Direction, Recording, Status
from calls.privacy_hooks import hold_reason
from calls.services.control import delete_call, hangup_call
from calls.services.errors import CallError
from calls.services.numbers import (
    create_phone_number,
    delete_phone_number,
    import_carrier_numbers,
    update_phone_number,
    webhook_settings,
)
from calls.services.placement import start_web_call
from calls.services.timeline import live_updates
from calls.services.transfer import request_transfer
from orgs.credentials import configured_providers
from orgs.models import Role, role_at_least
from voiceplatform.errors import show_error
from voiceplatform.views import OrgViewMixin


def _agents(org: Any) -> Any:
    from agents.models import Agent

    return Agent.objects.for_org(org).order_by("name")


class CallListView(OrgViewMixin, TemplateView):
    """The calls list. GET filters (all optional, bad values ignored): ``q``, ``status``,
    ``direction``, ``agent``, ``version``, ``campaign``, ``number`` (public ids),
    ``carrier``, ``reason`` (end reason), ``answered`` (``yes``/``no``), ``since`` and ``until``
    (dates, inclusive, in the org's timezone: the analytics pages link here with the days they chart)."""

    template_name = "calls/call_list.html"
    page_size = 50

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        params = self.request.GET
        tz = ZoneInfo(self.org.timezone)
        since = parse_date(params.get("since") or "")
        until = parse_date(params.get("until") or "")
        status = params.get("status") if params.get("status") in Status.values else None
        direction = params.get("direction") if params.get("direction") in Direction.values else None
        carrier = params.get("carrier") if params.get("carrier") in dict(CARRIER_CHOICES) else None
        ids = {name: params.get(name) if _is_uuid(params.get(name)) else None
               for name in ("agent", "version", "campaign", "number")}
        calls = selectors.filter_calls(
            self.org, status=status, direction=direction, agent_public_id=ids["agent"],
            search=params.get("q") or None,
            since=datetime.combine(since, time.min, tzinfo=tz) if since else None,
            until=datetime.combine(until + timedelta(days=1), time.min, tzinfo=tz) if until else None,
            version_public_id=ids["version"], campaign_public_id=ids["campaign"], number_public_id=ids["number"],
            carrier=carrier, end_reason=(params.get("reason") or "").strip() or None,
            answered={"yes": True, "no": False}.get(params.get("answered") or ""),
        )
        page = Paginator(calls, self.page_size).get_page(params.get("page"))
        query = params.copy()
        query.pop("page", None)
        # filters the form has no control for (set by a link from the analytics pages)
        hidden = [(name, params[name]) for name in ("version", "campaign", "number", "carrier", "reason", "answered")
                  if params.get(name)]
        return {
            **super().get_context_data(**kwargs),
            "page": page, "statuses": Status.choices, "directions": Direction.choices,
            "agents": _agents(self.org), "filters": params, "query": query.urlencode(),
            "hidden_filters": hidden, "timezone": self.org.timezone,
        }


class CallDetailView(OrgViewMixin, TemplateView):
    template_name = "calls/call_detail.html"

    def _call(self) -> Call:
        try:
            return selectors.call_detail(self.org, self.kwargs["public_id"])
        except Call.DoesNotExist:
            raise Http404("No such call in this organisation.") from None

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        call = self._call()
        turns = list(call.turns.all())
        return {
            **super().get_context_data(**kwargs),
            "call": call, "turns": turns, "events": list(call.events.all()),
            "transfer_legs": list(call.transfer_legs.all()),
            "recording": Recording.objects.filter(call=call).first(),
            "can_act": self.role in (Role.EDITOR, Role.ADMIN, Role.OWNER),
            "can_transfer_anywhere": self.role in (Role.ADMIN, Role.OWNER),
            "can_delete": self.role in (Role.ADMIN, Role.OWNER),
            # a campaign's hold covers the calls it placed: say so here too, not only on delete
            "held_because": None if call.legal_hold else hold_reason(call),
            "transfer_destinations": agent_settings(call).transfer_destinations,
            "agent_turns_with_latency": [t for t in turns if t.latency_ms is not None],
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        call = self._call()
        action = request.POST.get("action")
        try:
            if action == "hangup":
                hangup_call(call, self.actor)
                messages.success(request, "Hang-up requested.")
            elif action == "transfer":
                # Editors pick one of the agent's destinations; admins may also type a number.
                mode = request.POST.get("mode", "")
                request_transfer(call, request.POST.get("to", ""), self.actor, mode=mode if mode == "warm" else "",
                                 any_number=self.role in (Role.ADMIN, Role.OWNER))
                messages.success(request, "Dialling the destination; the caller stays with the agent until it "
                                          "answers." if mode == "warm" else "Transfer requested.")
            elif action == "delete":
                # As the API: admins only; the service refuses a live or held call.
                if self.role not in (Role.ADMIN, Role.OWNER):
                    raise CallError("only an organisation admin can delete a call", status=403)
                delete_call(call, self.actor)
                messages.success(request, "Call deleted, with its transcript and recording.")
                return redirect("calls:list")
            elif action == "analyze":
                if not call.turns.exists():
                    raise CallError("the call has no transcript to analyse")
                request_analysis(call, self.actor)
                if call.analysis_status == AnalysisStatus.SKIPPED:
                    messages.warning(request, f"Analysis skipped: {call.analysis_error}.")
                else:
                    messages.success(request, "Analysis queued.")
            else:
                messages.error(request, f"Unknown action {action!r}.")
        except CallError as exc:
            show_error(request, exc)
        return redirect("calls:detail", public_id=call.public_id)


class RecordingView(OrgViewMixin, TemplateView):
    """The WAV, streamed from media storage after the org check (never a public URL)."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> FileResponse:
        recording = Recording.objects.filter(call__org=self.org, call__public_id=kwargs["public_id"]).first()
        if recording is None:
            raise Http404("No recording.")
        return FileResponse(recording.file.open("rb"), content_type=recording.content_type)


class LiveCallsView(OrgViewMixin, TemplateView):
    template_name = "calls/live.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        calls = list(selectors.live_calls(self.org)[:100])
        feeds = [(call, live_updates(str(call.public_id), limit=20)) for call in calls]
        return {**super().get_context_data(**kwargs), "feeds": feeds, "limit": self.org.max_concurrent_calls}

    def get_template_names(self) -> list[str]:
        # htmx polls the same URL for the list alone.
        if getattr(self.request, "htmx", False):
            return ["calls/_live_feed.html"]
        return [self.template_name]


class WebCallView(OrgViewMixin, TemplateView):
    """"Talk to this agent": a browser call through the microphone, with a live transcript.

    GET shows the agent picker (``?agent=<id>`` preselects, for links from agent pages; the
    first agent otherwise), the chosen agent's own call variables (from its published
    version's texts, defaults as placeholders) and, when it cannot take a call, why.
    POST creates the web call and renders the page that connects to it; a refused start
    renders the form again with the reason and the values kept.

    When the org has a LiveKit credential the form also offers LiveKit as the transport
    (``transport=livekit``): the call is made in a fresh room, the agent is sent into it
    (calls.services.livekit, as POST /api/v1/calls/livekit/ does), and the page joins the
    room with the vendored livekit-client and a token for this room only. Its live state
    and transcript come from ``?call=<id>`` (htmx, the call's live updates), since the
    agent publishes no data into the room.
    """

    template_name = "calls/web_call.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if getattr(request, "htmx", False) and "call" in request.GET:
            return self._live(request.GET["call"])
        return super().get(request, *args, **kwargs)

    def _live(self, call_id: str) -> HttpResponse:
        call = Call.objects.for_org(self.org).filter(public_id=call_id).first() if _is_uuid(call_id) else None
        if call is None:
            raise Http404("No such call in this organisation.")

        final = call.status in FINAL
        # live lines while it runs; once over, the stored transcript (the live cache is cleared)
        updates = ([{"kind": "transcript", "data": {"role": t.role, "text": t.text}} for t in call.turns.all()]
                   if final else live_updates(str(call.public_id), limit=50))
        return render(self.request, "calls/_web_call_live.html", {"call": call, "updates": updates, "final": final})

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        agents = list(_agents(self.org).select_related("published_version"))
        wanted = kwargs.pop("selected", None) or self.request.GET.get("agent", "")
        agent = next((a for a in agents if str(a.public_id) == wanted), agents[0] if agents else None)
        values = kwargs.pop("values", {})
        context = {**super().get_context_data(**kwargs), "agents": agents, "agent": agent, **kwargs}
        if agent is not None and "call" not in kwargs:
            context.update(
                selected=str(agent.public_id),
                livekit_available="livekit" in configured_providers(self.org),
                problems=readiness_problems(agent),
                can_start=role_at_least(self.role, self.write_role),
                variables=[{"name": v.name, "default": v.default, "required": v.required,
                            "value": values.get(v.name, "")} for v in call_variables(agent)],
            )
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        agent_id = request.POST.get("agent") or ""
        agent = _agents(self.org).filter(public_id=agent_id).first() if _is_uuid(agent_id) else None
        if agent is None:
            raise Http404("No such agent in this organisation.")
        variables = _variables(request.POST)
        if request.POST.get("transport") == "livekit":
            return self._start_livekit(request, agent, variables)
        try:
            started = start_web_call(self.org, agent, self.actor, variables)
        except CallError as exc:
            show_error(request, exc)
            return self.render_to_response(self.get_context_data(selected=agent_id, values=variables), status=400)
        version = started.call.agent_version
        provider = version.settings.provider if version is not None else agent.provider
        return self.render_to_response(self.get_context_data(call=started.call, websocket_path=started.websocket_path,
                                                             stream_token=started.stream_token, agent=agent,
                                                             provider=provider))

    def _start_livekit(self, request: HttpRequest, agent: Any, variables: dict[str, str]) -> HttpResponse:
        from calls.services import livekit

        try:
            server = livekit.livekit_server_for(self.org)
            call = livekit.start_livekit_call(self.org, agent, self.actor, room=livekit.new_room_name(agent),
                                              participant=f"browser-{uuid.uuid4().hex[:12]}", variables=variables)
        except CallError as exc:
            show_error(request, exc)
            return self.render_to_response(self.get_context_data(selected=str(agent.public_id), values=variables),
                                           status=400)
        livekit.dispatch_agent(request, call, server)
        join = {"url": server.url, "room": call.livekit_room, "token": livekit.browser_join_token(server, call)}
        return self.render_to_response(self.get_context_data(call=call, agent=agent, livekit=join))


def _variables(post: Any) -> dict[str, str]:
    """``var_<name>`` form fields become call variables (empty ones are left to the defaults)."""
    return {key[4:]: value for key, value in post.items() if key.startswith("var_") and key[4:] and value}


# --- phone numbers ------------------------------------------------------------------------

class NumberForm(forms.Form):
    e164 = forms.CharField(label="Number", max_length=40, help_text="E.164, e.g. +14155550100.")
    carrier = forms.ChoiceField(choices=CARRIER_CHOICES)
    label = forms.CharField(max_length=100, required=False)
    inbound_agent = forms.ModelChoiceField(queryset=None, required=False, to_field_name="public_id",
                                           empty_label="— none: reject calls politely —")

    def __init__(self, *args: Any, org: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["inbound_agent"].queryset = _agents(org)


class ImportForm(forms.Form):
    carrier = forms.ChoiceField(choices=CARRIER_CHOICES)
    configure_webhooks = forms.BooleanField(required=False, initial=True,
                                            label="Point their voice webhooks at this platform")


class NumberListView(OrgViewMixin, TemplateView):
    template_name = "calls/number_list.html"
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "numbers": [(n, [] if n.webhooks_configured_at else webhook_settings(n))
                        for n in selectors.numbers_for(self.org)],
            "public_base_is_https": settings.PUBLIC_BASE_URL.startswith("https://"),
            "form": kwargs.get("form") or NumberForm(org=self.org),
            "import_form": kwargs.get("import_form") or ImportForm(),
            "agents": _agents(self.org),
            "can_admin": self.role in (Role.ADMIN, Role.OWNER),
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if "import" in request.POST:
            return self._import(request)
        if "assign" in request.POST or "delete" in request.POST:
            return self._change(request)
        form = NumberForm(request.POST, org=self.org)
        if form.is_valid():
            try:
                create_phone_number(self.org, self.actor, **form.cleaned_data)
                messages.success(request, "Number added.")
                return redirect("calls:numbers")
            except CallError as exc:
                show_error(request, exc, form)
        return self.render_to_response(self.get_context_data(form=form))

    def _import(self, request: HttpRequest) -> HttpResponse:
        form = ImportForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(import_form=form))
        try:
            result = import_carrier_numbers(self.org, form.cleaned_data["carrier"], self.actor,
                                            configure_webhooks=form.cleaned_data["configure_webhooks"])
        except CallError as exc:
            show_error(request, exc)
            return redirect("calls:numbers")
        messages.success(request, f"Imported: {len(result.created)} new, {len(result.updated)} updated.")
        for number, why in result.skipped:
            messages.warning(request, f"Skipped {number}: {why}")
        return redirect("calls:numbers")

    def _change(self, request: HttpRequest) -> HttpResponse:
        number_id = request.POST.get("number")
        number = selectors.numbers_for(self.org).filter(public_id=number_id).first() if _is_uuid(number_id) else None
        if number is None:
            raise Http404("No such number in this organisation.")
        if "delete" in request.POST:
            try:
                delete_phone_number(number, self.actor)
            except ValidationError as exc:  # still used by a batch or a schedule
                messages.error(request, " ".join(exc.messages))
                return redirect("calls:numbers")
            messages.success(request, "Number removed.")
            return redirect("calls:numbers")
        agent_id = request.POST.get("inbound_agent") or ""
        agent = _agents(self.org).filter(public_id=agent_id).first() if _is_uuid(agent_id) else None
        if agent_id and agent is None:
            messages.error(request, "No such agent in this organisation.")
            return redirect("calls:numbers")
        update_phone_number(number, self.actor, inbound_agent=agent)
        messages.success(request, "Number updated.")
        return redirect("calls:numbers")


def _is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True

