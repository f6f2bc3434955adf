from __future__ import annotations

from django import forms

from .engine.answer_rules import PRESETS, RULES
from .models import AnswerStatus, Benchmark, ModelEndpoint


class BatchForm(forms.Form):
    name = forms.CharField(max_length=200)
    benchmarks = forms.ModelMultipleChoiceField(
        queryset=Benchmark.objects.all(), to_field_name="slug"
    )
    answer_status = forms.ChoiceField(
        choices=[("", "Any answer"), *AnswerStatus.choices], required=False
    )
    sample_size = forms.IntegerField(min_value=1, required=False, help_text="Empty: all.")
    seed = forms.IntegerField(initial=0)
    reasoner = forms.ModelChoiceField(
        queryset=ModelEndpoint.objects.filter(active=True, role__in=["reasoner", "both"])
    )
    intervener = forms.ModelChoiceField(
        queryset=ModelEndpoint.objects.filter(active=True, role__in=["intervener", "both"])
    )
    samples_per_problem = forms.IntegerField(min_value=1, max_value=64, initial=1)
    max_interventions = forms.IntegerField(min_value=0, max_value=20, initial=5)
    answer_rule = forms.ChoiceField(
        choices=[(name, f"{name}: {RULES[name].description}") for name in ("relative", *PRESETS)],
        help_text="The golden filter's answer rule (see curation/engine/answer_rules.py).",
    )
    answer_tolerance = forms.FloatField(min_value=0, initial=1e-6)
    max_code_calls = forms.IntegerField(min_value=1, max_value=100, required=False)
    max_new_tokens = forms.IntegerField(min_value=64, required=False)
    concurrency = forms.IntegerField(
        min_value=1, max_value=512, initial=8, help_text="Items advanced together per round."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The default endpoints are preselected, as on the generate form: a newcomer's first
        # batch runs on the embedded model without choosing anything.
        from .services.generation import intervener_default, reasoner_default

        if "reasoner" not in self.initial:
            self.initial["reasoner"] = reasoner_default()
        if "intervener" not in self.initial:
            self.initial["intervener"] = intervener_default()

    CONFIG_FIELDS = (
        "samples_per_problem", "max_interventions", "answer_rule", "answer_tolerance",
        "max_code_calls", "max_new_tokens", "concurrency",
    )  # fmt: skip

    def config(self) -> dict:
        data = self.cleaned_data
        return {k: data[k] for k in self.CONFIG_FIELDS if data.get(k) not in (None, "")}

    def selection(self) -> dict:
        data = self.cleaned_data
        return {
            "benchmarks": [b.slug for b in data["benchmarks"]],
            "answer_status": data["answer_status"],
            "sample_size": data["sample_size"],
            "seed": data["seed"],
        }
