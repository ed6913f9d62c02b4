"""Client-side pacing shared by both API clients: a calls-per-minute limiter, a retry backoff and
the patience a throttled API asks for.

The limiter is per *process* and per API account (see :func:`shared_limiter`): when Dagster runs
several steps in one process they share one budget, and concurrency pools in the instance
config keep the number of processes that talk to an API at once bounded.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class RateLimiter:
    """Sliding-window limiter: at most ``calls_per_minute`` call starts in any 60 s window.

    A sliding window (rather than a token bucket with burst) matches how the WDT server counts
    "每分钟最大调用频率", so a client that obeys it is never throttled by its own bursts.
    ``calls_per_minute <= 0`` disables the limiter.
    """

    def __init__(
        self,
        calls_per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.calls_per_minute = calls_per_minute
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def acquire(self) -> float:
        """Block until a call may start; return the seconds waited."""
        if self.calls_per_minute <= 0:
            return 0.0
        capacity = max(1, int(self.calls_per_minute))
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._starts and now - self._starts[0] >= 60.0:
                    self._starts.popleft()
                if len(self._starts) < capacity:
                    self._starts.append(now)
                    self.waited_seconds += waited
                    return waited
                delay = 60.0 - (now - self._starts[0])
            self._sleep(delay)
            waited += delay


_shared: dict[tuple[str, ...], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(key: tuple[str, ...], calls_per_minute: float) -> RateLimiter:
    """The process-wide limiter for one API account; created on first use.

    If a later caller asks for a different budget for the same account, the smaller one wins:
    lowering a limit must never be silently ignored.
    """
    with _shared_lock:
        limiter = _shared.get(key)
        if limiter is None:
            limiter = _shared[key] = RateLimiter(calls_per_minute)
        elif calls_per_minute > 0 and (
            limiter.calls_per_minute <= 0 or calls_per_minute < limiter.calls_per_minute
        ):
            limiter.calls_per_minute = calls_per_minute
        return limiter


@dataclass(frozen=True)
class Backoff:
    """Bounded exponential backoff with full jitter (AWS style): delay_n ~ U(0, min(cap, base·2ⁿ)).

    Full jitter spreads the retries of partitions that were throttled at the same moment.
    ``max_attempts`` counts every try, the first included.
    """

    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    max_attempts: int = 6
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, retry_number: int) -> float:
        """Delay before retry ``retry_number`` (1 = first retry)."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** (retry_number - 1)))
        return self.rng.uniform(0, ceiling)


@dataclass(frozen=True)
class ThrottleWait:
    """How long to rest when the server says its per-minute quota is used up.

    WDT's own text for that answer asks for 5–10 minutes of rest ("请静置接口5-10分钟后重试"), so
    a few seconds of backoff only spends more of the quota. Waits double from ``first_seconds``
    up to ``cap_seconds``, each stretched by up to 20 % (so that runs throttled together do not
    come back together), and stop once another would pass ``max_total_seconds``: the defaults rest
    up to 12 minutes (60 + 120 + 240 + 300 s) before the call fails.
    """

    first_seconds: float = 60.0
    cap_seconds: float = 300.0
    max_total_seconds: float = 900.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def waits(self) -> list[float]:
        """The planned rests, in order, before jitter (what a log line can announce)."""
        planned, total, wait = [], 0.0, self.first_seconds
        while wait > 0 and total + wait <= self.max_total_seconds:
            planned.append(wait)
            total += wait
            wait = min(self.cap_seconds, wait * 2)
        return planned

    def jittered(self, wait: float) -> float:
        return wait * self.rng.uniform(1.0, 1.2)
