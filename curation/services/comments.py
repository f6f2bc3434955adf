"""Comment threads on a step or on a whole trajectory: add, resolve."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..models import Comment, Trajectory

MAX_CHARS = 4000


class CommentError(ValueError):
    pass


def comment_add(*, trajectory: Trajectory, step_index: int | None, text: str, by) -> Comment:
    """Add a comment to a step's thread (``step_index``) or the trajectory's (None)."""
    text = (text or "").strip()
    if not text:
        raise CommentError("A comment needs some text.")
    if len(text) > MAX_CHARS:
        raise CommentError(f"A comment is at most {MAX_CHARS} characters.")
    if step_index is not None and not 0 <= step_index < len(trajectory.steps):
        raise CommentError(f"Step {step_index + 1} does not exist.")
    with transaction.atomic():
        return Comment.objects.create(
            trajectory=trajectory, step_index=step_index, text=text, author=by
        )


def comment_resolve(*, comment: Comment, by) -> bool:
    """Mark an open comment resolved (kept, with who and when). False if it already was."""
    return bool(
        Comment.objects.filter(pk=comment.pk, resolved_at=None).update(
            resolved_at=timezone.now(), resolved_by=by
        )
    )


def comments_by_step(trajectory: Trajectory) -> dict[int | None, list[Comment]]:
    """Every thread of the trajectory, keyed by step index (None: the trajectory's own)."""
    threads: dict[int | None, list[Comment]] = {}
    rows = Comment.objects.filter(trajectory=trajectory).select_related("author", "resolved_by")
    for comment in rows:
        threads.setdefault(comment.step_index, []).append(comment)
    return threads
