"""One form per kind of run. Each maps its fields to the entry point's argument names
(``ARGUMENTS``); an empty field keeps the preset's value."""

from __future__ import annotations

from django import forms
from django.forms.models import ModelChoiceIterator

from curation.engine.answer_rules import PRESETS, RULES
from curation.forms import INT_MAX, SPLIT_CHOICES, splits_chosen
from curation.models import Benchmark, DatasetVersion, ModelEndpoint

from .selectors import embedded_trainable
from .services.configs import (
    DEFAULT_PRESET,
    ConfigError,
    accelerate_configs,
    endpoint_model_args,
    overrides_parse,
    presets,
)
from .services.runs import trainable_endpoint_ensure

# Every number has both limits: a learning rate of 1e308 or a step count beyond the run's
# integer column is a form error, not a crashed script or a server error.
MAX_STEPS = 10_000_000
MAX_TOKENS = 131_072


REWARD_CHOICES = [
    ("correctness", "correctness: 1 when the answer is within tolerance (the paper's reward)"),
    ("all_failed_penalty", "CoRT: −0.1 when every code run of a response failed"),
    ("code_call_penalty", "SEM-like: a penalty per code call beyond a budget"),
    ("calibration", "RLCR: correctness minus the Brier term of the stated confidence"),
]


class _WithTrainable(ModelChoiceIterator):
    def __iter__(self):
        yield from super().__iter__()
        if self.field.trainable is not None:
            yield (BaseModelField.TRAINABLE, f"{TRAINABLE_LABEL} ({self.field.trainable})")

    def __len__(self) -> int:
        return super().__len__() + (self.field.trainable is not None)


TRAINABLE_LABEL = "The embedded model, trainable weights"


class BaseModelField(forms.ModelChoiceField):
    """The endpoints, plus the embedded model's trainable weights while no endpoint names
    them yet (``trainable``: their folder); choosing those registers their endpoint."""

    TRAINABLE = "embedded-trainable"
    iterator = _WithTrainable

    def __init__(self, *args, **kwargs) -> None:
        self.trainable = None
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        if value == self.TRAINABLE and self.trainable is not None:
            return trainable_endpoint_ensure(folder=self.trainable)
        return super().to_python(value)


class RunForm(forms.Form):
    KIND = ""
    ARGUMENTS: tuple[str, ...] = ()

    name = forms.CharField(max_length=200)
    model = BaseModelField(
        queryset=ModelEndpoint.objects.filter(active=True),
        help_text="The starting weights (a registered checkpoint is an endpoint too).",
    )
    preset = forms.ChoiceField(help_text="A YAML file in training/scripts/configs/.")
    overrides = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        required=False,
        help_text="Any other argument of the script, one 'name: value' per line (YAML).",
    )
    accelerate_config = forms.ChoiceField(
        required=False, help_text="Multi-GPU: an accelerate config in training/scripts/accelerate/."
    )
    num_processes = forms.IntegerField(
        min_value=1, max_value=64, initial=1, help_text="Processes (GPUs) under accelerate."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The kind's own fields after the common head; free-form and scale-out options last.
        order = [k for k in self.fields if k not in LAST] + [k for k in LAST if k in self.fields]
        self.order_fields(order)
        self.fields["preset"].choices = [(p, p) for p in presets(self.KIND)]
        self.fields["preset"].initial = DEFAULT_PRESET[self.KIND]
        self.fields["accelerate_config"].choices = [("", "none (one process)")] + [
            (c, c) for c in accelerate_configs()
        ]
        if self.KIND == "evaluate":
            del self.fields["accelerate_config"], self.fields["num_processes"]
        else:
            self._offer_trainable_weights()

    def _offer_trainable_weights(self) -> None:
        """Training needs Hugging Face weights: offer the embedded model's once they are made,
        and say how to make them while they are not."""
        embedded = embedded_trainable()
        if embedded is None:
            return
        field = self.fields["model"]
        if not embedded["made"]:
            field.help_text += (
                " The embedded model can be trained once its trainable weights are made: "
                f"run {embedded['command']} (it needs about 6 bytes of memory per parameter)."
            )
        elif not ModelEndpoint.objects.filter(model=str(embedded["folder"])).exists():
            field.trainable = embedded["folder"]
        self._embedded = embedded

    def clean_model(self):
        """A model training cannot start from is this field's error, so the form marks it."""
        model = self.cleaned_data.get("model")
        if model is None or self.KIND == "evaluate":
            return model
        try:
            endpoint_model_args(self.KIND, model.spec())
        except ConfigError as exc:
            message = str(exc)
            embedded = getattr(self, "_embedded", None)
            if embedded and embedded["made"]:
                message += f"; choose “{TRAINABLE_LABEL}”"
            elif embedded:
                message += (
                    "; to train the embedded model, make its trainable weights: "
                    f"{embedded['command']}"
                )
            raise forms.ValidationError(message) from None
        return model

    def clean_overrides(self) -> dict:
        try:
            return overrides_parse(self.cleaned_data.get("overrides") or "", self.KIND)
        except ConfigError as exc:
            raise forms.ValidationError(str(exc)) from None

    def arguments(self) -> dict:
        """The form's script arguments (None: keep the preset's value)."""
        data = self.cleaned_data
        return {k: self._value(k, data.get(k)) for k in self.ARGUMENTS}

    def _value(self, key: str, value):
        if value in ("", [], None):
            return None
        return value

    def problem_selection_args(self) -> dict | None:
        return None

    def create_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "kind": self.KIND,
            "name": data["name"],
            "model": data["model"],
            "preset": data["preset"],
            "fields": self.arguments(),
            "overrides": data["overrides"],
            "dataset": data.get("dataset"),
            "accelerate_config": data.get("accelerate_config") or "",
            "num_processes": data.get("num_processes") or 1,
        }


