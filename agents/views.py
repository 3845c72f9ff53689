"""Dashboard pages for agents: list, create, edit (the draft), publish, versions with diffs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from agents import services
from agents.agent_settings import AgentSettings
from agents.experiment_views import experiments_panel
from agents.forms import AgentForm, PublishForm, provider_catalogue
from agents.grants import draft_grants
from agents.models import Agent
from agents.providers import PROVIDERS
from agents.runtime import Problem, readiness_problems, readiness_warnings
from agents.selectors import (
    agents_for,
    diff_configs,
    id_names,
    readiness_by_agent,
    readiness_warnings_by_agent,
    versions_of,
    with_grants,
)
from agents.setting_checks import SettingWarning, setting_warnings
from agents.variables import placeholders
from orgs.models import role_at_least
from voiceplatform.errors import show_error
from voiceplatform.views import OrgViewMixin


class AgentMixin(OrgViewMixin):
    def get_agent(self, public_id: Any) -> Agent:
        return get_object_or_404(agents_for(self.org), public_id=public_id)

    def _can_write(self) -> bool:
        return role_at_least(self.role, self.write_role)


class AgentListView(AgentMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        agents = list(agents_for(self.org))
        problems = readiness_by_agent(self.org, agents)
        warnings = readiness_warnings_by_agent(self.org, agents)
        rows = []
        for agent in agents:
            info = PROVIDERS.get(agent.provider)
            retired = info is not None and info.retired()
            # A retired provider is the whole story: its key or publishing no longer matter.
            shown = [p for p in problems[agent.pk] if p.code == "provider_retired"] if retired else problems[agent.pk]
            rows.append({"agent": agent, "problems": shown, "warnings": [] if retired else warnings[agent.pk],
                         "provider": info, "retired": retired})
        return render(request, "agents/list.html", {"rows": rows, "can_edit": self._can_write(),
                                                    "providers": PROVIDERS.values()})


def _form_context(form: AgentForm, warnings: list[SettingWarning]) -> dict[str, Any]:
    """What the form template needs besides the agent: the sections and the script's catalogue."""
    return {"form": form, "sections": form.sections(warnings), "warnings": warnings,
            "provider_catalogue": provider_catalogue(),
            # Providers that use no prompt, tools or knowledge (echo), for the note saying so.
            "repeat_only_providers": " ".join(p.name for p in PROVIDERS.values() if not p.settings)}


def readiness_checklist(agent: Agent, problems: list[Problem]) -> list[dict[str, Any]]:
    """What an agent needs before it can take calls, as checklist items ``{"label", "done",
    "detail", "link"}``: neutral steps, not errors (a fresh draft simply has steps to do).
    Readiness problems this page has no step for are listed as further steps."""
    codes = {p.code for p in problems}
    info = PROVIDERS.get(agent.provider)
    items: list[dict[str, Any]] = []
    if info is not None and info.retired():
        # Its key and publishing no longer matter: the one step is to leave the provider.
        items.append({"label": "Choose a provider that is still available", "done": False, "link": "",
                      "detail": f"{info.label} API access ended on {info.access_ends}."})
        return items + _other_steps(problems)
    if info is not None and info.credential is not None:
        missing = "credential_missing" in codes
        items.append({"label": f"Add your {info.label} key", "done": not missing, "link": "orgs:credentials",
                      "detail": f"The organisation has no {info.label} credential yet." if missing else ""})
    if agent.published_version is None:
        items.append({"label": "Publish the draft", "done": False, "link": "",
                      "detail": "Calls run a published version; publishing freezes this draft as version 1."})
    else:
        items.append({"label": f"Published (version {agent.published_version.number})", "done": True,
                      "detail": "Saved changes reach calls once you publish them again."
                      if agent.has_unpublished_changes else "", "link": ""})
    return items + _other_steps(problems)


def _other_steps(problems: list[Problem]) -> list[dict[str, Any]]:
    """Readiness problems the checklist has no dedicated step for (added by other checks)."""
    handled = {"credential_missing", "not_published", "provider_retired"}
    return [{"label": p.message, "done": False, "detail": "", "link": ""} for p in problems if p.code not in handled]


class AgentCreateView(AgentMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "agents/form.html", {**_form_context(AgentForm(org=self.org), []), "creating": True})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = AgentForm(request.POST, org=self.org, instance=Agent(org=self.org))
        if form.is_valid():
            try:
                agent = services.save_new_agent(form.instance, self.actor)
            except services.AgentError as exc:  # the form refuses retired providers first; kept as a backstop
                form.add_error("provider", str(exc))
            else:
                messages.success(request, f"Created {agent.name}. It is a draft until you publish it.")
                return redirect("agents:edit", public_id=agent.public_id)
        return render(request, "agents/form.html", {**_form_context(form, []), "creating": True}, status=400)


