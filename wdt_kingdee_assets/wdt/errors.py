"""The WDT client's exceptions: one hierarchy rooted in :class:`WdtError`.

The class says what the caller may do (retry or not); the message says what happened, with the
API method, the envelope status and the server's own (Chinese) message intact. Messages never
carry the secret, the sign or the request URL's query string (it holds sid and salt).
"""

from __future__ import annotations

from typing import Any

THROTTLE_MARKERS = ("超过每分钟最大调用频率限制", "超过每分钟最大并发次数限制")
REJECTED_STATUSES = frozenset({1, 2, 6, 7, 8})  # auth, signature, parameter, ip, timestamp, version
DATABASE_STATUSES = frozenset({4, 5})  # 数据库错误: server-side, worth another try


class WdtError(Exception):
    """Base of every error the WDT client raises."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        status: int | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.status = status
        self.server_message = server_message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes do not survive the default pickling of exceptions.
        return (_restore, (type(self), str(self), dict(self.__dict__)))


def _restore(cls: type[WdtError], message: str, state: dict[str, Any]) -> WdtError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class WdtRejectedError(WdtError):
    """The server refused the request itself (status 1, 2, 6, 7, 8): retrying cannot help."""


class WdtThrottledError(WdtError):
    """The server's per-minute call or concurrency limit; raised once the retries ran out."""


class WdtTransientError(WdtError):
    """Timeout, connection error, HTTP 5xx or a database error; raised once retries ran out."""


class WdtBusinessError(WdtError):
    """An application error (status 100 other than throttling, 99, 3): not retried."""


class WdtProtocolError(WdtError):
    """The answer was not a valid envelope (HTML, empty, truncated, missing data)."""


class IncompletePullError(WdtError):
    """The orders read do not add up to WDT's ``total_count`` for the window."""

    def __init__(self, *, method: str, expected: int, got: int, window: str, passes: int) -> None:
        super().__init__(
            f"{method}: incomplete pull for {window}: WDT reports total_count={expected} "
            f"but {got} distinct orders were read after {passes} pass(es); rows kept moving "
            "while paging, re-run the pull",
            method=method,
        )
        self.expected = expected
        self.got = got
        self.window = window
        self.passes = passes


def is_throttle_message(message: str) -> bool:
    """True for WDT's rate- or concurrency-limit text; punctuation varies, so match substrings."""
    return any(marker in message for marker in THROTTLE_MARKERS)


def error_for_envelope(method: str, status: int, message: str) -> WdtError:
    """The exception for an error envelope ``{"status": status, "message": message}``."""
    text = f"{method}: WDT answered status {status}: {message}"
    kwargs: dict[str, Any] = {"method": method, "status": status, "server_message": message}
    if status in REJECTED_STATUSES:
        return WdtRejectedError(text, **kwargs)
    if status in DATABASE_STATUSES:
        return WdtTransientError(text, **kwargs)
    if status == 100 and is_throttle_message(message):
        return WdtThrottledError(text, **kwargs)
    # 100, 99, 3 and any status the reference does not list: an error we cannot fix by retrying.
    return WdtBusinessError(text, **kwargs)
