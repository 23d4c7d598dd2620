"""A backend's failure said in one line: what failed, at which remote, what to do, and
never a secret (the values of secret-looking variables and URL passwords are scrubbed
from whatever the backend's own message echoes; issue 17)."""

from __future__ import annotations

import os
import re

from vestige.errors import StoreError


def scrub(text: str) -> str:
    """`text` without the values of secret-looking environment variables and without the
    password of a URL: error messages of backends may echo either."""
    text = re.sub(r"(://[^/\s:@]*):[^/\s@]*@", r"\1:***@", text)
    for key, value in os.environ.items():
        upper = key.upper()
        secret = any(w in upper for w in ("SECRET", "TOKEN", "PASSWORD", "ACCESS_KEY", "KEY_ID"))
        if secret and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def failure(label: str, doing: str, error: BaseException) -> StoreError:
    """A backend's exception as one line for the user (exit 2): what failed, where, and
    what to do; the backend's own words scrubbed of secrets and cut short."""
    kind = type(error).__name__
    detail = scrub(" ".join(str(error).split()))[:200]
    names = {type(c).__name__ for c in _chain(error)}
    if names & {"NoCredentialsError", "PartialCredentialsError"}:
        return StoreError(
            f"{label}: no credentials found while {doing}; set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        )
    if isinstance(error, PermissionError) or ("ClientError" in names and "AccessDenied" in detail):
        return StoreError(
            f"{label}: access denied while {doing} ({detail}); check the "
            "credentials and the bucket's permissions"
        )
    connection = {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ClientConnectorError",
        "ConnectionRefusedError",
        "ServerDisconnectedError",
        "ReadTimeoutError",
    }
    if names & connection or isinstance(error, ConnectionError | TimeoutError):
        return StoreError(
            f"{label} is unreachable ({kind}) while {doing}; check the network "
            "and endpoint_url, then run the command again"
        )
    return StoreError(f"{label}: {doing} failed: {kind}: {detail}")


def _chain(error: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(out) < 10:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out
