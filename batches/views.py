"""Dashboard pages for batches, the do-not-call list and scheduled calls.

Uploads are previewed before anything is created: the file is kept in media
storage under an unguessable name for the org, so "Create" does not need a
second upload; it is deleted once the batch exists.
"""

from __future__ import annotations

import uuid
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views import View

from agents.models import Agent
from batches import scheduling, services
from batches.forms import BatchForm, DoNotCallAddForm, DoNotCallImportForm, ScheduleForm
from batches.importing import ColumnMapping, UploadError, preview_upload
from batches.models import (
    ACTIVE,
    Batch,
    BatchEntry,
    BatchStatus,
    DoNotCallNumber,
    EntryState,
    ScheduledCall,
    ScheduleKind,
)
from batches.readiness import Readiness, batch_readiness, check_outbound, schedule_readiness
from batches.report import iter_csv
from batches.results import result_rows
from batches.schedule_rules import ScheduleError
from batches.tasks import STASH_ROOT
from calls.models import PhoneNumber
from orgs.credentials import configured_providers
from orgs.models import Role
from voiceplatform.errors import show_error
from voiceplatform.views import OrgViewMixin

PREVIEW_PROBLEMS = 200


def _choices(org: Any) -> dict[str, Any]:
    return {"agents": Agent.objects.for_org(org).order_by("name"),
            "numbers": PhoneNumber.objects.for_org(org).order_by("e164")}


def _stash_path(org: Any, token: str) -> str:
    return f"{STASH_ROOT}/{org.public_id}/{uuid.UUID(token)}.upload"


