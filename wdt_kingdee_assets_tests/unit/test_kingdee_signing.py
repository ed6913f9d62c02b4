"""Kingdee signatures: the reference §2b test vector, LoginBySign, and the official SDK itself."""

from __future__ import annotations

import hashlib
import time

import pytest
from k3cloud_webapi_sdk.main import K3CloudApiSdk

from wdt_kingdee_assets.kingdee.signing import client_secret, login_sign, sdk_headers
from wdt_kingdee_assets.sandbox.credentials import KingdeeCredentials

VECTOR_URL = (
    "http://erp.example.com/k3cloud/"
    "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.BatchSave.common.kdsvc"
)
VECTOR = {
    "acct_id": "65f0a1b2c3d4e5",
    "username": "apiuser",
    "app_id": "123456_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "app_secret": "0123456789abcdef0123456789abcdef",
    "lcid": 2052,
    "org_num": 0,
    "timestamp": 1700000000,
}


def test_reference_vector_client_secret() -> None:
    assert client_secret(VECTOR["app_id"]) == "MYCoJZeSGwXGBEGadoeaapeBWl5U7BoK"


def test_reference_vector_headers_byte_for_byte() -> None:
    headers = sdk_headers(VECTOR_URL, **VECTOR)
    assert headers == {
        "X-Api-ClientID": "123456",
        "X-Api-Auth-Version": "2.0",
        "x-api-timestamp": "1700000000",
        "x-api-nonce": "1700000000",
        "x-api-signheaders": "x-api-timestamp,x-api-nonce",
        "X-Api-Signature": (
            "ODVhMzU1NjU0ZmZhOGU4NmE4MzA2ZGViMzc2NTU2ODI4NjFhYjFhYzAwNTI5MWIyMjQwOTY0YjYwODc3OWJiYg=="
        ),
        "X-Kd-Appkey": "123456_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        "X-Kd-Appdata": "NjVmMGExYjJjM2Q0ZTUsYXBpdXNlciwyMDUyLDA=",
        "X-Kd-Signature": (
            "ZDRkYzc3NTY3ODg4ZDZkMDM5NTM1NDZmZTgzNGU2ZWI4NjExYWMxN2Q0ODhmMTI2NzkwMGM0MmU4YmEwNTYxOA=="
        ),
    }


@pytest.mark.parametrize(
    "app_id",
    ["no-underscore", "1_2_3", "123_short", "123_" + "A" * 31 + "=", "123_" + "!" * 32],
)
def test_client_secret_is_empty_where_the_sdk_gives_up(app_id: str) -> None:
    assert client_secret(app_id) == ""


@pytest.mark.parametrize(
    ("credentials", "org_num", "url"),
    [
        (
            KingdeeCredentials(),
            100,
            "http://127.0.0.1:8123/k3cloud/"
            "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc",
        ),
        (
            KingdeeCredentials(
                acct_id=VECTOR["acct_id"],
                username="接口用户",
                app_id=VECTOR["app_id"],
                app_secret=VECTOR["app_secret"],
                lcid=1033,
            ),
            0,
            VECTOR_URL,
        ),
    ],
)
def test_headers_match_the_official_sdk(
    monkeypatch: pytest.MonkeyPatch, credentials: KingdeeCredentials, org_num: int, url: str
) -> None:
    """The SDK stamps with time.time(); freeze it so both sides sign the same second."""
    monkeypatch.setattr(time, "time", lambda: 1712345678.9)
    sdk = K3CloudApiSdk("http://127.0.0.1:8123/k3cloud/")
    sdk.InitConfig(
        credentials.acct_id,
        credentials.username,
        credentials.app_id,
        credentials.app_secret,
        "http://127.0.0.1:8123/k3cloud/",
        lcid=credentials.lcid,
        org_num=org_num,
    )
    theirs = sdk.BuildHeader(url)
    ours = sdk_headers(
        url,
        acct_id=credentials.acct_id,
        username=credentials.username,
        app_id=credentials.app_id,
        app_secret=credentials.app_secret,
        lcid=credentials.lcid,
        org_num=org_num,
        timestamp=1712345678,
    )
    assert {name: theirs[name] for name in ours} == ours


def test_login_sign_is_sha256_of_the_ordinal_sorted_concatenation() -> None:
    # Sorted by code point: "0123…" < "123456_…" < "1700000000" < "65f0…" < "apiuser".
    expected = hashlib.sha256(
        b"0123456789abcdef0123456789abcdef"
        b"123456_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
        b"1700000000"
        b"65f0a1b2c3d4e5"
        b"apiuser"
    ).hexdigest()
    sign = login_sign(
        VECTOR["acct_id"], VECTOR["username"], VECTOR["app_id"], VECTOR["app_secret"], 1700000000
    )
    assert sign == expected
    assert sign == sign.lower() and len(sign) == 64
