"""The flaw charts (a dataset version's page, a batch's page) count the labels that stand:
a step relabelled counts once, with its new label; a label later cleared does not count."""

from __future__ import annotations

import pytest

from curation.models import FlawLabel, ModelEndpoint, Trajectory
from curation.selectors.labels import current_flaw_labels
from curation.services.labels import flaw_label_set
from curation.views.batch_stats import trajectory_charts

pytestmark = pytest.mark.django_db


def test_only_current_labels_are_counted(make_trajectory, reviewer, lead, taxonomy):
    first, second = taxonomy[0], taxonomy[1]
    t = make_trajectory()
    judge = ModelEndpoint.objects.create(name="judge", backend="openai", model="m")
    flaw_label_set(trajectory=t, step_index=0, flaw_type=first, by_user=reviewer)
    flaw_label_set(trajectory=t, step_index=0, flaw_type=second, by_user=reviewer)  # relabelled
    flaw_label_set(trajectory=t, step_index=1, flaw_type=first, by_user=lead)
    flaw_label_set(trajectory=t, step_index=1, flaw_type=None, by_user=lead)  # cleared
    flaw_label_set(trajectory=t, step_index=2, flaw_type=first, by_endpoint=judge)
    flaw_label_set(trajectory=t, step_index=2, flaw_type=second, by_endpoint=judge)  # re-judged
    flaw_label_set(trajectory=t, step_index=3, flaw_type=first, by_user=lead)  # stands
    assert FlawLabel.objects.filter(trajectory=t).count() == 7

    standing = current_flaw_labels(Trajectory.objects.filter(pk=t.pk))
    got = sorted((f.step_index, f.source, f.flaw_type.code) for f in standing)
    assert got == [(0, "human", second.code), (2, "model", second.code),
                   (3, "human", first.code)]  # fmt: skip

    chart = str(trajectory_charts(Trajectory.objects.filter(pk=t.pk))["flaw_chart"])
    assert f"<title>{second.name}: 2</title>" in chart
    assert f"<title>{first.name}: 1</title>" in chart
