"""Model endpoints: where a Reasoner or an Intervener runs, as data an admin can change."""

from __future__ import annotations

from django.db import models


class ModelEndpoint(models.Model):
    class Role(models.TextChoices):
        REASONER = "reasoner", "Reasoner"
        INTERVENER = "intervener", "Intervener"
        BOTH = "both", "Reasoner and Intervener"

    class Backend(models.TextChoices):
        TRANSFORMERS = "transformers", "transformers (local path)"
        OPENAI = "openai", "OpenAI-compatible server (vLLM, llama.cpp, SGLang, cloud)"
        VLLM = "vllm", "vLLM offline engine (GPU worker)"
        SCRIPTED = "scripted", "Scripted stand-in (tests and benchmarks only)"

    name = models.CharField(max_length=100, unique=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.BOTH)
    backend = models.CharField(max_length=20, choices=Backend.choices)
    model = models.CharField(max_length=500, help_text="Local path, or the served model name.")
    base_url = models.CharField(max_length=500, blank=True, help_text="For OpenAI-compatible.")
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the environment variable that holds the API key (never the key).",
    )
    tokenizer = models.CharField(
        max_length=500, blank=True, help_text="Local tokenizer path, when the server gives none."
    )
    chat_template = models.TextField(blank=True, help_text="Jinja override; empty: the model's.")
    sampling = models.JSONField(default=dict, blank=True)
    context_length = models.PositiveIntegerField(default=32768)
    concurrency = models.PositiveIntegerField(default=8, help_text="Requests in flight at most.")
    extra = models.JSONField(default=dict, blank=True, help_text="Backend-specific options.")
    prompts = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "Overrides of the engine's prompts (curation/engine/prompts.py), any of: "
            "system_prompt, worked_example ({problem, solution}; empty: none), "
            "intervener_system, hint_templates ({flaw code: hint}), checks ({check name: "
            "{enabled, hint, flaw_type}}: curation/engine/checks.py). Unset keys keep the "
            "defaults."
        ),
    )
    is_default_reasoner = models.BooleanField(default=False)
    is_default_intervener = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """An ``api_key_env`` off the allow-list is refused, and an admin's ``checks`` override
        with the reason when it names an unknown check or field (the Intervener and the step
        view would otherwise not use it)."""
        from django.core.exceptions import ValidationError

        from ..engine.backends.api_keys import api_key_env_error
        from ..engine.checks import check_specs

        if refused := api_key_env_error(self.api_key_env):
            raise ValidationError({"api_key_env": refused})
        checks = (self.prompts or {}).get("checks") if isinstance(self.prompts, dict) else None
        if checks is None:
            return
        if not isinstance(checks, dict):
            raise ValidationError({"prompts": "checks must be an object: {check name: {...}}"})
        try:
            check_specs(checks)
        except ValueError as exc:
            raise ValidationError({"prompts": f"checks: {exc}"}) from None

    @property
    def can_reason(self) -> bool:
        return self.role in (self.Role.REASONER, self.Role.BOTH)

    @property
    def can_intervene(self) -> bool:
        return self.role in (self.Role.INTERVENER, self.Role.BOTH)

    def spec(self) -> dict:
        """The plain dict ``curation.engine.load_backend`` takes (no Django in the engine)."""
        return {
            "name": self.name,
            "backend": self.backend,
            "model": self.model,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "tokenizer": self.tokenizer,
            "chat_template": self.chat_template,
            "sampling": dict(self.sampling),
            "context_length": self.context_length,
            "concurrency": self.concurrency,
            **self.extra,
        }
