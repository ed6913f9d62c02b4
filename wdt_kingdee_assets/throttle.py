"""Client-side pacing shared by both API clients: a calls-per-minute limiter, the server threads
a data center lends the integration, a retry backoff and the patience a throttled API asks for.

The limiter and the thread budget are per API account and per *machine* (see
:func:`shared_limiter`, :func:`shared_threads`): every thread of every process that syncs on
this machine — the runs of a backfill side by side, the schedule's run, a CLI retry — draws from
one budget kept in lock files of :func:`budget_directory`. A lock file is released by the kernel
when its process dies, so a crashed run never keeps a thread of the budget. Runs on several
machines (a Kubernetes or Docker run launcher) each have their own: there, set the instance's
``wdt_api`` and ``kingdee_api`` pools to 1 so that one step at a time holds an API's budget.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

BUDGET_DIR_ENV = "WDT_KINGDEE_BUDGET_DIR"
_SLOT_POLL_SECONDS = 0.005


def budget_directory() -> Path:
    """Where this machine's API budgets live: ``WDT_KINGDEE_BUDGET_DIR``, else a folder of
    ``DAGSTER_HOME`` (every run of the instance sees it), else one of the system's temp folder."""
    configured = os.environ.get(BUDGET_DIR_ENV)
    if configured:
        return Path(configured)
    home = os.environ.get("DAGSTER_HOME")
    if home:
        return Path(home) / "api-budget"
    return Path(tempfile.gettempdir()) / f"wdt-kingdee-api-budget-{os.getuid()}"


