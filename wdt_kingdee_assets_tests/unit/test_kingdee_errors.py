"""Kingdee exceptions: readable, Chinese kept intact, picklable, one root."""

from __future__ import annotations

import pickle

import pytest

from wdt_kingdee_assets.kingdee.errors import (
    KingdeeAuthError,
    KingdeeError,
    KingdeeProtocolError,
    KingdeeQueryError,
    KingdeeSessionLost,
    KingdeeTransientError,
    KingdeeUnknownOutcome,
)


def test_message_keeps_kingdees_text() -> None:
    error = KingdeeQueryError(9, ["元数据中标识为FNope的字段不存在"], "ExecuteBillQuery")
    assert str(error) == "Kingdee ExecuteBillQuery MsgCode 9: 元数据中标识为FNope的字段不存在"
    assert str(KingdeeProtocolError(None, [], "BatchSave")) == "Kingdee BatchSave: (no message)"


@pytest.mark.parametrize(
    "error",
    [
        KingdeeAuthError(1, ["会话信息已丢失，请重新登录"], "ExecuteBillQuery"),
        KingdeeSessionLost(1, ["会话信息已丢失，请重新登录"], "ExecuteBillQuery"),
        KingdeeTransientError(14, ["调用限制"], "ExecuteBillQuery", cause="throttled"),
        KingdeeUnknownOutcome(None, ["HTTP 500"], "BatchSave", "http_5xx"),
        KingdeeQueryError(4, ["GetRealExpress error"], "ExecuteBillQuery"),
        KingdeeProtocolError(None, ["empty body"], "BatchSave"),
    ],
)
def test_every_error_is_a_kingdee_error_and_survives_pickling(error: KingdeeError) -> None:
    assert isinstance(error, KingdeeError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.msg_code, copy.messages, copy.service, str(copy)) == (
        error.msg_code,
        error.messages,
        error.service,
        str(error),
    )
    assert getattr(copy, "cause", None) == getattr(error, "cause", None)
