"""The Kingdee client's exceptions: one root, one subclass per thing a caller does differently.

Messages keep Kingdee's Chinese text as the server wrote it (a person searches for it verbatim),
and never carry credentials, signatures or session ids: the client builds them from the server's
answer and its own words only, and scrubs known secrets before raising.
"""

from __future__ import annotations


class KingdeeError(Exception):
    """Any failure talking to Kingdee. ``service`` is the WebAPI service's short name."""

    def __init__(self, msg_code: int | None, messages: list[str], service: str) -> None:
        self.msg_code = msg_code
        self.messages = list(messages)
        self.service = service
        super().__init__(self._render())

    def __reduce__(self) -> tuple:
        """Pickle by fields (multiprocess executors ship exceptions between processes)."""
        return (type(self), (self.msg_code, self.messages, self.service), self.__dict__)

    def _render(self) -> str:
        code = f" MsgCode {self.msg_code}" if self.msg_code is not None else ""
        text = "; ".join(self.messages) if self.messages else "(no message)"
        return f"Kingdee {self.service}{code}: {text}"


class KingdeeAuthError(KingdeeError):
    """Credentials were refused; a retry cannot help (fix the configuration)."""


class KingdeeSessionLost(KingdeeError):
    """Session mode: the server forgot our session (MsgCode 1 "会话信息已丢失，请重新登录")."""


class KingdeeTransientError(KingdeeError):
    """Timeout, connection reset, HTTP 5xx or MsgCode 14 (调用限制): a read may be retried.

    ``cause`` (``timeout``, ``connection``, ``http_5xx``, ``throttled``) lets a write turn it
    into the matching :class:`KingdeeUnknownOutcome`.
    """

    def __init__(
        self, msg_code: int | None, messages: list[str], service: str, *, cause: str = ""
    ) -> None:
        self.cause = cause
        super().__init__(msg_code, messages, service)


class KingdeeUnknownOutcome(KingdeeError):
    """A write failed without a usable answer: it may or may not have committed.

    Never retried by the client: the caller reconciles by FBillNo first. ``cause`` says what
    happened (``timeout``, ``connection``, ``http_5xx``, ``session_lost``, ``throttled``,
    ``malformed``) for logs and metrics.
    """

    def __init__(self, msg_code: int | None, messages: list[str], service: str, cause: str) -> None:
        self.cause = cause
        super().__init__(msg_code, messages, service)

    def __reduce__(self) -> tuple:
        return (type(self), (self.msg_code, self.messages, self.service, self.cause), self.__dict__)


class KingdeeQueryError(KingdeeError):
    """The query itself is wrong (unknown form or field, bad filter): not retried."""


class KingdeeProtocolError(KingdeeError):
    """The body is not a Kingdee envelope (HTML, empty, truncated JSON, ``response_error:``)."""
