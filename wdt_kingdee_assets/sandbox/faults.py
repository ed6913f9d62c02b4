"""Fault injection for the simulators: what goes wrong, on which operation, how often.

A rule is written ``KIND[@OPERATION][,key=value...]`` on the command line and in the admin API,
for example ``5xx_after_commit@BatchSave,times=1`` or ``throttle,times=3,skip=2``. Each simulator
names its operations (WDT: the method name's last part, e.g. ``queryWithDetail``; Kingdee: the
service's last part, e.g. ``BatchSave``, ``ExecuteBillQuery``, ``LoginBySign``) and applies the
kinds it supports; an unsupported kind is rejected when the rule is added, not ignored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal[
    "delay",  # answer normally, after `seconds` (a slow server)
    "timeout",  # hold the connection `seconds`, then close it without answering; nothing done
    "timeout_after_commit",  # do the work, then hold and close without answering
    "5xx",  # answer HTTP `status` (default 500) without doing the work
    "5xx_after_commit",  # do the work, then answer HTTP `status`
    "reset",  # reset the TCP connection without doing the work
    "reset_after_commit",  # do the work, then reset the connection
    "throttle",  # the API's own rate-limit reply; with `seconds`, every call for that long
    "call_error",  # Kingdee: the call refused as a whole with MsgCode `code`, nothing saved
    "session_lost",  # Kingdee: MsgCode 1 "会话信息已丢失，请重新登录", session forgotten
    "insert_rows",  # WDT: after answering, insert `rows` new orders into the queried window
    "html_error",  # an HTML error page with HTTP 200 (a proxy in the way)
    "empty_body",  # HTTP 200 with an empty body
    "truncated_json",  # HTTP 200 with the first half of the real answer
]


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    operation: str = "*"
    times: int = Field(default=1, ge=1, description="how many matching calls it fires on")
    skip: int = Field(default=0, ge=0, description="matching calls to let through first")
    seconds: float = Field(default=0.0, ge=0)
    status: int = Field(default=500, ge=400, le=599)
    rows: int = Field(default=1, ge=0)
    code: int = Field(default=4, ge=1, description="call_error: Kingdee's MsgCode")

    @property
    def lasts(self) -> float:
        """Seconds a time-bound rule keeps firing once it has fired (0: counted by ``times``).

        Only a throttle is time-bound: a quota exhausted for minutes is how WDT's per-minute
        limit looks to a client ("请静置接口5-10分钟后重试").
        """
        return self.seconds if self.kind == "throttle" else 0.0

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """Parse ``KIND[@OPERATION][,key=value...]``."""
        head, *options = [part.strip() for part in text.split(",") if part.strip()]
        kind, _, operation = head.partition("@")
        fields: dict[str, object] = {"kind": kind, "operation": operation or "*"}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep:
                raise ValueError(f"fault option {option!r} in {text!r} is not key=value")
            fields[key.strip()] = value.strip()
        return cls.model_validate(fields)


class FaultPlan:
    """The active rules of one simulator; thread-safe, consumed as calls arrive."""

    def __init__(self, supported: frozenset[str], clock: Callable[[], float] = time.time) -> None:
        self.supported = supported
        self._clock = clock
        self._rules: list[tuple[FaultRule, int, int]] = []  # rule, calls seen, times fired
        self._since: dict[int, float] = {}  # a time-bound rule's first firing, by position
        self._fired: list[dict[str, object]] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        if rule.kind not in self.supported:
            raise ValueError(
                f"fault kind {rule.kind!r} is not supported here; supported: {sorted(self.supported)}"
            )
        with self._lock:
            self._rules.append((rule, 0, 0))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._since.clear()
            self._fired.clear()

    def take(self, operation: str) -> FaultRule | None:
        """The rule that fires on this call, if any (the first matching rule wins)."""
        with self._lock:
            for index, (rule, seen, fired) in enumerate(self._rules):
                if rule.operation not in ("*", operation):
                    continue
                if index in self._since:
                    if self._clock() - self._since[index] < rule.lasts:
                        self._rules[index] = (rule, seen + 1, fired + 1)
                        self._fired.append({"kind": rule.kind, "operation": operation})
                        return rule
                    continue
                if fired >= rule.times:
                    continue
                seen += 1
                if seen <= rule.skip:
                    self._rules[index] = (rule, seen, fired)
                    continue
                self._rules[index] = (rule, seen, fired + 1)
                if rule.lasts:
                    self._since[index] = self._clock()
                self._fired.append({"kind": rule.kind, "operation": operation})
                return rule
            return None

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "rules": [
                    {**rule.model_dump(), "seen": seen, "fired": fired}
                    for rule, seen, fired in self._rules
                ],
                "fired": list(self._fired),
            }
