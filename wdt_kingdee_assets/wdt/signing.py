"""WDT Ultimate request signing (reference §3): pure functions, no I/O.

The secret half of ``WDT_APPSECRET`` never leaves this process: only its md5 with the request
does. The salt half travels in clear in the query string.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

# WDT timestamps count seconds from 2012-01-01 00:00:00 Beijing time (= 2011-12-31 16:00 UTC).
WDT_EPOCH_OFFSET = 1325347200


def split_appsecret(appsecret: str) -> tuple[str, str]:
    """Split an issued appsecret ``secret:salt`` at its first ``:``.

    The error names the expected form but never echoes the value: it is a credential.
    """
    secret, separator, salt = appsecret.partition(":")
    if not separator or not secret or not salt:
        raise ValueError(
            "WDT_APPSECRET must have the form 'secret:salt' as WDT issues it "
            "(two non-empty parts joined by ':'); the value given does not"
        )
    return secret, salt


def wdt_timestamp(unix_seconds: float) -> int:
    """The ``timestamp`` system parameter: whole Unix seconds minus the WDT epoch offset."""
    return int(unix_seconds) - WDT_EPOCH_OFFSET


def sign(params: Mapping[str, str], body: str, secret: str) -> str:
    """md5(secret + k1v1k2v2… + secret) over the query params plus ``body``, keys sorted.

    ``sign`` itself is excluded so that a server can verify by passing the whole query back.
    The body must be the exact text that is sent: the server hashes the bytes it received.
    """
    fields = {key: value for key, value in params.items() if key != "sign"}
    fields["body"] = body
    joined = "".join(f"{key}{fields[key]}" for key in sorted(fields))
    return hashlib.md5(f"{secret}{joined}{secret}".encode()).hexdigest()
