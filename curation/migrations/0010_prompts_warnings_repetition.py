"""Per-endpoint prompt overrides, the trajectory's route warnings and sandbox objective, the
Intervener's quote and a hint's cut note, and the "repeated failing code" flaw type (the finish
reason ``repetition`` names it)."""

from __future__ import annotations

from django.db import migrations, models


def add_flaw_type(apps, schema_editor):
    FlawCategory = apps.get_model("curation", "FlawCategory")
    FlawType = apps.get_model("curation", "FlawType")
    category = FlawCategory.objects.filter(code="computation").first()
    if category is None:
        return
    FlawType.objects.get_or_create(
        code="repeated_failing_code",
        defaults={
            "name": "Repeated failing code",
            "category": category,
            "description": "Runs the same failing code again and again without fixing the error.",
            "hint_template": "Wait, I keep running the same code and it fails the same way; let "
            "me read the error and fix that line first.",
            "order": 8,
        },
    )


def remove_flaw_type(apps, schema_editor):
    apps.get_model("curation", "FlawType").objects.filter(code="repeated_failing_code").delete()


class Migration(migrations.Migration):
    dependencies = [("curation", "0009_problem_answer_versions_and_flags")]

    operations = [
        migrations.AddField(
            model_name="modelendpoint",
            name="prompts",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text=(
                    "Overrides of the engine's prompts (curation/engine/prompts.py), any of: "
                    "system_prompt, worked_example ({problem, solution}; empty: none), "
                    "intervener_system, hint_templates ({flaw code: hint}). Unset keys keep "
                    "the defaults."
                ),
            ),
        ),
        migrations.AddField(
            model_name="trajectory",
            name="sandbox_objective",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="trajectory",
            name="warnings",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="diagnosis",
            name="quote",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="hint",
            name="cut_note",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.RunPython(add_flaw_type, remove_flaw_type),
    ]
