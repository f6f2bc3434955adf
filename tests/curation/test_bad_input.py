"""Input that deserves a message, not a server error: digits that int() cannot read, and NUL
characters that PostgreSQL cannot store (run on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import Comment

pytestmark = pytest.mark.django_db


def test_a_superscript_digit_where_a_number_is_expected_is_read_as_no_number(
    client_for, reviewer, make_trajectory
):
    # "²".isdigit() is true but int("²") raises: both views used to answer 500.
    t = make_trajectory()
    client = client_for(reviewer)
    response = client.post(
        reverse("curation-comment-create", args=[t.pk]), {"step": "²", "text": "Overall ok"}
    )
    assert response.status_code == 302
    assert Comment.objects.get().step_index is None
    response = client.post(reverse("curation-review-next"), {"current": "²"})
    assert response.status_code == 302


def test_a_nul_character_in_a_form_is_refused_with_a_message_and_nothing_saved(
    client_for, reviewer, make_trajectory
):
    t = make_trajectory()
    client = client_for(reviewer)
    response = client.post(
        reverse("curation-comment-create", args=[t.pk]), {"step": "1", "text": "bad\x00text"}
    )
    assert response.status_code == 400
    assert "NUL character" in response.content.decode()
    assert not Comment.objects.exists()
    response = client.get(reverse("curation-review-queue"), {"benchmark": "a\x00b"})
    assert response.status_code == 400


HUGE = "9" * 30  # decimal, but beyond any integer column
ENORMOUS = "9" * 5000  # beyond what int() reads at all (Python's 4,300-digit limit)


@pytest.mark.parametrize("number", [HUGE, ENORMOUS])
def test_a_number_too_large_for_its_column_is_read_as_no_number(
    client_for, reviewer, make_trajectory, number
):
    t = make_trajectory()
    client = client_for(reviewer)
    response = client.post(
        reverse("curation-comment-create", args=[t.pk]), {"step": number, "text": "Overall ok"}
    )
    assert response.status_code == 302
    assert Comment.objects.get().step_index is None
    assert client.post(reverse("curation-review-next"), {"current": number}).status_code == 302


@pytest.mark.parametrize("number", [HUGE, ENORMOUS])
def test_lead_actions_with_a_huge_number_answer_with_a_message(
    client_for, lead, make_trajectory, number
):
    from curation.models import Batch, BatchReviewPolicy, ModelEndpoint

    t = make_trajectory()
    client = client_for(lead)
    model = ModelEndpoint.objects.create(name="m", backend="openai", model="m")
    batch = Batch.objects.create(name="b", created_by=lead, reasoner=model, intervener=model)
    response = client.post(
        reverse("curation-batch-review-policy", args=[batch.pk]),
        {"required_approvals": number}, follow=True,
    )  # fmt: skip
    assert response.status_code == 200
    assert "between 1 and 10" in response.content.decode()
    assert not BatchReviewPolicy.objects.exists()
    response = client.post(
        reverse("curation-review-assign"),
        {"reviewer": lead.pk, "trajectory": [number, str(t.pk)]},
    )
    assert response.status_code == 302
    for reviewer in (number, "abc", "²"):
        response = client.post(
            reverse("curation-review-assign"), {"reviewer": reviewer, "trajectory": [t.pk]},
            follow=True,
        )  # fmt: skip
        assert "Choose a reviewer" in response.content.decode()
    response = client.get(reverse("curation-review-export"), {"batch": number})
    assert response.status_code == 400 and b"batch must be a batch id" in response.content


@pytest.mark.parametrize("samples", ["abc", "²", "1e3", ENORMOUS, "99"])
def test_generating_with_a_bad_number_of_samples_is_refused_with_a_message(
    client_for, lead, problem, samples
):
    from curation.models import Job, ModelEndpoint

    ModelEndpoint.objects.create(name="m", backend="openai", model="m", role="reasoner")
    response = client_for(lead).post(
        reverse("curation-problem-generate", args=[problem.pk]), {"samples": samples},
        follow=True,
    )  # fmt: skip
    assert response.status_code == 200
    assert "samples" in response.content.decode().lower()
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sample_size", "10000000000"),
        ("seed", "10000000000"),
        ("seed", "-1"),
        ("samples_per_problem", "65"),
        ("max_interventions", "21"),
        ("answer_tolerance", "1e308"),
        ("answer_tolerance", "nan"),
        ("max_new_tokens", "abc"),
        ("concurrency", "²"),
    ],
)
def test_batch_settings_out_of_bounds_are_form_errors(client_for, lead, field, value):
    from curation.models import Batch

    data = {"name": "b", "samples_per_problem": 1, "max_interventions": 0, "seed": 0,
            "answer_rule": "relative", "answer_tolerance": 1e-6, "concurrency": 4,
            field: value}  # fmt: skip
    response = client_for(lead).post(reverse("curation-batch-new"), data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not Batch.objects.exists()


def test_every_number_field_of_the_curation_forms_has_both_limits():
    from django import forms

    from curation import forms as curation_forms

    classes = [c for c in vars(curation_forms).values()
               if isinstance(c, type) and issubclass(c, forms.Form)]  # fmt: skip
    checked = 0
    for form in classes:
        for name, field in form.base_fields.items():
            if isinstance(field, forms.IntegerField | forms.FloatField):
                assert field.min_value is not None and field.max_value is not None, (form, name)
                checked += 1
    assert checked >= 10
