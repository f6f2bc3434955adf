"""Agreement: human labels against the Intervener's (Cohen's κ, confusion matrix over flaw
types), and between reviewers who labelled the same steps."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .. import plots, stats
from ..models import Diagnosis, FlawLabel, FlawType, ReviewDecision
from ..roles import Role, role_required


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


@require_GET
@role_required(Role.REVIEWER)
def agreement_page(request: HttpRequest) -> HttpResponse:
    labels, reviewed = _labels(), _reviewed()
    order = list(FlawType.objects.values_list("name", flat=True))
    human_model = stats.agreement(
        labels, left={"source": "human"}, right={"source": "model"}, reviewed=reviewed,
        categories=[*order, None],
    )  # fmt: skip
    confusion = human_model["confusion"]
    context = {
        "human_model": human_model,
        "heatmap": plots.heatmap(
            confusion["matrix"], confusion["labels"], confusion["labels"],
            title="Human label (rows) against the Intervener's (columns)",
            row_title="human", col_title="Intervener",
        ),
        "reviewers": stats.reviewer_agreement(labels, reviewed=reviewed),
    }  # fmt: skip
    return render(request, "curation/agreement.html", context)
