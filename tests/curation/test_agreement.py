"""Cohen's κ with a confidence interval, and a confusion matrix whose cells open their steps."""

from __future__ import annotations

import random
import statistics

import pytest
from django.urls import reverse

from curation.presentation import statistics as figures


def _pairs(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """Two raters over three categories who agree about 70% of the time."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a = rng.choice("xyz")
        pairs.append((a, a if rng.random() < 0.7 else rng.choice("xyz")))
    return pairs


def test_the_interval_matches_a_bootstrap_of_the_same_pairs():
    pairs = _pairs(400)
    low, high = figures.kappa_interval(pairs)
    kappa = figures.cohen_kappa(pairs)
    assert low < kappa < high
    rng = random.Random(1)
    boot = [figures.cohen_kappa(rng.choices(pairs, k=len(pairs))) for _ in range(400)]
    analytic_se = (high - low) / (2 * 1.96)
    assert statistics.stdev(boot) == pytest.approx(analytic_se, rel=0.2)


def test_the_interval_narrows_with_more_pairs():
    small, large = figures.kappa_interval(_pairs(100)), figures.kappa_interval(_pairs(1600))
    assert (large[1] - large[0]) < (small[1] - small[0]) / 3


def test_edge_cases_of_the_interval():
    assert figures.kappa_interval([("x", "x"), ("x", "y")] * 4) is None  # too few pairs
    assert figures.kappa_interval([("x", "x")] * 20) is None  # p_e = 1
    assert figures.kappa_interval([("x", "x"), ("y", "y")] * 5) == (1.0, 1.0)
    low, high = figures.kappa_interval([("x", "y"), ("y", "x")] * 5)
    assert low >= -1.0 and high <= 1.0


@pytest.mark.django_db
def test_the_agreement_page_shows_the_interval_and_cells_open_their_steps(
    client_for, reviewer, lead, make_trajectory, taxonomy
):
    from curation.models import Diagnosis, ModelEndpoint
    from curation.services.labels import flaw_label_set

    manual, delayed = taxonomy[0], taxonomy[1]
    model = ModelEndpoint.objects.create(name="judge", backend="openai", model="m")
    a, b = make_trajectory(), make_trajectory()
    for t in (a, b):
        Diagnosis.objects.create(trajectory=t, endpoint=model, status="ok", flawless=False)
    flaw_label_set(trajectory=a, step_index=0, flaw_type=manual, by_endpoint=model)
    flaw_label_set(trajectory=a, step_index=0, flaw_type=manual, by_user=reviewer)
    flaw_label_set(trajectory=b, step_index=1, flaw_type=delayed, by_endpoint=model)
    flaw_label_set(trajectory=b, step_index=1, flaw_type=manual, by_user=reviewer)
    flaw_label_set(trajectory=b, step_index=2, flaw_type=delayed, by_user=reviewer)
    client = client_for(lead)
    html = client.get(reverse("curation-agreement")).content.decode()
    assert 'id="confusion"' in html and "95% CI" in html  # 3 pairs: too few for an interval
    assert 'id="kappa-ci"' not in html
    cell = client.get(
        reverse("curation-agreement-cell"), {"row": manual.name, "col": delayed.name}
    ).content.decode()
    assert f"#{b.pk} step 2" in cell and "rita-reviewer" in cell and "judge" in cell
    assert f"#{a.pk} step" not in cell
    cell = client.get(
        reverse("curation-agreement-cell"), {"row": delayed.name, "col": figures.NO_FLAW_LABEL}
    ).content.decode()
    assert f"#{b.pk} step 3" in cell


@pytest.mark.django_db
def test_the_page_shows_the_interval_once_there_are_enough_pairs(
    client_for, reviewer, make_trajectory, taxonomy
):
    from curation.models import Diagnosis, ModelEndpoint
    from curation.services.labels import flaw_label_set

    from .conftest import step

    model = ModelEndpoint.objects.create(name="judge", backend="openai", model="m")
    t = make_trajectory(steps=[step(i, f"step {i}") for i in range(12)])
    Diagnosis.objects.create(trajectory=t, endpoint=model, status="ok", flawless=False)
    for i in range(12):
        flaw_label_set(trajectory=t, step_index=i, flaw_type=taxonomy[i % 2], by_endpoint=model)
        human = taxonomy[i % 2] if i < 9 else taxonomy[(i + 1) % 2]
        flaw_label_set(trajectory=t, step_index=i, flaw_type=human, by_user=reviewer)
    html = client_for(reviewer).get(reverse("curation-agreement")).content.decode()
    assert 'id="kappa-ci">(95% CI ' in html and "over 12 step pairs" in html
