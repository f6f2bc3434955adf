"""One warm pool for the whole sandbox suite: starting one costs ~1.5 s, a job ~20 ms."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from solver_sandbox import Limits, SandboxPool


@pytest.fixture(scope="session")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(slots=2, limits=Limits(timeout_s=10)) as p:
        yield p
