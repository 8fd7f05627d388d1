"""How long to wait before asking Binance again after a failure.

One policy for every retry: a failed rankings run and a lost stream
connection both back off exponentially with jitter, so many exporters that
lost Binance at the same moment do not all come back in the same second.
"""

from __future__ import annotations

import random
from typing import Callable

FIRST_RETRY = 1.0  # seconds before the first retry
MAX_RETRY = 30.0  # upper bound of any retry delay


def retry_delay(failures: int, cap: float = MAX_RETRY,
                rng: Callable[[], float] = random.random) -> float:
    """Exponential back-off with jitter: about 1, 2, 4 ... seconds, at most `cap`.

    The jitter draws 50-100 % of the step.
    """
    step = min(cap, FIRST_RETRY * 2 ** max(0, failures - 1))
    return step * (0.5 + 0.5 * rng())
