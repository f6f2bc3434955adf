"""Queries of the review workflow: where each trajectory stands (open, golden, rejected,
disputed), the queue a reviewer works through, and the adjudication list.

One rule, one place: ``with_review_state`` is the only definition of the human gate. The queue,
the golden set, the adjudication view and the trajectory page all read ``review_state``.

- Each person's latest decision is their current one (earlier ones are ``superseded``).
- A lead's current approve or reject settles the outcome (adjudication).
- Otherwise: any current rejection against an approval is a disagreement ("disputed"); a
  rejection alone rejects; enough approvals from distinct people make it golden. The author of
  the hint that made the branch never counts as an approval of it.
- How many approvals: the batch's ``BatchReviewPolicy``, else ``REVIEW_REQUIRED_APPROVALS``.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from ..models import (
    BatchReviewPolicy,
    Hint,
    ReviewAssignment,
    ReviewDecision,
    ReviewLock,
    Trajectory,
)
from .trajectories import trajectories_filtered

OPEN, GOLDEN, REJECTED, DISPUTED = "open", "golden", "rejected", "disputed"


def _distinct_authors(decisions: QuerySet) -> Coalesce:
    # order_by() clears the model's default ordering, which would otherwise join GROUP BY.
    counted = decisions.order_by().values("trajectory").annotate(n=Count("author", distinct=True))
    return Coalesce(Subquery(counted.values("n")[:1], output_field=IntegerField()), Value(0))


def with_review_state(queryset: QuerySet[Trajectory]) -> QuerySet[Trajectory]:
    """Annotate ``n_approvals``, ``n_rejections``, ``required_approvals``, ``lead_outcome``
    and ``review_state`` (one of OPEN, GOLDEN, REJECTED, DISPUTED)."""
    hint_author = Hint.objects.filter(branch=OuterRef("pk")).values("author_user_id")[:1]
    queryset = queryset.annotate(hint_author_id=Subquery(hint_author))
    current = ReviewDecision.objects.filter(trajectory=OuterRef("pk"), superseded=False)
    not_the_author = Coalesce(OuterRef("hint_author_id"), Value(-1))
    approvals = current.filter(decision=ReviewDecision.Decision.APPROVED).exclude(
        author_id=not_the_author
    )
    rejections = current.filter(decision=ReviewDecision.Decision.REJECTED)
    lead = (
        current.filter(by_lead=True, decision__in=["approved", "rejected"])
        .exclude(decision="approved", author_id=not_the_author)
        .order_by("-created_at", "-pk")
    )
    policy = BatchReviewPolicy.objects.filter(batch__items__trajectory=OuterRef("pk")).order_by(
        "-required_approvals"
    )
    queryset = queryset.annotate(
        n_approvals=_distinct_authors(approvals),
        n_rejections=_distinct_authors(rejections),
        lead_outcome=Subquery(lead.values("decision")[:1]),
        required_approvals=Coalesce(
            Subquery(policy.values("required_approvals")[:1]),
            Value(settings.REVIEW_REQUIRED_APPROVALS),
            output_field=IntegerField(),
        ),
    )
    return queryset.annotate(
        review_state=Case(
            When(lead_outcome="approved", then=Value(GOLDEN)),
            When(lead_outcome="rejected", then=Value(REJECTED)),
            When(Q(n_rejections__gt=0, n_approvals__gt=0), then=Value(DISPUTED)),
            When(n_rejections__gt=0, then=Value(REJECTED)),
            When(n_approvals__gte=F("required_approvals"), then=Value(GOLDEN)),
            default=Value(OPEN),
            output_field=CharField(),
        )
    )


def review_state_of(trajectory: Trajectory) -> Trajectory:
    """The trajectory re-read with its review annotations (for one page)."""
    return with_review_state(Trajectory.objects.filter(pk=trajectory.pk)).get()


def review_queue(*, reviewer=None, **filters) -> QuerySet[Trajectory]:
    """Trajectories still open for review (no outcome yet), filtered (``trajectories_filtered``).
    With ``reviewer``, what a lead assigned to that reviewer comes first."""
    queue = with_review_state(trajectories_filtered(**filters)).filter(review_state=OPEN)
    if reviewer is None:
        return queue.order_by("created_at", "pk")
    mine = ReviewAssignment.objects.filter(trajectory=OuterRef("pk"), reviewer=reviewer)
    return queue.annotate(assigned_to_me=Exists(mine)).order_by(
        "-assigned_to_me", "created_at", "pk"
    )


def _queue_standing(queue: QuerySet[Trajectory], reviewer, now) -> QuerySet[Trajectory]:
    """The queue annotated with why ``reviewer``'s "next" would pass an item over: held (a
    live lock, ``held_by_me`` when it is theirs), decided by them already, or a branch with a
    hint of theirs in its lineage (their approval would not count)."""
    live = ReviewLock.objects.filter(trajectory=OuterRef("pk"), locked_until__gte=now)
    decided = ReviewDecision.objects.filter(
        trajectory=OuterRef("pk"), author=reviewer, superseded=False
    )
    # A hint of theirs anywhere in the lineage, not only the one that made the branch: someone
    # else hinting after them does not make their approval independent (services.reviews).
    hinted = hinted_lineages(user=reviewer)
    return queue.annotate(
        held=Exists(live),
        held_by_me=Exists(live.filter(reviewer=reviewer)),
        decided_by_me=Exists(decided),
        # (An empty ``pk__in`` cannot be compiled into an annotation: a constant then.)
        my_hint=ExpressionWrapper(Q(pk__in=hinted), output_field=BooleanField())
        if hinted
        else Value(False, output_field=BooleanField()),
    )


def queue_reviewable(queue: QuerySet[Trajectory], reviewer, now) -> QuerySet[Trajectory]:
    """What "next" may hand ``reviewer`` from ``queue``: nothing anyone holds (their own other
    items included: already on their desk), nothing they decided, no branch of their hint."""
    return _queue_standing(queue, reviewer, now).filter(
        held=False, decided_by_me=False, my_hint=False
    )


def queue_breakdown(queue: QuerySet[Trajectory], reviewer, now) -> dict:
    """How the items of ``queue`` stand for ``reviewer``: ``total`` (what "awaiting review"
    counts), ``free`` (what "next" may hand them), and the rest by the first reason it is
    passed over: ``held_by_others``, ``held_by_me``, ``decided_by_me``, ``my_hints``."""
    standing = _queue_standing(queue.order_by(), reviewer, now)
    counts = {"total": 0, "free": 0, "held_by_others": 0, "held_by_me": 0,
              "decided_by_me": 0, "my_hints": 0}  # fmt: skip
    for held, mine, decided, my_hint in standing.values_list(
        "held", "held_by_me", "decided_by_me", "my_hint"
    ):
        counts["total"] += 1
        if held:
            counts["held_by_me" if mine else "held_by_others"] += 1
        elif decided:
            counts["decided_by_me"] += 1
        elif my_hint:
            counts["my_hints"] += 1
        else:
            counts["free"] += 1
    return counts


def queue_breakdown_text(counts: dict) -> str:
    """The passed-over part of ``queue_breakdown`` in words ("" when nothing is)."""
    parts = [
        (counts["held_by_others"], "held by another reviewer"),
        (counts["held_by_me"], "open on your desk (locked by you)"),
        (counts["decided_by_me"], "already decided by you"),
        (
            counts["my_hints"],
            "branches with your hint in their lineage (another reviewer must approve them)",
        ),
    ]
    return ", ".join(f"{n} {what}" for n, what in parts if n)


def disputed_trajectories() -> QuerySet[Trajectory]:
    """Approve against reject with no lead's decision yet: the adjudication list."""
    return (
        with_review_state(Trajectory.objects.defer("prompt_tokens", "completion_tokens", "text"))
        .filter(review_state=DISPUTED)
        .select_related("problem__benchmark")
        .order_by("created_at", "pk")
    )


