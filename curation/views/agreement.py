"""Agreement: human labels against the Intervener's (Cohen's κ, confusion matrix over flaw
types), and between reviewers who labelled the same steps."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..forms import as_int
from ..models import (
    CheckFinding,
    Diagnosis,
    FlawLabel,
    FlawType,
    ModelEndpoint,
    ReviewDecision,
    Trajectory,
)
from ..presentation import plots, statistics
from ..roles import Role, role_required
from ..services.checks import check_specs_for, trajectory_findings


def _labels() -> list[dict]:
    rows = FlawLabel.objects.values(
        "trajectory_id", "step_index", "source", "author_user_id", "author_endpoint_id",
        "flaw_type__name", "created_at",
    )  # fmt: skip
    return [
        {
            "trajectory_id": r["trajectory_id"],
            "step_index": r["step_index"],
            "source": r["source"],
            "author": (
                f"model:{r['author_endpoint_id']}"
                if r["source"] == "model"
                else f"user:{r['author_user_id']}"
            ),
            "flaw_type": r["flaw_type__name"],
            "created_at": r["created_at"],
        }
        for r in rows
    ]


def _reviewed() -> list[dict]:
    """Who read which trajectory: reviewers who decided on it, Interveners that diagnosed it
    (a verdict of "flawless" is a reading that flagged nothing)."""
    humans = ReviewDecision.objects.values_list("trajectory_id", "author_id").distinct()
    models = Diagnosis.objects.filter(status="ok").values_list("trajectory_id", "endpoint_id")
    return [
        *({"trajectory_id": t, "author": f"user:{a}", "source": "human"} for t, a in humans),
        *({"trajectory_id": t, "author": f"model:{e}", "source": "model"} for t, e in models),
    ]


def _human_model(labels: list[dict], reviewed: list[dict]) -> dict:
    order = list(FlawType.objects.values_list("name", flat=True))
    return statistics.agreement(
        labels, left={"source": "human"}, right={"source": "model"}, reviewed=reviewed,
        categories=[*order, None],
    )  # fmt: skip


def _checks_reviewers() -> dict:
    """The checks over the execution record as one more rater, against reviewers: on every
    trajectory a reviewer read (decided, labelled, or decided a finding of), the checks'
    first finding per step is their label. Findings are computed from the record (only the
    trajectories people read, so the page stays cheap)."""
    labels = [r for r in _labels() if r["source"] == "human"]
    decided = CheckFinding.objects.values_list("trajectory_id", "decided_by_id")
    humans = [
        *({"trajectory_id": t, "author": f"user:{a}", "source": "human"}
          for t, a in ReviewDecision.objects.values_list("trajectory_id", "author_id")),
        *({"trajectory_id": t, "author": f"user:{a}", "source": "human"} for t, a in decided),
    ]  # fmt: skip
    read = {r["trajectory_id"] for r in [*labels, *humans]}
    names = dict(FlawType.objects.values_list("code", "name"))
    specs = check_specs_for(None)
    codes = list(FlawType.objects.filter(active=True).values_list("code", flat=True))
    checked = []
    for trajectory in Trajectory.objects.filter(pk__in=read).select_related("problem"):
        seen = set()
        for f in trajectory_findings(trajectory, specs=specs, flaw_codes=codes):
            if f.step in seen:
                continue
            seen.add(f.step)
            checked.append({"trajectory_id": trajectory.pk, "step_index": f.step,
                            "source": "check", "author": "checks",
                            "flaw_type": names.get(f.flaw_type, f.flaw_type),
                            "created_at": trajectory.created_at})  # fmt: skip
    reviewed = [*humans, *({"trajectory_id": t, "author": "checks", "source": "check"}
                           for t in read)]  # fmt: skip
    return statistics.agreement(
        [*labels, *checked], left={"source": "human"}, right={"source": "check"},
        reviewed=reviewed,
    )  # fmt: skip


def _label(value) -> str:
    return statistics.NO_FLAW_LABEL if value is None else str(value)


@require_GET
@role_required(Role.REVIEWER)
def agreement_page(request: HttpRequest) -> HttpResponse:
    labels, reviewed = _labels(), _reviewed()
    human_model = _human_model(labels, reviewed)
    confusion = human_model["confusion"]
    rows = [
        {
            "label": label,
            "cells": [
                {"col": col, "n": n} for col, n in zip(confusion["labels"], row, strict=True)
            ],
        }
        for label, row in zip(confusion["labels"], confusion["matrix"], strict=True)
    ]
    context = {
        "human_model": human_model,
        "confusion_rows": rows,
        "heatmap": plots.heatmap(
            confusion["matrix"], confusion["labels"], confusion["labels"],
            title="Human label (rows) against the Intervener's (columns)",
            row_title="human", col_title="Intervener",
        ),
        "reviewers": statistics.reviewer_agreement(labels, reviewed=reviewed),
        "checks": _checks_reviewers(),
    }  # fmt: skip
    return render(request, "curation/agreement.html", context)


@require_GET
@role_required(Role.REVIEWER)
def agreement_cell(request: HttpRequest) -> HttpResponse:
    """The steps behind one cell of the human × Intervener confusion matrix."""
    row, col = request.GET.get("row", ""), request.GET.get("col", "")
    units = [
        u
        for u in _human_model(_labels(), _reviewed())["units"]
        if _label(u["a"]) == row and _label(u["b"]) == col
    ]
    users = dict(get_user_model().objects.values_list("pk", "username"))
    endpoints = dict(ModelEndpoint.objects.values_list("pk", "name"))

    def name(author: str) -> str:
        kind, _, pk = author.partition(":")
        names = users if kind == "user" else endpoints
        return names.get(as_int(pk), author)

    steps = [
        {**u, "human": name(u["left_author"]), "model": name(u["right_author"])} for u in units
    ]
    context = {"row": row, "col": col, "steps": steps}
    return render(request, "curation/agreement_cell.html", context)
