"""Judge one answer against one reference under a named answer rule, for scripts and for
checking by hand. Prints ``correct`` or ``incorrect`` and the error; exits 0 either way (a bad
rule or reference is a usage error, exit 1)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from curation.engine.answer_rules import RULES, judge_text


class Command(BaseCommand):
    help = "Judge an answer (the text inside \\boxed{}) against a reference under an answer rule."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rule", required=True, help=f"one of: {', '.join(RULES)}")
        parser.add_argument("--answer", required=True, help="the model's answer, as boxed")
        parser.add_argument(
            "--reference", required=True, help="the optimal value, or none for no optimal solution"
        )
        parser.add_argument(
            "--tolerance", type=float, default=None, help="ε, for rules where it is a setting"
        )

    def handle(self, *args, rule, answer, reference, tolerance, **options) -> None:
        try:
            result = judge_text(rule, answer, reference, tolerance=tolerance)
            label = RULES[rule].label(tolerance)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        error = "n/a" if result.error is None else f"{result.error:.6g}"
        verdict = "correct" if result.correct else "incorrect"
        self.stdout.write(f"{verdict}\terror={error}\trule={label}\t{result.reason}")
