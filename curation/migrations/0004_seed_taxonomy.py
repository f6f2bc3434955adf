"""Seed the flaw taxonomy: CALM's two categories and the seven types of ../shared/CALM.md.

The category split is the paper's; the type names are an inferred reading, which is why they
are data (editable by admins) and not code.
"""

from __future__ import annotations

from django.db import migrations

CATEGORIES = [
    ("computation", "Computation-driven", 1),
    ("domain", "Domain knowledge", 2),
]
TYPES = [
    ("manual_computation", "Manual computation", "computation",
     "Does arithmetic or enumerates by hand instead of running code or a solver.",
     "It looks tedious, and we can use python code to simplify the reasoning.\n```python\n"),
    ("delayed_code_use", "Delayed code use", "computation",
     "Reasons at length before finally writing code.",
     "Instead of reasoning further by hand, I should write the model in Pyomo and solve it now."
     "\n```python\n"),
    ("code_result_distrust", "Code result distrust", "computation",
     "Re-checks a correct solver result by hand, or ignores it.",
     "We don't need to doubt the accuracy of python calculations."),
    ("broken_code", "Fragmented or broken code", "computation",
     "Code that does not run, or pieces that never form a whole model.",
     "The code failed; I should write one complete Pyomo model with all variables, constraints "
     "and the objective, solve it with appsi_highs and print the objective."),
    ("incorrect_formulation", "Incorrect formulation", "domain",
     "Wrong objective, variables or sense.",
     "Wait, let me re-read the question: is the objective to maximize or minimize, and of what?"),
    ("constraint_error", "Missing or wrong constraint", "domain",
     "A constraint left out or stated wrongly.",
     "Wait, I have not modelled every requirement in the problem; let me list the constraints "
     "again and check each one is in the model."),
    ("variable_domain", "Wrong variable domain", "domain",
     "LP where integers are needed, or the reverse; wrong bounds.",
     "Wait, these quantities must be whole numbers; I should declare the variables as integers "
     "and re-solve."),
]  # fmt: skip


def seed(apps, schema_editor):
    FlawCategory = apps.get_model("curation", "FlawCategory")
    FlawType = apps.get_model("curation", "FlawType")
    categories = {}
    for code, name, order in CATEGORIES:
        categories[code], _ = FlawCategory.objects.get_or_create(
            code=code, defaults={"name": name, "order": order}
        )
    for order, (code, name, category, description, hint) in enumerate(TYPES, start=1):
        FlawType.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "category": categories[category],
                "description": description,
                "hint_template": hint,
                "order": order,
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("curation", "FlawType").objects.filter(code__in=[t[0] for t in TYPES]).delete()
    apps.get_model("curation", "FlawCategory").objects.filter(
        code__in=[c[0] for c in CATEGORIES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("curation", "0003_trajectories_reviews")]
    operations = [migrations.RunPython(seed, unseed)]
