"""The curation app's forms: problem uploads, review (labels, hints, decisions) and batches."""

from __future__ import annotations

from django import forms
from django.conf import settings

from .engine.answer_rules import PRESETS, RULES
from .models import AnswerStatus, Batch, Benchmark, FlawType, ModelEndpoint, ReviewDecision

# The largest value an IntegerField column holds on every database (PostgreSQL's integer).
INT_MAX = 2**31 - 1


def as_int(raw: str | None, *, low: int = 0, high: int = INT_MAX) -> int | None:
    """A whole number from a query or form value, or None for anything else: not decimal
    digits (``²``, which ``isdigit()`` accepts and ``int()`` refuses), or outside ``low``..``high``
    (digits beyond any column, or beyond the 4,300 that ``int()`` reads at all)."""
    raw = (raw or "").strip()
    if not raw.isdecimal() or len(raw) > len(str(high)):
        return None
    value = int(raw)
    return value if low <= value <= high else None


class ProblemUploadForm(forms.Form):
    file = forms.FileField(
        help_text="JSONL (one problem per line) or a JSON array; UTF-8.",
        widget=forms.ClearableFileInput(attrs={"accept": ".jsonl,.json,.ndjson"}),
    )
    benchmark = forms.CharField(
        max_length=100,
        required=False,
        help_text="Benchmark name for every record; by default, each record's own "
        "'benchmark' field, else the file name.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.PROBLEM_UPLOAD_MAX_BYTES:
            limit = settings.PROBLEM_UPLOAD_MAX_BYTES // (1024 * 1024)
            raise forms.ValidationError(f"The file is larger than {limit} MB.")
        return upload


class ImportConfirmForm(forms.Form):
    benchmark = forms.CharField(max_length=100, required=False, widget=forms.HiddenInput)


class FlawLabelForm(forms.Form):
    flaw_type = forms.ModelChoiceField(
        queryset=FlawType.objects.filter(active=True).select_related("category"),
        required=False,
        empty_label="No flaw (clear)",
    )
    note = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    reason = forms.CharField(required=False, max_length=2000)


class HintForm(forms.Form):
    step = forms.IntegerField(min_value=0, max_value=INT_MAX)
    char_offset = forms.IntegerField(min_value=0, max_value=INT_MAX, required=False)
    text = forms.CharField(max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))
    flaw_type = forms.ModelChoiceField(
        queryset=FlawType.objects.filter(active=True), required=False
    )
    diagnosis = forms.IntegerField(
        min_value=1, max_value=INT_MAX, required=False, widget=forms.HiddenInput
    )
    # A hint that states the reference value is inserted only with this ticked (recorded).
    confirm_reveal = forms.BooleanField(required=False)


class GenerateForm(forms.Form):
    """A lead's "solve this problem" on the problem page: which Reasoner, how many samples."""

    endpoint = forms.ModelChoiceField(
        queryset=ModelEndpoint.objects.filter(active=True, role__in=["reasoner", "both"]),
        required=False,
    )
    samples = forms.IntegerField(min_value=1, max_value=16, required=False)


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=ReviewDecision.Decision.choices)
    reason = forms.CharField(required=False, max_length=2000)
    # Approving over flaw labels or prompt text the model copied needs this ticked (recorded).
    confirm = forms.BooleanField(required=False)


SPLIT_CHOICES = [
    ("train", "train problems"),
    ("dev", "dev problems"),
    ("test", "test problems"),
    ("all", "every split"),
]


def splits_chosen(value: str | None, default: str = "train") -> list[str]:
    """The splits a form's choice names (empty: ``default``; "all": every split, [])."""
    value = value or default
    return [] if value == "all" else [value]


class BatchForm(forms.Form):
    name = forms.CharField(max_length=200)
    benchmarks = forms.ModelMultipleChoiceField(
        queryset=Benchmark.objects.all(), to_field_name="slug"
    )
    answer_status = forms.ChoiceField(
        choices=[("", "Any answer"), *AnswerStatus.choices], required=False
    )
    split = forms.ChoiceField(
        choices=SPLIT_CHOICES, required=False, initial="train",
        help_text="Golden data comes from train problems: dev and test stay unseen.",
    )  # fmt: skip
    sample_size = forms.IntegerField(
        min_value=1, max_value=1_000_000, required=False, help_text="Empty: all."
    )
    seed = forms.IntegerField(min_value=0, max_value=INT_MAX, initial=0)
    reasoner = forms.ModelChoiceField(
        queryset=ModelEndpoint.objects.filter(active=True, role__in=["reasoner", "both"])
    )
    intervener = forms.ModelChoiceField(
        queryset=ModelEndpoint.objects.filter(active=True, role__in=["intervener", "both"])
    )
    # Initial values: the model's defaults (Batch.DEFAULTS), what a batch runs with anyway.
    samples_per_problem = forms.IntegerField(
        min_value=1, max_value=64, initial=Batch.DEFAULTS["samples_per_problem"]
    )
    max_interventions = forms.IntegerField(
        min_value=0, max_value=20, initial=Batch.DEFAULTS["max_interventions"]
    )
    answer_rule = forms.ChoiceField(
        choices=[(name, f"{name}: {RULES[name].description}") for name in ("relative", *PRESETS)],
        initial=Batch.DEFAULTS["answer_rule"],
        help_text="The golden filter's answer rule (see curation/engine/answer_rules.py).",
    )
    # Bounded: a tolerance of 1e308 would judge every answer correct.
    answer_tolerance = forms.FloatField(
        min_value=0,
        max_value=0.1,
        initial=Batch.DEFAULTS["answer_tolerance"],
        help_text="Relative (or absolute, per rule) tolerance, at most 0.1.",
    )
    max_code_calls = forms.IntegerField(min_value=1, max_value=100, required=False)
    max_new_tokens = forms.IntegerField(min_value=64, max_value=65536, required=False)
    concurrency = forms.IntegerField(
        min_value=1,
        max_value=512,
        initial=Batch.DEFAULTS["concurrency"],
        help_text="Items advanced together per round.",
    )
    intervener_mode = forms.ChoiceField(
        choices=[
            ("both", "Checks and LLM: the checks' findings are facts for the LLM; an earlier "
             "finding wins"),
            ("checks", "Checks only: no LLM is asked"),
            ("llm", "LLM only: no check runs"),
        ],
        initial="both",
        required=False,
        help_text="Who judges each trajectory: checks over the execution record, the "
        "Intervener LLM, or both (curation/engine/checks.py).",
    )  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The default endpoints are preselected, as on the generate form: a newcomer's first
        # batch runs on the embedded model without choosing anything.
        from .services.endpoints import intervener_default, reasoner_default

        if "reasoner" not in self.initial:
            self.initial["reasoner"] = reasoner_default()
        if "intervener" not in self.initial:
            self.initial["intervener"] = intervener_default()

    CONFIG_FIELDS = (
        "samples_per_problem", "max_interventions", "answer_rule", "answer_tolerance",
        "max_code_calls", "max_new_tokens", "concurrency", "intervener_mode",
    )  # fmt: skip

    def config(self) -> dict:
        data = self.cleaned_data
        return {k: data[k] for k in self.CONFIG_FIELDS if data.get(k) not in (None, "")}

    def selection(self) -> dict:
        data = self.cleaned_data
        return {
            "benchmarks": [b.slug for b in data["benchmarks"]],
            "answer_status": data["answer_status"],
            "splits": splits_chosen(data.get("split")),
            "sample_size": data["sample_size"],
            "seed": data["seed"],
        }