def current_decisions(trajectory: Trajectory) -> QuerySet[ReviewDecision]:
    """Each person's current decision on the trajectory, newest first."""
    return trajectory.decisions.filter(superseded=False).select_related("author")


def hinted_lineages(*, user) -> set[int]:
    """The trajectories with a hint by ``user`` anywhere in their lineage: the branches their
    hints made and every branch grown from those (one query per generation)."""
    found: set[int] = set()
    frontier = set(
        Hint.objects.filter(author_user=user, branch__isnull=False).values_list(
            "branch_id", flat=True
        )
    )
    while frontier:
        found |= frontier
        frontier = (
            set(Trajectory.objects.filter(parent_id__in=frontier).values_list("pk", flat=True))
            - found
        )
    return found


def own_hint_in_lineage(*, trajectory: Trajectory, user) -> Hint | None:
    """A hint by ``user`` that made this branch or one of its ancestors, if any."""
    lineage: list[int] = []
    current = trajectory.pk
    while current is not None and current not in lineage:
        lineage.append(current)
        current = Trajectory.objects.filter(pk=current).values_list("parent_id", flat=True).first()
    return Hint.objects.filter(branch_id__in=lineage, author_user=user).order_by("pk").first()


def golden_gate(queryset: QuerySet[Trajectory]) -> QuerySet[Trajectory]:
    """Trajectories that passed the human gate (the review part of "golden")."""
    return with_review_state(queryset).filter(review_state=GOLDEN)


