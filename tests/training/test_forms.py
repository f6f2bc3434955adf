"""Run forms have lower and upper limits on every number and refuse non-numbers with a form
error (a learning rate of 1e308 or a max_steps beyond the run's integer column never reaches a
script or the database)."""

from __future__ import annotations

import pytest

from training.forms import FORMS

pytestmark = pytest.mark.django_db

OUT_OF_BOUNDS = [
    ("sft", "learning_rate", "1e308"),
    ("sft", "learning_rate", "nan"),
    ("sft", "num_train_epochs", "1e9"),
    ("sft", "max_steps", "10000000000"),
    ("sft", "max_steps", "²"),
    ("sft", "num_processes", "65"),
    ("grpo", "learning_rate", "2"),
    ("grpo", "max_steps", "0"),
    ("grpo", "num_generations", "100000"),
    ("grpo", "max_completion_length", "100000000"),
    ("grpo", "max_code_calls", "1000"),
    ("grpo", "per_benchmark", "10000000000"),
    ("grpo", "seed", "-1"),
    ("grpo", "seed", "10000000000"),
    ("evaluate", "tolerance", "1e308"),
    ("evaluate", "temperature", "100"),
    ("evaluate", "max_new_tokens", "10000000"),
    ("evaluate", "max_code_calls", "abc"),
    ("evaluate", "k", "65"),
]


@pytest.mark.parametrize(("kind", "field", "value"), OUT_OF_BOUNDS)
def test_a_number_out_of_bounds_or_not_a_number_is_a_form_error(kind, field, value):
    form = FORMS[kind]({field: value})
    assert not form.is_valid()
    assert field in form.errors, form.errors


@pytest.mark.parametrize("kind", sorted(FORMS))
def test_every_number_field_has_both_limits(kind):
    from django import forms

    for name, field in FORMS[kind]().fields.items():
        if isinstance(field, forms.IntegerField | forms.FloatField):
            assert field.min_value is not None and field.max_value is not None, (kind, name)
