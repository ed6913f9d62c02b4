"""A per-day write lease kept in Dagster's own storage: two runs of one day never write at once.

The writer's ask-first rule is only safe for one writer at a time: two runs of the same day that
both ask "which bills exist?" before either has saved would both send every bill, and a Kingdee
that accepts a repeated number (or renumbers) then holds each twice. The run queue's limits
(``tag_concurrency_limits`` on ``dagster/partition``, pools) prevent that only where the instance
is configured so; this lease holds however it is configured.

It is one row of Dagster's key-value table (``kvs``, in the run storage: the SQLite file of
``DAGSTER_HOME`` or PostgreSQL), so every process of the instance sees it. Taking it is an INSERT
that the table's unique key lets only one process win; renewing, taking over and releasing are
compare-and-set UPDATE/DELETE statements on the exact value last written. Dagster offers no
public compare-and-set (``kvs_set`` overwrites), so this reaches its SQL run storage directly;
that is why the project pins the Dagster release line. A holder renews the lease while it
writes; a lease whose run has finished, or that nobody renewed for ``ttl_seconds`` (its process
died), is taken over instead of blocking the day forever.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import dagster as dg
from dagster._core.storage.runs.schema import KeyValueStoreTable
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from sqlalchemy import exc as db_exc

KEY_PREFIX = "wdt_kingdee/write_lease/"
_BUSY_ATTEMPTS = 20
_BUSY_PAUSE_SECONDS = 0.02
FINISHED = frozenset(
    {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
)


class LeaseBusy(Exception):
    """Another live run holds the day's lease; the message names it."""

    def __init__(self, key: str, holder: LeaseHolder, waited: float) -> None:
        super().__init__(
            f"{key.removeprefix(KEY_PREFIX)} is being written by run {holder.run_id} (lease taken "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.acquired_at))}, renewed "
            f"{time.time() - holder.renewed_at:.0f} s ago); this run waited {waited:.0f} s and "
            "wrote nothing. 另一运行正在写入这一天：本次未写入任何单据，稍后重跑即可补齐。"
        )
        self.holder = holder


class LeaseLost(Exception):
    """This run's lease was taken over (it was not renewed in time): stop writing."""


@dataclass(frozen=True)
class LeaseHolder:
    run_id: str
    token: str  # unique per acquisition: a CAS on the exact value is a CAS on this holder
    acquired_at: float
    renewed_at: float

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> LeaseHolder:
        return cls(**json.loads(text))


def _sql_storage(instance: dg.DagsterInstance) -> SqlRunStorage:
    storage = instance.run_storage
    # A `storage:` block (PostgreSQL) wraps the run storage in a legacy adapter.
    inner = getattr(storage, "_storage", None)
    if inner is not None:
        storage = inner.run_storage
    if not isinstance(storage, SqlRunStorage):
        raise TypeError(
            f"the write lease needs Dagster's SQL run storage (SQLite or PostgreSQL), "
            f"not {type(storage).__name__}"
        )
    return storage