def _account_file(directory: Path, key: tuple[str, ...], suffix: str) -> Path:
    """The account's file: named by a digest, so that no account name lands on disk."""
    digest = hashlib.sha256("\x1f".join(key).encode("utf-8")).hexdigest()[:24]
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{key[0]}-{digest}.{suffix}"


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    """``path`` open and exclusively locked (against every process of the machine)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield descriptor
    finally:
        os.close(descriptor)


class RateLimiter:
    """Sliding-window limiter: at most ``calls_per_minute`` call starts in any 60 s window.

    A sliding window (rather than a token bucket with burst) matches how the WDT server counts
    "每分钟最大调用频率", so a client that obeys it is never throttled by its own bursts.
    ``calls_per_minute <= 0`` disables the limiter. With a ``window_file`` the window's call
    starts are kept in that file (wall-clock times, under a lock), so that every process using
    the file shares one window.
    """

    def __init__(
        self,
        calls_per_minute: float,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        window_file: Path | None = None,
    ) -> None:
        self.calls_per_minute = calls_per_minute
        self.window_file = window_file
        # Processes share wall-clock time only; one process may use the monotonic clock.
        self._clock = clock or (time.time if window_file else time.monotonic)
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def acquire(self) -> float:
        """Block until a call may start; return the seconds waited."""
        if self.calls_per_minute <= 0:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                delay = self._claim(max(1, int(self.calls_per_minute)))
                if delay is None:
                    self.waited_seconds += waited
                    return waited
            self._sleep(delay)
            waited += delay

    def _claim(self, capacity: int) -> float | None:
        """Record a call start now if the window has room; else the seconds until it has."""
        if self.window_file is None:
            return _claim_start(self._starts, self._clock(), capacity)
        with _locked(self.window_file) as descriptor:
            text = os.read(descriptor, 1 << 20).decode("ascii")
            starts = deque(json.loads(text) if text else [])
            delay = _claim_start(starts, self._clock(), capacity)
            if delay is None:
                os.lseek(descriptor, 0, os.SEEK_SET)
                os.ftruncate(descriptor, 0)
                os.write(descriptor, json.dumps(list(starts)).encode("ascii"))
            return delay


def _claim_start(starts: deque[float], now: float, capacity: int) -> float | None:
    while starts and now - starts[0] >= 60.0:
        starts.popleft()
    if len(starts) < capacity:
        starts.append(now)
        return None
    return 60.0 - (now - starts[0])


_shared: dict[tuple[str, ...], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(key: tuple[str, ...], calls_per_minute: float) -> RateLimiter:
    """The machine-wide limiter for one API account; created on first use in a process.

    If a later caller asks for a different budget for the same account, the smaller one wins:
    lowering a limit must never be silently ignored.
    """
    with _shared_lock:
        limiter = _shared.get(key)
        if limiter is None:
            window = _account_file(budget_directory(), key, "window")
            limiter = _shared[key] = RateLimiter(calls_per_minute, window_file=window)
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


class ThreadBudget:
    """At most ``size`` calls in flight at once: the server threads an API lends this account.

    Every call of the account takes a thread for as long as it waits for its answer, whatever
    it is (a BatchSave, a Submit, an Audit, a query), so that no mix of steps and threads asks
    more of the server than its share. ``size`` may be lowered while calls are in flight; the
    calls above the new size finish, and no new one starts until the count is under it.

    With ``slot_files`` the budget also holds across processes: a call holds one of ``size``
    lock files (``<slot_files>.0``, ``.1``, …) while it is in flight, and waits while every one
    is held by some process. Waiting calls take the slots oldest process first (``_WaitingLine``):
    taken at random, the runs of a backfill moved in step, ended together and left the budget idle
    while the next ones started — in turn, the oldest run finishes first and the next one starts
    while the others still call.
    """

    def __init__(self, size: int, *, slot_files: Path | None = None) -> None:
        if size < 1:
            raise ValueError(f"a thread budget needs at least one thread, got {size}")
        self.size = size
        self.slot_files = slot_files
        self._in_flight = 0
        self._held: dict[int, int] = {}  # slot → its locked descriptor, for this process
        self._mine = threading.local()
        self._changed = threading.Condition()

    def __enter__(self) -> ThreadBudget:
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight < self.size)
            self._in_flight += 1
        if self.slot_files is not None:
            self._mine.slot = self._take_slot()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.slot_files is not None:
            with self._changed:
                os.close(self._held.pop(self._mine.slot))
        with self._changed:
            self._in_flight -= 1
            self._changed.notify()

    def _take_slot(self) -> int:
        with _WaitingLine(Path(f"{self.slot_files}.waiting")) as line:
            while True:
                first = line.is_first()
                if first:
                    with self._changed:
                        for slot in range(self.size):
                            if slot in self._held:
                                continue
                            path = f"{self.slot_files}.{slot}"
                            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                            try:
                                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                            except BlockingIOError:
                                os.close(descriptor)
                                continue
                            self._held[slot] = descriptor
                            return slot
                # The first in line looks often; the others only need to notice their turn.
                pause = _SLOT_POLL_SECONDS * (1 if first else 4)
                time.sleep(pause * random.uniform(1.0, 2.0))

    def lower_to(self, size: int) -> None:
        with self._changed:
            self.size = min(self.size, size)


# When this process loaded the budgets (for a run: its start), the place of its calls in the
# machine's waiting lines. A run is a process, so the older run goes first.
_SENIORITY = time.time_ns()


class _WaitingLine:
    """One waiting call's ticket in a line shared by the processes of a machine: a file in
    ``directory`` named so that names sort oldest process first, then oldest call. The ticket is
    locked while its call waits, so a ticket left by a process that died is seen as such (its
    lock is free) and removed by whoever meets it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = f"{_SENIORITY:020d}-{time.time_ns():020d}-{os.getpid()}-{threading.get_ident()}"
        self._descriptor: int | None = None

    def __enter__(self) -> _WaitingLine:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Locked under a temporary name, then renamed: a ticket is never seen unlocked.
        draft = self.directory / f".{self.name}"
        self._descriptor = os.open(draft, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        os.rename(draft, self.directory / self.name)
        return self

    def __exit__(self, *exc: object) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self.directory / self.name)
        if self._descriptor is not None:
            os.close(self._descriptor)

    def is_first(self) -> bool:
        """No live ticket is ahead of this one (dead ones ahead are removed on the way)."""
        for name in sorted(os.listdir(self.directory)):
            if name.startswith("."):
                continue  # a ticket being made: counted at the next look, microseconds later
            if name >= self.name:
                return True
            if not _is_dead(self.directory / name):
                return False
        return True


def _is_dead(ticket: Path) -> bool:
    """True (and the ticket removed) when no process holds the ticket's lock any more."""
    try:
        descriptor = os.open(ticket, os.O_RDWR)
    except FileNotFoundError:
        return True  # its call got a slot meanwhile
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)
    with suppress(FileNotFoundError):
        os.unlink(ticket)
    return True


_threads: dict[tuple[str, ...], ThreadBudget] = {}


def shared_threads(key: tuple[str, ...], size: int) -> ThreadBudget:
    """The machine-wide thread budget for one API account; the smallest size asked wins."""
    with _shared_lock:
        budget = _threads.get(key)
        if budget is None:
            slots = _account_file(budget_directory(), key, "thread")
            budget = _threads[key] = ThreadBudget(size, slot_files=slots)
        else:
            budget.lower_to(size)
        return budget
