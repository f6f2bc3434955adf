from __future__ import annotations

# The data fixtures of the curation tests, for the flows that drive the same screens.
from tests.curation.conftest import make_trajectory, problem, taxonomy  # noqa: F401
from tests.training.conftest import (  # noqa: F401
    _runs_in_tmp,
    tiny_dataset,
    tiny_endpoint,
    toy_problems,
)
