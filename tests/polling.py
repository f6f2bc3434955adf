"""Waiting for the thing itself: poll a condition until it holds, and fail naming what was
awaited (with the last value seen) when it never does. A test never sleeps instead of this."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """What ``wait_for`` raises: an assertion failure, so pytest reports it as one."""


def wait_for(
    condition: Callable[[], T], *, what: str, timeout: float = 10.0, every: float = 0.02
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    ``what`` says what is awaited ("the run to make 3 steps"); a timeout fails with it and with
    the last value ``condition`` returned, so a hang reads as a sentence, not as a bare
    ``assert False``. ``every`` is only how often to look again, never a wait in itself.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"waited {timeout:g} s for {what}; last seen: {value!r}"[:2000])
        time.sleep(every)
