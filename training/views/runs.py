"""Training runs: list (leads and admins), launch with a configuration preview, watch live,
cancel, register a checkpoint or serve it with llama.cpp, relaunch (admins)."""

from __future__ import annotations

from pathlib import Path

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from curation.roles import Role, role_required

from ..forms import FORMS
from ..models import TrainingRun
from ..selectors import runs_recent
from ..services.configs import command_for, config_yaml
from ..services.runs import (
    RunError,
    checkpoint_register,
    problems_select,
    run_cancel,
    run_config,
    run_create,
    run_relaunch,
)
from ..services.serving import checkpoint_serve
from .presenters import run_context


@require_GET
@role_required(Role.LEAD)
def run_list(request: HttpRequest) -> HttpResponse:
    return render(request, "training/run_list.html", {"runs": runs_recent()})


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def run_new(request: HttpRequest, kind: str) -> HttpResponse:
    """GET: the form. POST ``action=preview``: the form again with the resolved configuration
    (htmx swaps just the preview). POST ``action=launch``: create the run, go to its page."""
    if kind not in FORMS:
        raise Http404("no such kind of run")
    form = FORMS[kind](request.POST or None)
    context = {"form": form, "kind": kind, "kind_label": TrainingRun.Kind(kind).label}
    if request.method == "POST" and form.is_valid():
        try:
            if request.POST.get("action") == "preview":
                context["preview"] = _preview(kind, form)
            else:
                selection = form.problem_selection_args()
                run = run_create(
                    **form.create_kwargs(), by=request.user,
                    problem_selection=problems_select(**selection) if selection else None,
                )  # fmt: skip
                return redirect(run)
        except RunError as exc:
            form.add_error(None, str(exc))
    if request.htmx and request.POST.get("action") == "preview":
        return render(request, "training/run_new.html#config-preview", context)
    return render(request, "training/run_new.html", context)


def _preview(kind: str, form) -> dict:
    kwargs = form.create_kwargs()
    config = run_config(
        kind=kind, model=kwargs["model"], preset=kwargs["preset"], fields=kwargs["fields"],
        overrides=kwargs["overrides"], dataset=kwargs["dataset"], output_dir="<run folder>",
    )  # fmt: skip
    command = command_for(
        kind, Path("<run folder>/run.yaml"), metrics_path=Path("<run folder>/metrics-1.jsonl"),
        accelerate_config=kwargs["accelerate_config"], num_processes=kwargs["num_processes"],
    )  # fmt: skip
    selection = form.problem_selection_args()
    problems = len(problems_select(**selection)["problem_ids"]) if selection else None
    return {"yaml": config_yaml(config), "command": " ".join(command[1:]), "problems": problems}


@require_GET
@vary_on_headers("HX-Request")
@role_required(Role.LEAD)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    related = ("job", "model", "dataset", "served_endpoint")
    run = get_object_or_404(TrainingRun.objects.select_related(*related), pk=pk)
    template = "training/run_detail.html"
    if request.htmx:
        template += "#run-live"
    return render(request, template, run_context(run))


@require_POST
@role_required(Role.ADMIN)
def run_control(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    run = get_object_or_404(TrainingRun.objects.select_related("job", "model"), pk=pk)
    try:
        if action == "cancel":
            if not run_cancel(run=run):
                messages.error(request, "The run has already ended.")
        elif action == "register":
            endpoint = checkpoint_register(run=run)
            messages.success(request, f"Registered as the model endpoint “{endpoint.name}”.")
        elif action == "serve":
            checkpoint_serve(run=run, by=request.user)
            messages.success(
                request, "Converting the checkpoint to GGUF and starting llama-server for it: "
                "the progress shows below."
            )  # fmt: skip
        elif action == "relaunch":
            return redirect(run_relaunch(run=run, by=request.user))
        else:
            raise Http404("no such action")
    except RunError as exc:
        messages.error(request, str(exc))
    return redirect(run)
