from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from ..models import AnswerStatus, Problem
from ..roles import Role, role_required
from ..selectors import benchmark_counts, problem_search

PAGE_SIZE = 25


@require_GET
@vary_on_headers("HX-Request", "HX-Target")  # the same URL is a page or a fragment: cache apart
@role_required(Role.REVIEWER)
def problem_list(request: HttpRequest) -> HttpResponse:
    filters = {
        "text": request.GET.get("q", "")[:500],
        "benchmark": request.GET.get("benchmark", "")[:100],
        "answer_status": request.GET.get("status", "")[:32],
    }
    if filters["answer_status"] not in AnswerStatus.values:
        filters["answer_status"] = ""
    page = Paginator(problem_search(**filters), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "benchmarks": benchmark_counts(),
        "statuses": AnswerStatus.choices,
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
    return render(
        request, "curation/problem_detail.html", {"problem": problem, "raw_json": raw_json}
    )
