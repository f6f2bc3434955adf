"""Judge one answer against one reference under a named answer rule, for scripts and for
checking by hand. Prints ``correct`` or ``incorrect`` and the error; exits 0 either way (a bad
rule or reference is a usage error, exit 1).

``--answer`` takes the text inside ``\\boxed{}``; ``--response FILE`` (``-``: standard input)
takes a whole Reasoner response and first decides what it answered, the way the engine does
(``extract_final_answer``: the last ``\\boxed{}`` after ``</think>``, or in the final step when
the thought never closed); a response that states no answer is judged ``incorrect``."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from curation.engine.answer_rules import RULES, judge_text
from curation.engine.answers import extract_final_answer


class Command(BaseCommand):
    help = (
        "Judge an answer (the text inside \\boxed{}, or a whole response with --response) "
        "against a reference under an answer rule."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rule", required=True, help=f"one of: {', '.join(RULES)}")
        given = parser.add_mutually_exclusive_group(required=True)
        given.add_argument("--answer", help="the model's answer, as boxed")
        given.add_argument(
            "--response",
            metavar="FILE",
            help="a whole response text (- for standard input): its stated answer is judged",
        )
        parser.add_argument(
            "--reference", required=True, help="the optimal value, or none for no optimal solution"
        )
        parser.add_argument(
            "--tolerance", type=float, default=None, help="ε, for rules where it is a setting"
        )

    def handle(self, *args, rule, answer, response, reference, tolerance, **options) -> None:
        stated = "given"
        if response is not None:
            final = extract_final_answer(_read(response))
            answer = final
            stated = "none" if final is None else repr(final.text)
        try:
            result = judge_text(rule, answer, reference, tolerance=tolerance)
            label = RULES[rule].label(tolerance)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        error = "n/a" if result.error is None else f"{result.error:.6g}"
        verdict = "correct" if result.correct else "incorrect"
        line = f"{verdict}\terror={error}\trule={label}\t{result.reason}"
        if response is not None:
            line += f"\tstated={stated}"
        self.stdout.write(line)


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read the response {path}: {exc}") from None