def _prompt_sources(trajectory: Trajectory) -> dict[str, str]:
    """The words the Reasoner was sent besides the problem: the prompts recorded on the
    trajectory, and the engine's default system prompt and worked example (the demo's)."""
    from ..engine import prompts

    record = trajectory.prompts if isinstance(trajectory.prompts, dict) else {}
    example = record.get("worked_example") or []
    sources = {
        "the system prompt": str(record.get("system_prompt") or ""),
        "the worked example's problem": str(example[0]) if len(example) > 0 else "",
        "the worked example": str(example[1]) if len(example) > 1 else "",
        "the default system prompt": prompts.REASONER_SYSTEM_PROMPT,
        "the demo worked example's problem": prompts.WORKED_EXAMPLE_PROBLEM,
        "the demo worked example": prompts.WORKED_EXAMPLE_SOLUTION,
    }
    return {name: text for name, text in sources.items() if text}


def approval_concerns(trajectory: Trajectory, user) -> dict:
    """What stands against approving ``trajectory`` as golden, for ``user``:

    - ``own``: the user's own current flaw labels on it (approving over them contradicts
      themselves: ``review_decide`` refuses until they clear or change them);
    - ``others``: other people's and models' current flaw labels;
    - ``copied``: passages of the model's text copied word for word from its system prompt or
      worked example (``engine.copying``).

    ``others`` and ``copied`` are shown to the approver and need their explicit confirmation,
    which the decision records."""
    from ..engine.copying import copied_passages
    from .labels import current_labels

    own, others = [], []
    for step, labels in sorted(current_labels(trajectory).items()):
        for label in labels:
            mine = label.source == "human" and label.author_user_id == user.pk
            what = f"step {step + 1}: {label.flaw_type.name} ({label.author_label})"
            (own if mine else others).append(what)
    steps = trajectory.steps if isinstance(trajectory.steps, list) else []
    text = "\n".join(
        f"{s.get('reasoning') or ''}\n{s.get('code') or ''}" for s in steps if isinstance(s, dict)
    )
    copied = copied_passages(text, _prompt_sources(trajectory))
    return {"own": own, "others": others, "copied": copied}