class ProblemsMixin(forms.Form):
    benchmarks = forms.ModelMultipleChoiceField(
        queryset=Benchmark.objects.all(), to_field_name="slug"
    )
    per_benchmark = forms.IntegerField(
        min_value=1, max_value=1_000_000, required=False,
        help_text="Problems per benchmark (seeded sample); empty: all.",
    )  # fmt: skip
    seed = forms.IntegerField(min_value=0, max_value=INT_MAX, initial=0)
    split = forms.ChoiceField(choices=SPLIT_CHOICES, required=False)
    # GRPO trains: it draws from train unless told otherwise. An evaluation draws from every
    # split by default (the paper's benchmarks are whole) and records its overlap with what
    # the model was trained on.
    DEFAULT_SPLIT = "train"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["split"].initial = self.DEFAULT_SPLIT

    def problem_selection_args(self) -> dict:
        data = self.cleaned_data
        return {
            "benchmarks": [b.slug for b in data["benchmarks"]],
            "per_benchmark": data.get("per_benchmark"),
            "seed": data.get("seed") or 0,
            "splits": splits_chosen(data.get("split"), self.DEFAULT_SPLIT),
        }


LAST = ("overrides", "accelerate_config", "num_processes")


class SFTForm(RunForm):
    KIND = "sft"
    field_order = ("name", "model", "dataset", "preset")
    ARGUMENTS = ("use_peft", "iw_sft", "learning_rate", "num_train_epochs", "max_steps")

    dataset = forms.ModelChoiceField(
        queryset=DatasetVersion.objects.all(),
        help_text="A frozen golden dataset (its token-level export; hints as the dataset chose).",
    )
    use_peft = forms.BooleanField(required=False, label="LoRA (peft) instead of full fine-tuning")
    iw_sft = forms.BooleanField(required=False, label="Importance-weighted SFT (iw-SFT)")
    learning_rate = forms.FloatField(min_value=0, max_value=1, required=False)
    num_train_epochs = forms.FloatField(min_value=0, max_value=1000, required=False)
    max_steps = forms.IntegerField(
        min_value=1, max_value=MAX_STEPS, required=False, help_text="Overrides epochs."
    )

    def _value(self, key, value):
        if key in ("use_peft", "iw_sft"):
            return True if value else None  # unticked: the preset decides
        return super()._value(key, value)


class GRPOForm(ProblemsMixin, RunForm):
    KIND = "grpo"
    field_order = ("name", "model", "benchmarks", "split", "per_benchmark", "seed", "preset")
    ARGUMENTS = (
        "reward_funcs", "learning_rate", "max_steps", "num_generations",
        "max_completion_length", "max_code_calls", "use_peft",
    )  # fmt: skip

    reward_funcs = forms.MultipleChoiceField(
        choices=REWARD_CHOICES, widget=forms.CheckboxSelectMultiple, required=False,
        help_text="Summed. None ticked: the preset's.",
    )  # fmt: skip
    learning_rate = forms.FloatField(min_value=0, max_value=1, required=False)
    max_steps = forms.IntegerField(min_value=1, max_value=MAX_STEPS, required=False)
    num_generations = forms.IntegerField(
        min_value=2, max_value=256, required=False, help_text="Group size."
    )
    max_completion_length = forms.IntegerField(
        min_value=16, max_value=MAX_TOKENS, required=False,
        help_text="Token budget per rollout, interpreter included.",
    )  # fmt: skip
    max_code_calls = forms.IntegerField(min_value=0, max_value=100, required=False)
    use_peft = forms.BooleanField(required=False, label="LoRA (peft)")

    def _value(self, key, value):
        if key == "use_peft":
            return True if value else None
        return super()._value(key, value)


class EvaluateForm(ProblemsMixin, RunForm):
    KIND = "evaluate"
    DEFAULT_SPLIT = "all"
    field_order = ("name", "model", "benchmarks", "split", "per_benchmark", "seed", "preset")
    ARGUMENTS = (
        "k", "temperature", "max_new_tokens", "max_code_calls", "rule", "tolerance", "mode",
        "ask_confidence",
    )  # fmt: skip

    k = forms.IntegerField(
        min_value=1, max_value=64, required=False, help_text="Samples per problem."
    )
    rule = forms.ChoiceField(
        required=False,
        choices=[
            ("", "the preset's"),
            *((name, f"{name}: {RULES[name].description}") for name in PRESETS),
        ],
        help_text="How an answer is matched to the reference (the public evaluators' rules).",
    )
    tolerance = forms.FloatField(
        min_value=0, max_value=0.1, required=False,
        help_text="ε, for storm-paper (the others fix theirs), at most 0.1.",
    )  # fmt: skip
    mode = forms.ChoiceField(
        required=False,
        choices=[
            ("", "the preset's"),
            ("mean", "pass@1: mean over k samples"),
            ("any", "any of k samples correct (CoRT's and ORLM's pass@k)"),
        ],
    )
    ask_confidence = forms.NullBooleanField(
        required=False,
        widget=forms.Select(
            choices=[("unknown", "the preset's"), ("true", "yes"), ("false", "no")]
        ),
        help_text="RLCR: ask for <confidence>q</confidence> after the answer (for calibration).",
    )
    temperature = forms.FloatField(min_value=0, max_value=2, required=False)
    max_new_tokens = forms.IntegerField(min_value=16, max_value=MAX_TOKENS, required=False)
    max_code_calls = forms.IntegerField(min_value=0, max_value=100, required=False)


FORMS = {"sft": SFTForm, "grpo": GRPOForm, "evaluate": EvaluateForm}