class BatchListView(OrgViewMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        batches = list(self.scoped(Batch).select_related("agent", "from_number")[:200])
        rows = [(b, services.progress(b)) for b in batches]
        return render(request, "batches/list.html", {"rows": rows})


class BatchCreateView(OrgViewMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "batches/create.html", {"form": BatchForm(**_choices(self.org))})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = BatchForm(request.POST, request.FILES, **_choices(self.org))
        context: dict[str, Any] = {"form": form}
        if not form.is_valid():
            return render(request, "batches/create.html", context, status=400)
        data = form.cleaned_data
        token = data.get("upload_token") or ""
        if data.get("file"):
            token = str(uuid.uuid4())
            default_storage.save(_stash_path(self.org, token), data["file"])
        if not token:
            form.add_error("file", "choose a CSV or JSON file")
            return render(request, "batches/create.html", context, status=400)
        try:
            path = _stash_path(self.org, token)
        except ValueError:
            raise Http404 from None
        if not default_storage.exists(path):
            form.add_error("file", "the uploaded file has expired; choose it again")
            return render(request, "batches/create.html", context, status=400)
        variables = form.variables()
        phone = (data.get("phone_column") or "").strip()
        mapping = ColumnMapping(phone, variables) if phone else None
        if variables is not None and not phone:
            form.add_error("phone_column", "name the phone column when you map variables")
        if form.errors:
            return render(request, "batches/create.html", context, status=400)
        form.data = form.data.copy()
        form.data["upload_token"] = token
        context["token"] = token
        name = data["file"].name if data.get("file") else request.POST.get("filename", "upload.csv")
        context["filename"] = name
        with default_storage.open(path, "rb") as handle:
            try:
                if request.POST.get("action") != "create":
                    context["preview"] = preview_upload(
                        handle, mapping, default_region=self.org.default_country or None,
                        do_not_call=services.do_not_call_set(self.org), filename=name,
                        max_problems=PREVIEW_PROBLEMS)
                    return render(request, "batches/create.html", context)
                settings = services.BatchSettings(
                    name=data["name"], agent=Agent.objects.for_org(self.org).filter(public_id=data["agent"]).first(),
                    from_number=PhoneNumber.objects.for_org(self.org).filter(public_id=data["from_number"]).first(),
                    concurrency=data["concurrency"], calls_per_second=data["calls_per_second"],
                    max_attempts=data["max_attempts"], retry_delay_s=data["retry_delay_s"],
                    retry_on=data["retry_on"], calling_window=form.window())
                batch = services.create_batch_from_upload(self.org, self.actor, settings, handle, filename=name,
                                                          mapping=mapping)
            except UploadError as exc:  # the file as a whole
                show_error(request, exc, form, fields={None: "file"})
                return render(request, "batches/create.html", context, status=400)
            except services.BatchError as exc:
                show_error(request, exc, form, fields={"calling_window": "window_days"})
                return render(request, "batches/create.html", context, status=400)
        default_storage.delete(path)
        messages.success(request, f"Batch created: {batch.valid_rows} of {batch.total_rows} rows can be dialled.")
        return redirect("batches:detail", public_id=batch.public_id)


class BatchDetailMixin(OrgViewMixin):
    def batch(self, public_id: uuid.UUID) -> Batch:
        batch = self.scoped(Batch).select_related("agent", "from_number").filter(public_id=public_id).first()
        if batch is None:
            raise Http404
        return batch


class BatchDetailView(BatchDetailMixin, View):
    def get(self, request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
        batch = self.batch(public_id)
        problems = (BatchEntry.objects.filter(batch=batch, state__in=[EntryState.INVALID, EntryState.DUPLICATE,
                                                                      EntryState.DO_NOT_CALL, EntryState.FAILED])
                    .order_by("row_number")[:PREVIEW_PROBLEMS])
        readiness = batch_readiness(batch) if batch.status in (
            BatchStatus.READY, BatchStatus.RUNNING, BatchStatus.PAUSED) else None
        return render(request, "batches/detail.html", {"batch": batch, "progress": services.progress(batch),
                                                       "problems": problems, "live": _is_live(batch),
                                                       "readiness": readiness})


def _is_live(batch: Batch) -> bool:
    return batch.status == BatchStatus.RUNNING or BatchEntry.objects.filter(batch=batch, state__in=ACTIVE).exists()


class BatchProgressView(BatchDetailMixin, View):
    """The progress panel alone; htmx polls it while the batch is live."""

    def get(self, request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
        batch = self.batch(public_id)
        return render(request, "batches/_progress.html", {"batch": batch, "progress": services.progress(batch),
                                                          "live": _is_live(batch)})


class BatchActionView(BatchDetailMixin, View):
    VERBS = {"launch": services.launch_batch, "pause": services.pause_batch, "resume": services.resume_batch,
             "cancel": services.cancel_batch}

    def post(self, request: HttpRequest, public_id: uuid.UUID, verb: str) -> HttpResponse:
        batch = self.batch(public_id)
        if verb == "delete":
            # As the API's DELETE: the service refuses a live campaign or one under legal hold.
            try:
                services.delete_batch(batch, self.actor)
            except services.BatchError as exc:
                show_error(request, exc)
                return redirect("batches:detail", public_id=batch.public_id)
            messages.success(request, f"Campaign “{batch.name}” deleted.")
            return redirect("batches:list")
        if verb not in self.VERBS:
            raise Http404
        try:
            self.VERBS[verb](batch, self.actor)
            messages.success(request, f"Batch {verb}ed." if verb != "cancel" else "Batch canceled.")
            if verb in ("launch", "resume"):
                for warning in batch_readiness(batch).warnings:
                    messages.warning(request, warning.message)
        except services.BatchError as exc:
            show_error(request, exc)
        return redirect("batches:detail", public_id=batch.public_id)


class BatchResultsView(BatchDetailMixin, View):
    def get(self, request: HttpRequest, public_id: uuid.UUID) -> StreamingHttpResponse:
        batch = self.batch(public_id)
        header, rows = result_rows(batch)
        response = StreamingHttpResponse(iter_csv(header, rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.public_id}-results.csv"'
        return response


class DoNotCallView(OrgViewMixin, View):
    def _render(self, request: HttpRequest, add: Any = None, upload: Any = None, status: int = 200,
                result: Any = None) -> HttpResponse:
        return render(request, "batches/do_not_call.html", {
            "entries": self.scoped(DoNotCallNumber)[:500], "count": self.scoped(DoNotCallNumber).count(),
            "add_form": add or DoNotCallAddForm(), "import_form": upload or DoNotCallImportForm(),
            "result": result}, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._render(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        action = request.POST.get("action")
        if action == "remove":
            entry = self.scoped(DoNotCallNumber).filter(public_id=request.POST.get("id") or None).first()
            if entry is None:
                raise Http404
            services.remove_do_not_call(entry, self.actor)
            messages.success(request, f"{entry.e164} removed from the do-not-call list.")
            return redirect("batches:do-not-call")
        if action == "import":
            upload = DoNotCallImportForm(request.POST, request.FILES)
            if not upload.is_valid():
                return self._render(request, upload=upload, status=400)
            try:
                result = services.import_do_not_call(self.org, self.actor, upload.cleaned_data["file"],
                                                     filename=upload.cleaned_data["file"].name,
                                                     phone_column=upload.cleaned_data.get("phone_column") or None)
            except UploadError as exc:
                show_error(request, exc, upload, fields={None: "file"})
                return self._render(request, upload=upload, status=400)
            return self._render(request, result=result)
        add = DoNotCallAddForm(request.POST)
        if add.is_valid():
            try:
                services.add_do_not_call(self.org, self.actor, add.cleaned_data["e164"],
                                         reason=add.cleaned_data.get("reason", ""))
                messages.success(request, "Number added to the do-not-call list.")
                return redirect("batches:do-not-call")
            except services.BatchError as exc:
                show_error(request, exc, add)
        return self._render(request, add=add, status=400)


class ScheduleListView(OrgViewMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        have, listed = configured_providers(self.org), services.do_not_call_set(self.org)
        rows = [(sc, scheduling.upcoming(sc, 3), schedule_readiness(sc, have=have, do_not_call=listed))
                for sc in self.scoped(ScheduledCall).select_related("org", "agent", "from_number")[:200]]
        return render(request, "batches/schedules.html", {"rows": rows})


class ScheduleFormView(OrgViewMixin, View):
    def _schedule(self, public_id: uuid.UUID | None) -> ScheduledCall | None:
        if public_id is None:
            return None
        sc = self.scoped(ScheduledCall).select_related("agent", "from_number").filter(public_id=public_id).first()
        if sc is None:
            raise Http404
        return sc

    def get(self, request: HttpRequest, public_id: uuid.UUID | None = None) -> HttpResponse:
        sc = self._schedule(public_id)
        initial = {}
        if sc is not None:
            initial = {"name": sc.name, "agent": str(sc.agent.public_id), "from_number": str(sc.from_number.public_id),
                       "to": sc.to, "kind": sc.kind, "cron": sc.cron, "timezone": sc.timezone,
                       "variables": sc.variables, "enabled": sc.enabled, "max_attempts": sc.max_attempts,
                       "retry_delay_s": sc.retry_delay_s, "missed_run_policy": sc.missed_run_policy,
                       "run_at": sc.run_at.astimezone(ZoneInfo(sc.timezone)).strftime(
                           "%Y-%m-%dT%H:%M") if sc.run_at else ""}
        else:
            initial = {"timezone": self.org.timezone}
        form = ScheduleForm(initial=initial, **_choices(self.org))
        return render(request, "batches/schedule_form.html", {
            "form": form, "schedule": sc, "runs": sc.runs.all()[:50] if sc else [],
            "readiness": schedule_readiness(sc) if sc else None})

    def post(self, request: HttpRequest, public_id: uuid.UUID | None = None) -> HttpResponse:
        sc = self._schedule(public_id)
        if request.POST.get("action") == "delete" and sc is not None:
            scheduling.delete_scheduled_call(sc, self.actor)
            messages.success(request, "Scheduled call deleted.")
            return redirect("batches:schedules")
        form = ScheduleForm(request.POST, **_choices(self.org))
        context = {"form": form, "schedule": sc, "runs": sc.runs.all()[:50] if sc else [],
                   "readiness": schedule_readiness(sc) if sc else None}
        if not form.is_valid():
            return render(request, "batches/schedule_form.html", context, status=400)
        data = form.cleaned_data
        schedule = scheduling.ScheduleInput(
            name=data["name"], agent=Agent.objects.for_org(self.org).filter(public_id=data["agent"]).first(),
            from_number=PhoneNumber.objects.for_org(self.org).filter(public_id=data["from_number"]).first(),
            to=data["to"], kind=data["kind"], timezone=data["timezone"], run_at=data.get("run_at") or None,
            cron=data.get("cron") or "", variables=data.get("variables") or {}, enabled=data["enabled"],
            max_attempts=data["max_attempts"], retry_delay_s=data["retry_delay_s"],
            missed_run_policy=data["missed_run_policy"])
        try:
            if sc is None:
                sc = scheduling.create_scheduled_call(self.org, self.actor, schedule)
            else:
                scheduling.update_scheduled_call(sc, self.actor, schedule)
        except services.BatchError as exc:
            show_error(request, exc, form)
            return render(request, "batches/schedule_form.html", context, status=400)
        messages.success(request, "Scheduled call saved.")
        return redirect("batches:schedule", public_id=sc.public_id)


class SchedulePreviewView(OrgViewMixin, View):
    """htmx: the next runs for the values currently in the form (nothing is saved)."""

    write_role = Role.VIEWER

    def post(self, request: HttpRequest) -> HttpResponse:
        readiness = self._readiness(request)
        try:
            runs = scheduling.preview(request.POST.get("kind", ""), timezone=request.POST.get("timezone", ""),
                                      cron=request.POST.get("cron", ""), run_at=request.POST.get("run_at") or None)
            cron = request.POST.get("cron", "") if request.POST.get("kind") == ScheduleKind.CRON else ""
            return render(request, "batches/_next_runs.html", {"runs": runs, "cron": cron, "readiness": readiness})
        except ScheduleError as exc:
            return render(request, "batches/_next_runs.html", {"error": exc.message, "readiness": readiness})

    def _readiness(self, request: HttpRequest) -> Readiness | None:
        """Will calls with the chosen agent and number work? (None until both are chosen.)"""
        agent_id, number_id = request.POST.get("agent") or "", request.POST.get("from_number") or ""
        try:
            agent = self.scoped(Agent).filter(public_id=uuid.UUID(agent_id)).first()
            number = self.scoped(PhoneNumber).filter(public_id=uuid.UUID(number_id)).first()
        except ValueError:
            return None
        if agent is None or number is None:
            return None
        return check_outbound(self.org, agent, number)
