"""The Celery queues, named in one place.

Workers subscribe by these names (``-Q default,sandbox,gpu``) and every task decorator names its
queue from this enum, so a new host can be pointed at exactly the work it is sized for.
"""

from __future__ import annotations

from enum import StrEnum


class Queue(StrEnum):
    DEFAULT = "default"  # bookkeeping: imports, reaper, batch orchestration
    SANDBOX = "sandbox"  # model-written code in the solver sandbox (CPU-bound, many per host)
    GPU = "gpu"  # generation and training (one job per GPU worker, prefetch 1)


ALL_QUEUES: tuple[str, ...] = tuple(q.value for q in Queue)
