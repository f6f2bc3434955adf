"""The words the engine sends: the Reasoner's system prompt and worked example, the think-prefix
rule, and the Intervener's prompts. All of them are data: an endpoint may override any of them
(``Prompts.from_overrides``), and these defaults are what the embedded 1.5B model can follow.

The worked example is an invented problem (it is in no benchmark and not in the demo set), solved
in the CoRT format the engine produces, so a small model sees once how a turn should look:
think, write one whole Pyomo model, read the solver's output, close the thought, box the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

THINK_OPEN = "<think>"
DEFAULT_THINK_PREFIX = "<think>\n"
AUTO = "auto"

# Say what to do, never what not to: "not scipy or PuLP" made the 1.5B model write PuLP.
REASONER_SYSTEM_PROMPT = (
    "You are an expert in operations research. Solve the optimization problem by reasoning step "
    "by step and writing Python code. Write ONE complete Pyomo model in a ```python block and "
    "solve it with HiGHS; the block is run and its output is shown to you in an ```output "
    "block.\n"
    "Rules for the code:\n"
    "- `import pyomo.environ as pyo` and `model = pyo.ConcreteModel()`.\n"
    "- Every variable is attached to the model, one per line: "
    "`model.x = pyo.Var(within=pyo.NonNegativeReals)`, or `pyo.NonNegativeIntegers` only when "
    "the problem says the quantity must be whole. For indexed variables: "
    "`model.x = pyo.Var(ITEMS, within=pyo.NonNegativeReals)`.\n"
    '- Read every number and every requirement of the problem into a constraint: "at least" '
    'is >=, "at most" is <=, "exactly" is ==.\n'
    "- Constraints: `model.c1 = pyo.Constraint(expr=...)`; objective: "
    "`model.obj = pyo.Objective(expr=..., sense=pyo.maximize)` (or `pyo.minimize`).\n"
    "- Solve with `pyo.SolverFactory('appsi_highs').solve(model)` and print "
    "`OBJECTIVE_VALUE:` followed by `pyo.value(model.obj)`.\n"
    "If the code fails, read the error, fix that line and run the whole model again. When the "
    "solver has answered, close your reasoning with </think> and give the optimal objective "
    "value in \\boxed{}; if the problem has no optimal solution, write "
    "\\boxed{No optimal solution}."
)

# An invented problem (not in any benchmark, not in the demo set) with its answer worked out by
# hand: max 90p + 40f, 3p + f <= 30, 2p + f <= 24, p, f whole -> p = 6, f = 12, profit 1020.
WORKED_EXAMPLE_PROBLEM = (
    "A print shop prints batches of posters and flyers on one press. A batch of posters takes 3 "
    "hours of press time and 2 kg of ink and earns $90; a batch of flyers takes 1 hour and 1 kg "
    "of ink and earns $40. This week the press has 30 hours and there are 24 kg of ink. Only "
    "whole batches can be printed. How many batches of each maximize the profit, and what is "
    "the maximum profit?"
)
WORKED_EXAMPLE_SOLUTION = (
    "<think>\n"
    "Decision variables: p = batches of posters, f = batches of flyers. Only whole batches can "
    "be printed, so both are integers >= 0.\n"
    "Objective: maximize 90p + 40f.\n"
    "Constraints: press time 3p + f <= 30 (at most 30 hours); ink 2p + f <= 24 (at most 24 "
    "kg).\n"
    "Let me write the model in Pyomo and solve it with HiGHS.\n"
    "```python\n"
    "import pyomo.environ as pyo\n"
    "\n"
    "model = pyo.ConcreteModel()\n"
    "model.p = pyo.Var(within=pyo.NonNegativeIntegers)  # batches of posters\n"
    "model.f = pyo.Var(within=pyo.NonNegativeIntegers)  # batches of flyers\n"
    "model.obj = pyo.Objective(expr=90 * model.p + 40 * model.f, sense=pyo.maximize)\n"
    "model.press = pyo.Constraint(expr=3 * model.p + model.f <= 30)\n"
    "model.ink = pyo.Constraint(expr=2 * model.p + model.f <= 24)\n"
    "\n"
    "result = pyo.SolverFactory('appsi_highs').solve(model)\n"
    "print(result.solver.termination_condition)\n"
    "print('p =', pyo.value(model.p), 'f =', pyo.value(model.f))\n"
    "print('OBJECTIVE_VALUE:', pyo.value(model.obj))\n"
    "```\n"
    "```output\n"
    "optimal\n"
    "p = 6.0 f = 12.0\n"
    "OBJECTIVE_VALUE: 1020.0\n"
    "```\n"
    "The solver found the optimum: 6 batches of posters and 12 batches of flyers, with a profit "
    "of 1020.\n"
    "</think>\n"
    "Print 6 batches of posters and 12 batches of flyers. The maximum profit is \\boxed{1020}."
)

INTERVENER_SYSTEM_PROMPT = (
    "You are an expert in operations research reviewing how a student model solved an "
    "optimization problem by reasoning and running Python (Pyomo + HiGHS) code."
)


@dataclass
class Prompts:
    """Everything the engine says to a model. ``worked_example`` is a (problem, solution) pair
    sent as one earlier user/assistant exchange, or None for none."""

    system_prompt: str = REASONER_SYSTEM_PROMPT
    worked_example: tuple[str, str] | None = (WORKED_EXAMPLE_PROBLEM, WORKED_EXAMPLE_SOLUTION)
    intervener_system: str = INTERVENER_SYSTEM_PROMPT
    hint_templates: dict[str, str] = field(default_factory=dict)
    # Which checks over the execution record run and their hint templates
    # (``checks.check_specs``: {check name: {enabled, hint, flaw_type}}).
    checks: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_overrides(cls, data: dict[str, Any] | None) -> Prompts:
        """Defaults, with each key of ``data`` that is set replacing its default. An empty
        ``worked_example`` string (or false) turns the example off."""
        out = cls()
        for f in fields(cls):
            if not data or f.name not in data or data[f.name] is None:
                continue
            value = data[f.name]
            if f.name == "worked_example":
                value = _example(value)
            setattr(out, f.name, value)
        return out

    def reasoner_messages(self, problem: str) -> list[dict[str, str]]:
        """The chat messages of a Reasoner prompt: system, the worked example, the problem."""
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        if self.worked_example:
            example_problem, example_solution = self.worked_example
            messages.append({"role": "user", "content": example_problem})
            messages.append({"role": "assistant", "content": example_solution})
        messages.append({"role": "user", "content": problem})
        return messages


def _example(value: Any) -> tuple[str, str] | None:
    if not value:
        return None
    if isinstance(value, dict):
        return (str(value["problem"]), str(value["solution"]))
    problem, solution = value
    return (str(problem), str(solution))


# --- the think prefix --------------------------------------------------------------------------


def template_opens_think(backend: Any) -> bool:
    """Whether the endpoint's chat template already opens ``<think>`` in its generation prompt
    (Qwen3-Thinking-2507 does; Qwen2.5 and the plain Qwen3 template do not)."""
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "apply_chat_template"):
        return False
    try:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False
        )
    except Exception:  # no template at all: nothing is opened for us
        return False
    if not isinstance(rendered, str):  # a remote template answers with ids
        rendered = backend.decode(rendered)
    return rendered.rstrip().endswith(THINK_OPEN)


def think_prefix_for(backend: Any, configured: str | None = AUTO) -> str:
    """The one think-prefix rule (curation, evaluation and GRPO all call it): what the engine
    writes at the start of the assistant turn, after the chat template's generation prompt.

    ``auto`` (the default) forces ``<think>\\n`` unless the template already opened the tag. An
    explicit prefix is kept, except that a leading ``<think>`` the template already wrote is
    not written twice."""
    opened = template_opens_think(backend)
    if configured is None or configured == AUTO:
        return "" if opened else DEFAULT_THINK_PREFIX
    if opened and configured.startswith(THINK_OPEN):
        return configured[len(THINK_OPEN) :].lstrip("\n")
    return configured
