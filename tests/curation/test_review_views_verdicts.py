"""What a reviewer sees of the Intervener's verdicts: every verdict, flawless ones included, on
the trajectory page (a flaw beside the step it names, a flawless verdict at the top), with what
made it (the checks or the LLM) and the model; the diagnosis job's link lands on it. The
verdict's text is model output: sanitized Markdown only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import Diagnosis, Job, ModelEndpoint

from .test_views_trajectories import parse_elements

pytestmark = pytest.mark.django_db


@pytest.fixture
def judge(db):
    return ModelEndpoint.objects.create(name="judge-7b", backend="openai", model="m")


def _section(html: str, element_id: str) -> str:
    """The HTML from the element with ``element_id`` to the end of its card."""
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</aside>", start)]


def test_a_flawless_verdict_is_shown_at_the_top_with_who_made_it(
    client_for, reviewer, make_trajectory, judge
):
    t = make_trajectory()
    d = Diagnosis.objects.create(
        trajectory=t, endpoint=judge, status="ok", flawless=True, source="llm",
        rationale="Every step is **sound**; the model solved the LP with HiGHS.",
    )  # fmt: skip
    html = client_for(reviewer).get(t.get_absolute_url()).content.decode()
    top = html.split('id="verdicts"', 1)[1].split('id="steps"', 1)[0]
    verdict = _section(top, f"verdict-{d.pk}")
    assert "flawless" in verdict
    assert "made by the LLM" in verdict
    assert "judge-7b" in verdict
    assert "Every step is <strong>sound</strong>" in verdict  # rendered Markdown


def test_a_flaw_verdict_sits_beside_its_step_and_names_the_check_that_made_it(
    client_for, reviewer, make_trajectory, judge, taxonomy
):
    t = make_trajectory()
    flaw = next(ft for ft in taxonomy if ft.code == "manual_computation")
    d = Diagnosis.objects.create(
        trajectory=t, endpoint=judge, status="ok", flawless=False, step_index=2,
        flaw_type=flaw, source="checks", check_name="no_solver_call",
        rationale="Computed by hand.", hint="Let me use the solver.",
    )  # fmt: skip
    html = client_for(reviewer).get(t.get_absolute_url()).content.decode()
    step_card = html.split('id="step-2"', 1)[1].split('id="step-3"', 1)[0]
    verdict = _section(step_card, f"verdict-{d.pk}")
    assert f"first flaw: {flaw.name}" in verdict
    assert "the check <code>no_solver_call</code>" in verdict
    assert "judge-7b" in verdict and "Computed by hand." in verdict
    assert html.count(f'id="verdict-{d.pk}"') == 1


def test_verdict_text_from_the_model_is_rendered_inert(
    client_for, reviewer, make_trajectory, judge
):
    t = make_trajectory()
    d = Diagnosis.objects.create(
        trajectory=t, endpoint=judge, status="ok", flawless=True,
        rationale="<script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror=alert(3)>",
        quote="<svg onload=alert(4)>",
    )  # fmt: skip
    html = client_for(reviewer).get(t.get_absolute_url()).content.decode()
    elements = parse_elements(html)
    assert all(a.get("src", "").startswith("/static/") for tag, a in elements if tag == "script")
    assert not [tag for tag, _ in elements if tag in ("svg", "img")]
    assert not [a for _, attrs in elements for a in attrs if a.startswith("on")]
    assert not [a for tag, a in elements if tag == "a" and "javascript" in a.get("href", "")]
    assert "alert(1)" in _section(html, f"verdict-{d.pk}")  # shown, as text


def test_the_diagnosis_jobs_link_lands_on_its_verdict(client_for, reviewer, make_trajectory, judge):
    t = make_trajectory()
    d = Diagnosis.objects.create(trajectory=t, endpoint=judge, status="ok", flawless=True)
    job = Job.objects.create(
        kind=Job.Kind.DIAGNOSE, status=Job.Status.SUCCEEDED, created_by=reviewer,
        params={"trajectory_id": t.pk, "endpoint_id": judge.pk}, result={"diagnosis_id": d.pk},
    )  # fmt: skip
    client = client_for(reviewer)
    html = client.get(reverse("curation-job-detail", args=[job.pk])).content.decode()
    link = next(a["href"] for tag, a in parse_elements(html) if a.get("id") == "result-link")
    assert link == f"{t.get_absolute_url()}#verdict-{d.pk}"
    page = client.get(link.split("#")[0]).content.decode()
    assert f'id="verdict-{d.pk}"' in page