class WriteLease:
    """The lease on one key (a flow's day) for one run."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        key: str,
        run_id: str,
        *,
        ttl_seconds: float = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.instance = instance
        self.key = KEY_PREFIX + key
        self.run_id = run_id
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._storage = _sql_storage(instance)
        self._mine: LeaseHolder | None = None

    # -- the rows ----------------------------------------------------------------------------

    def _execute(self, statement: Any) -> Any:
        """Run one statement in its own transaction; a busy database is asked again.

        SQLite answers "database is locked" to a writer that meets another one, and a shared
        in-memory database does so without waiting: a brief, bounded retry keeps that from
        failing a run. Every statement here is safe to repeat (a repeated compare-and-set
        simply finds the value already changed).
        """
        for attempt in range(_BUSY_ATTEMPTS):
            try:
                with self._storage.connect() as conn:
                    result = conn.execute(statement)
                    return result.fetchone() if result.returns_rows else result.rowcount
            except db_exc.OperationalError:
                if attempt == _BUSY_ATTEMPTS - 1:
                    raise
                time.sleep(_BUSY_PAUSE_SECONDS * (attempt + 1))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _read(self) -> str | None:
        table = KeyValueStoreTable
        row = self._execute(table.select().where(table.c.key == self.key))
        return row.value if row else None

    def _insert(self, value: str) -> bool:
        try:
            self._execute(KeyValueStoreTable.insert().values(key=self.key, value=value))
        except db_exc.IntegrityError:
            return False
        return True

    def _swap(self, old: str, new: str | None) -> bool:
        """Replace (or delete, for None) the row only if it still holds exactly ``old``."""
        table = KeyValueStoreTable
        where = (table.c.key == self.key) & (table.c.value == old)
        statement = table.delete() if new is None else table.update().values(value=new)
        return self._execute(statement.where(where)) == 1

    # -- the protocol ------------------------------------------------------------------------

    def _stale(self, holder: LeaseHolder) -> bool:
        if holder.run_id == self.run_id:
            return True  # our own run, e.g. a step retried after its process died
        if self._clock() - holder.renewed_at > self.ttl_seconds:
            return True
        run = self.instance.get_run_by_id(holder.run_id)
        return run is None or run.status in FINISHED

    def try_acquire(self) -> LeaseHolder | None:
        """Take the lease if it is free or stale; else return its live holder."""
        now = self._clock()
        mine = LeaseHolder(self.run_id, uuid.uuid4().hex, now, now)
        while True:
            if self._insert(mine.dumps()):
                self._mine = mine
                return None
            current = self._read()
            if current is None:
                continue  # released between our insert and our read
            holder = LeaseHolder.loads(current)
            if not self._stale(holder):
                return holder
            if self._swap(current, mine.dumps()):
                self._mine = mine
                return None

    def acquire(
        self,
        wait_seconds: float,
        *,
        poll_seconds: float = 5.0,
        on_wait: Callable[[LeaseHolder], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> float:
        """Take the lease, waiting up to ``wait_seconds`` for a live holder; seconds waited.

        Raises :class:`LeaseBusy`, naming the holder, when it is still held after the wait.
        """
        started = self._clock()
        while True:
            holder = self.try_acquire()
            if holder is None:
                return self._clock() - started
            waited = self._clock() - started
            if waited >= wait_seconds:
                raise LeaseBusy(self.key, holder, waited)
            if on_wait:
                on_wait(holder)
            sleep(min(poll_seconds, max(0.0, wait_seconds - waited)))

    def renew(self) -> None:
        """Prove this run is alive; raises :class:`LeaseLost` if the lease is no longer ours."""
        if self._mine is None:
            raise LeaseLost(f"{self.key}: renewed without being held")
        renewed = LeaseHolder(
            self._mine.run_id, self._mine.token, self._mine.acquired_at, self._clock()
        )
        if not self._swap(self._mine.dumps(), renewed.dumps()):
            self._mine = None
            raise LeaseLost(
                f"{self.key}: the lease of run {self.run_id} was taken over by another run "
                f"(not renewed within {self.ttl_seconds:.0f} s)"
            )
        self._mine = renewed

    def release(self) -> None:
        if self._mine is not None:
            self._swap(self._mine.dumps(), None)
            self._mine = None

    @property
    def held(self) -> bool:
        return self._mine is not None


@dataclass
class HeldLease:
    """A lease being held: how long taking it took, and whether it is still ours."""

    waited: float
    lost: LeaseLost | None = None

    def check(self) -> None:
        """Raise :class:`LeaseLost` if a renewal found the lease taken over: stop writing."""
        if self.lost is not None:
            raise self.lost


@contextmanager
def holding(
    lease: WriteLease,
    *,
    wait_seconds: float,
    poll_seconds: float = 5.0,
    on_wait: Callable[[LeaseHolder], None] | None = None,
) -> Iterator[HeldLease]:
    """Hold ``lease`` for the block, renewed in the background, released at its end.

    Renewed every third of the lease's time to live, so two missed renewals still leave it ours.
    A renewal that finds the lease taken over marks it lost; the writer calls
    :meth:`HeldLease.check` before every send, so nothing more is sent after that.
    """
    held = HeldLease(lease.acquire(wait_seconds, poll_seconds=poll_seconds, on_wait=on_wait))
    stop = threading.Event()

    def renew_until_stopped() -> None:
        while not stop.wait(lease.ttl_seconds / 3):
            try:
                lease.renew()
            except LeaseLost as exc:
                held.lost = exc
                return

    heartbeat = threading.Thread(target=renew_until_stopped, name="lease-heartbeat", daemon=True)
    heartbeat.start()
    try:
        yield held
    finally:
        stop.set()
        heartbeat.join()
        lease.release()
