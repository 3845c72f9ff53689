"""Dashboard pages for agents: list, create, edit (the draft), publish, versions with diffs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from agents import services
from agents.experiment_views import experiments_panel
from agents.forms import AgentForm, PublishForm
from agents.models import Agent
from agents.providers import PROVIDERS
from agents.runtime import readiness_problems
from agents.selectors import agents_for, diff_configs, readiness_by_agent, versions_of
from agents.variables import variables_in
from orgs.models import role_at_least
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
        rows = [{"agent": a, "problems": problems[a.pk], "provider": PROVIDERS.get(a.provider)} for a in agents]
        return render(request, "agents/list.html", {"rows": rows, "can_edit": self._can_write(),
                                                    "providers": PROVIDERS.values()})


class AgentCreateView(AgentMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "agents/form.html", {"form": AgentForm(org=self.org), "creating": True,
                                                    "providers": PROVIDERS.values()})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = AgentForm(request.POST, org=self.org, instance=Agent(org=self.org))
        if form.is_valid():
            agent = services.save_new_agent(form.instance, self.actor)
            messages.success(request, f"Created {agent.name}. It is a draft until you publish it.")
            return redirect("agents:edit", public_id=agent.public_id)
        return render(request, "agents/form.html", {"form": form, "creating": True,
                                                    "providers": PROVIDERS.values()}, status=400)


class AgentEditView(AgentMixin, View):
    def _page(self, request: HttpRequest, agent: Agent, form: AgentForm, status: int = 200) -> HttpResponse:
        variables = list(dict.fromkeys(
            name for text in (agent.system_prompt, agent.first_message, agent.voicemail_message)
            for name in variables_in(text or "")))
        return render(request, "agents/form.html", {
            "form": form, "agent": agent, "problems": readiness_problems(agent), "variables": variables,
            "publish_form": PublishForm(), "providers": PROVIDERS.values(), "can_edit": self._can_write(),
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
            services.update_agent(fresh, self.actor, **form.config_values())
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
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Published version {version.number}; new calls use it.")
        return redirect("agents:edit", public_id=public_id)


class AgentDuplicateView(AgentMixin, View):
    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        copy = services.duplicate_agent(self.get_agent(public_id), self.actor)
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
        rows = []
        for i, version in enumerate(versions):
            previous = versions[i + 1] if i + 1 < len(versions) else None
            rows.append({"version": version, "diff": diff_configs(previous.config, version.config) if previous else [],
                         "first": previous is None,
                         "current": agent.published_version_id == version.pk})
        draft_diff = diff_configs(agent.published_version.config, agent.snapshot()) if agent.published_version else []
        return render(request, "agents/versions.html", {"agent": agent, "rows": rows, "draft_diff": draft_diff,
                                                        "can_edit": self._can_write()})


class AgentRestoreView(AgentMixin, View):
    def post(self, request: HttpRequest, public_id: Any, number: int) -> HttpResponse:
        agent = self.get_agent(public_id)
        version = get_object_or_404(versions_of(agent), number=number)
        publish = request.POST.get("publish") == "1"
        services.restore_version(agent, version, self.actor, publish=publish)
        if publish:
            messages.success(request, f"Restored version {number} and published it.")
        else:
            messages.success(request, f"Restored version {number} into the draft; publish it to use it for calls.")
        return redirect("agents:edit", public_id=public_id)
