"""Kingdee WebAPI signatures (reference §2): the SDK's per-request headers and LoginBySign's sign.

Pure functions, shared by the client (to sign) and the sandbox (to verify), so both sides speak
exactly the bytes the official Python SDK ``kingdee-cdp-webapi-sdk`` 8.2.0 sends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote, urlsplit

# The XOR key the SDK de-obfuscates (rot13 of a constant, random filler digits dropped) before it
# turns the 32 characters after ``_`` in an app_id into the client secret (reference §2b).
_CLIENT_SECRET_XOR_KEY = b"0054f397c6234378b09ca7d3e5debce7"
_APP_ID_SECRET_LENGTH = 32


def _b64_hex_hmac(key: str, message: str) -> str:
    """``B64(HEX(HMAC_SHA256))``: Kingdee base64-encodes the *hex text* of the digest (88 chars)."""
    digest = hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii")


def client_secret(app_id: str) -> str:
    """The ``clientSec`` that keys ``X-Api-Signature``, derived from the app_id alone.

    The SDK yields an empty key when the app_id has no single ``_`` or the part after it is not
    32 base64 characters without padding; we reproduce that rather than fail, because the SDK
    then still sends (and a server still sees) a signature keyed with the empty string.
    """
    parts = app_id.split("_")
    if len(parts) != 2:
        return ""
    encoded = parts[1]
    if len(encoded) != _APP_ID_SECRET_LENGTH or "=" in encoded:
        return ""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return ""
    mixed = bytes(byte ^ key for byte, key in zip(raw, _CLIENT_SECRET_XOR_KEY, strict=False))
    return base64.b64encode(mixed).decode("ascii")


def request_path(url: str) -> str:
    """The part of ``url`` that is signed: from the first ``/`` after the host, query excluded.

    (The SDK cuts at the first ``/`` from character 10 on, which is the same for any real host.)
    """
    split = urlsplit(url)
    return split.path or "/"


def api_signature(path: str, *, app_id: str, timestamp: str, nonce: str) -> str:
    """``X-Api-Signature``: HMAC of POST, the path (``/`` → ``%2F``), the nonce and timestamp."""
    encoded_path = quote(path, safe="", encoding="utf-8")
    message = f"POST\n{encoded_path}\n\nx-api-nonce:{nonce}\nx-api-timestamp:{timestamp}\n"
    return _b64_hex_hmac(client_secret(app_id), message)


def app_data(acct_id: str, username: str, lcid: int, org_num: int | str) -> str:
    """The plain text that ``X-Kd-Appdata`` carries in base64 and ``X-Kd-Signature`` signs."""
    return f"{acct_id},{username},{lcid},{org_num}"


def kd_signature(app_id: str, app_secret: str, plain_app_data: str) -> str:
    """``X-Kd-Signature``: the only header keyed by app_secret, so the one a server must check."""
    return _b64_hex_hmac(app_secret, app_id + plain_app_data)


def sdk_headers(
    url: str,
    *,
    acct_id: str,
    username: str,
    app_id: str,
    app_secret: str,
    lcid: int,
    org_num: int | str,
    timestamp: int,
) -> dict[str, str]:
    """The signed headers the official SDK sends on every POST (reference §2b), name for name.

    ``timestamp`` is unix seconds and doubles as the nonce, as in the Python SDK.
    """
    stamp = str(int(timestamp))
    plain = app_data(acct_id, username, lcid, org_num)
    return {
        "X-Api-ClientID": app_id.split("_")[0] if app_id.count("_") == 1 else "",
        "X-Api-Auth-Version": "2.0",
        "x-api-timestamp": stamp,
        "x-api-nonce": stamp,
        "x-api-signheaders": "x-api-timestamp,x-api-nonce",
        "X-Api-Signature": api_signature(
            request_path(url), app_id=app_id, timestamp=stamp, nonce=stamp
        ),
        "X-Kd-Appkey": app_id,
        "X-Kd-Appdata": base64.b64encode(plain.encode("utf-8")).decode("ascii"),
        "X-Kd-Signature": kd_signature(app_id, app_secret, plain),
    }


def login_sign(acct_id: str, username: str, app_id: str, app_secret: str, timestamp: int) -> str:
    """LoginBySign's ``sign``: lowercase hex SHA256 of the five values sorted ordinally, joined.

    Python's default ``str`` ordering is by code point, which is the ordinal order Kingdee uses.
    """
    parts = sorted([acct_id, username, app_id, app_secret, str(int(timestamp))])
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()
