from __future__ import annotations

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from ..forms import GenerateForm
from ..models import AnswerFlag, AnswerStatus, ModelEndpoint, Problem
from ..models.problems import Split
from ..roles import Role, role_required
from ..selectors.problems import benchmark_counts, problem_search
from ..selectors.trajectories import trajectory_tree
from ..services.answer_versions import AnswerFlagError, answer_flag_decide, answer_flag_raise
from ..services.endpoints import reasoner_default
from ..services.jobs import JobLimitReached
from ..services.problems import problem_split_set
from ..services.trajectories import GenerationError, trajectories_generate

PAGE_SIZE = 25


@require_GET
@vary_on_headers("HX-Request", "HX-Target")  # the same URL is a page or a fragment: cache apart
@role_required(Role.REVIEWER)
def problem_list(request: HttpRequest) -> HttpResponse:
    filters = {
        "text": request.GET.get("q", "")[:500],
        "benchmark": request.GET.get("benchmark", "")[:100],
        "answer_status": request.GET.get("status", "")[:32],
        "split": request.GET.get("split", "")[:8],
    }
    if filters["answer_status"] not in AnswerStatus.values:
        filters["answer_status"] = ""
    if filters["split"] not in Split.values:
        filters["split"] = ""
    page = Paginator(problem_search(**filters), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "benchmarks": benchmark_counts(),
        "statuses": AnswerStatus.choices,
        "splits": Split.choices,
        "querystring": request.GET.copy(),
    }
    template = "curation/problem_list.html"
    if request.htmx and request.htmx.target == "problem-results":
        template += "#problem-results"
    return render(request, template, context)


@require_GET
@role_required(Role.REVIEWER)
def problem_detail(request: HttpRequest, pk: int) -> HttpResponse:
    problem = get_object_or_404(Problem.objects.select_related("benchmark"), pk=pk)
    raw_json = json.dumps(problem.raw, indent=2, ensure_ascii=False, sort_keys=True)
    context = {
        "problem": problem,
        "raw_json": raw_json,
        "tree": trajectory_tree(problem),
        "reasoners": ModelEndpoint.objects.filter(active=True, role__in=["reasoner", "both"]),
        "versions": problem.answer_versions.select_related("created_by", "flag"),
        "flags": problem.answer_flags.select_related("raised_by", "decided_by"),
        "statuses": AnswerStatus.choices,
        "splits": Split.choices,
    }
    return render(request, "curation/problem_detail.html", context)


@require_POST
@role_required(Role.LEAD)
def problem_generate(request: HttpRequest, pk: int) -> HttpResponse:
    """Have a Reasoner solve this problem (a job on the gpu queue)."""
    problem = get_object_or_404(Problem, pk=pk)
    form = GenerateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing was generated: " + form.errors.as_text())
        return redirect(problem)
    endpoint = form.cleaned_data["endpoint"] or reasoner_default()
    samples = form.cleaned_data["samples"] or 1
    if endpoint is None:
        messages.error(request, "No Reasoner endpoint is configured (Admin → Model endpoints).")
        return redirect(problem)
    try:
        job = trajectories_generate(
            problems=[problem], endpoint=endpoint, samples=samples, by=request.user
        )
    except (GenerationError, JobLimitReached) as exc:
        messages.error(request, str(exc))
        return redirect(problem)
    return redirect("curation-job-detail", pk=job.pk)


@require_POST
@role_required(Role.REVIEWER)
def problem_answer_flag(request: HttpRequest, pk: int) -> HttpResponse:
    """Flag the reference answer as suspect, with a reason and a proposed value."""
    problem = get_object_or_404(Problem, pk=pk)
    status = request.POST.get("proposed_status") or AnswerStatus.VALUE
    raw = (request.POST.get("proposed_answer") or "").strip()
    try:
        value = float(raw) if raw and status == AnswerStatus.VALUE else None
        answer_flag_raise(problem=problem, by=request.user, reason=request.POST.get("reason", ""),
                          proposed_answer=value, proposed_status=status)  # fmt: skip
    except (AnswerFlagError, ValueError) as exc:
        messages.error(request, f"Not flagged: {exc}")
    else:
        messages.success(request, "Flagged: a lead will accept or reject the correction.")
    return redirect(f"{problem.get_absolute_url()}#answer-history")


@require_POST
@role_required(Role.LEAD)
def answer_flag_decide_view(request: HttpRequest, pk: int, flag_id: int) -> HttpResponse:
    """Accept (a new answer version) or reject a flag on this problem's answer."""
    problem = get_object_or_404(Problem, pk=pk)
    get_object_or_404(AnswerFlag, pk=flag_id, problem=problem)
    accept = request.POST.get("decision") == "accept"
    try:
        flag = answer_flag_decide(flag_id=flag_id, by=request.user, accept=accept,
                                  note=request.POST.get("note", ""))  # fmt: skip
    except AnswerFlagError as exc:
        messages.error(request, str(exc))
    else:
        problem.refresh_from_db(fields=["answer_version"])
        done = (
            f"a new reference answer (version {problem.answer_version}); {flag.rejudged.sentence()}"
        )
        messages.success(request, f"Accepted: {done}." if accept else "Rejected.")
    return redirect(f"{problem.get_absolute_url()}#answer-history")


@require_POST
@role_required(Role.LEAD)
def problem_split(request: HttpRequest, pk: int) -> HttpResponse:
    """A lead moves a problem to another split (train, dev, test); imports keep it there."""
    problem = get_object_or_404(Problem, pk=pk)
    try:
        problem_split_set(problem=problem, split=request.POST.get("split", ""))
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"This problem is now in the {problem.split} split.")
    return redirect(problem)