class AgentEditView(AgentMixin, View):
    def _page(self, request: HttpRequest, agent: Agent, form: AgentForm, status: int = 200) -> HttpResponse:
        variables = placeholders(agent.system_prompt, agent.first_message, agent.voicemail_message)
        problems = readiness_problems(agent)
        info = PROVIDERS.get(agent.provider)
        return render(request, "agents/form.html", {
            **_form_context(form, setting_warnings(AgentSettings.parse(agent.snapshot()))),
            "agent": agent, "problems": problems, "checklist": readiness_checklist(agent, problems),
            "ready": not problems, "retired": info is not None and info.retired(), "provider": info,
            "readiness_warnings": readiness_warnings(agent),
            "variables": variables, "publish_form": PublishForm(), "can_edit": self._can_write(),
            "experiments": experiments_panel(agent),
        }, status=status)

    def get(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        agent = self.get_agent(public_id)
        return self._page(request, agent, AgentForm(instance=agent, org=self.org))

    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        agent = self.get_agent(public_id)
        form = AgentForm(request.POST, instance=agent, org=self.org)
        if form.is_valid():
            fresh = self.get_agent(public_id)
            try:
                services.update_agent(fresh, self.actor, **form.config_values())
            except services.AgentError as exc:  # the form refuses retired providers first; kept as a backstop
                form.add_error("provider", str(exc))
            else:
                messages.success(request, "Draft saved. Publish it to use it for calls.")
                return redirect("agents:edit", public_id=public_id)
        return self._page(request, self.get_agent(public_id), form, status=400)


class AgentPublishView(AgentMixin, View):
    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        agent = self.get_agent(public_id)
        form = PublishForm(request.POST)
        note = form.cleaned_data["note"] if form.is_valid() else ""
        try:
            version = services.publish_agent(agent, self.actor, note=note)
        except services.AgentError as exc:
            show_error(request, exc)
        else:
            messages.success(request, f"Published version {version.number}; new calls use it.")
        return redirect("agents:edit", public_id=public_id)


class AgentDuplicateView(AgentMixin, View):
    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        try:
            copy = services.duplicate_agent(self.get_agent(public_id), self.actor)
        except services.AgentError as exc:  # a retired provider's agent is not copied
            messages.error(request, str(exc))
            return redirect("agents:edit", public_id=public_id)
        messages.success(request, f"Created {copy.name}.")
        return redirect("agents:edit", public_id=copy.public_id)


class AgentDeleteView(AgentMixin, View):
    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        agent = self.get_agent(public_id)
        name = agent.name
        try:
            services.delete_agent(agent, self.actor)
        except ValidationError as exc:  # still used by a batch or a schedule
            messages.error(request, " ".join(exc.messages))
            return redirect("agents:edit", public_id=agent.public_id)
        messages.success(request, f"Deleted {name}.")
        return redirect("agents:list")


class AgentVersionsView(AgentMixin, View):
    def get(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        agent = self.get_agent(public_id)
        versions = list(versions_of(agent))
        configs = {v.pk: with_grants(v.config, v.tool_grants) for v in versions}
        draft = with_grants(agent.snapshot(), draft_grants(agent))
        names = id_names(self.org, [*configs.values(), draft])
        rows = []
        for i, version in enumerate(versions):
            previous = versions[i + 1] if i + 1 < len(versions) else None
            rows.append({"version": version,
                         "diff": diff_configs(configs[previous.pk], configs[version.pk], names=names) if previous else [],
                         "first": previous is None,
                         "current": agent.published_version_id == version.pk})
        published = agent.published_version
        draft_diff = (diff_configs(with_grants(published.config, published.tool_grants), draft, names=names)
                      if published else [])
        return render(request, "agents/versions.html", {"agent": agent, "rows": rows, "draft_diff": draft_diff,
                                                        "can_edit": self._can_write()})


class AgentRestoreView(AgentMixin, View):
    def post(self, request: HttpRequest, public_id: Any, number: int) -> HttpResponse:
        agent = self.get_agent(public_id)
        version = get_object_or_404(versions_of(agent), number=number)
        publish = request.POST.get("publish") == "1"
        try:
            services.restore_version(agent, version, self.actor, publish=publish)
        except services.AgentError as exc:
            messages.error(request, str(exc))
            return redirect("agents:versions", public_id=public_id)
        if publish:
            messages.success(request, f"Restored version {number} and published it.")
        else:
            messages.success(request, f"Restored version {number} into the draft; publish it to use it for calls.")
        return redirect("agents:edit", public_id=public_id)
