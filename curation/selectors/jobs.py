"""Jobs: who sees which."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from ..models import Job
from ..roles import Role, has_role


def jobs_visible_to(user) -> QuerySet[Job]:
    """Leads and admins see every job; reviewers see the shared generation work (hints,
    diagnoses, generations: the workbench is shared) and only their own imports."""
    jobs = Job.objects.all()
    if has_role(user, Role.LEAD):
        return jobs
    training = (Job.Kind.SFT, Job.Kind.GRPO, Job.Kind.EVALUATE, Job.Kind.SERVE_CHECKPOINT)
    return jobs.exclude(kind__in=training).filter(
        ~Q(kind=Job.Kind.IMPORT_PROBLEMS) | Q(created_by=user)
    )
