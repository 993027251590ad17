"""HTTP plumbing shared by the carrier plugins that call a REST API with `requests`.

Imported only from inside `send` and lookups, so the webhook path never loads `requests`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import urllib3.exceptions

from parley.carriers.base import FailureKind, SendFailed

if TYPE_CHECKING:
    import requests

CONNECT_TIMEOUT_SECONDS = 3.05  # just over a TCP retransmit window, as requests advises


def new_session() -> requests.Session:
    import requests

    return requests.Session()


def network_failure(exc: requests.RequestException, *, idempotent: bool = False) -> SendFailed:
    """Connection never made → retry; after the request may have left → reconcile first.

    With `idempotent` (the carrier honours the idempotency key we sent) a resend can't duplicate,
    so every network failure is simply transient.
    """
    import requests

    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return SendFailed(FailureKind.PERMANENT, "the carrier API address is misconfigured")
    if isinstance(exc, requests.ConnectTimeout) or never_connected(exc):
        return SendFailed(FailureKind.TRANSIENT, "could not reach the carrier; it will be retried")
    if idempotent:
        return SendFailed(FailureKind.TRANSIENT, "the carrier did not answer; it will be retried safely")
    if isinstance(exc, requests.ReadTimeout):
        return SendFailed(
            FailureKind.AMBIGUOUS, "the carrier did not answer in time; checking before any retry"
        )
    return SendFailed(
        FailureKind.AMBIGUOUS, "the connection to the carrier broke after sending; checking before any retry"
    )


def never_connected(exc: BaseException) -> bool:
    """True when urllib3 says the TCP connection was never established (refused, DNS, connect timeout)."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen or not isinstance(current, BaseException):
            continue
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.ConnectTimeoutError | urllib3.exceptions.ClosedPoolError):
            return True  # NewConnectionError and NameResolutionError are ConnectTimeoutError subclasses
        if isinstance(current, urllib3.exceptions.ProtocolError):
            return False  # the connection existed and broke: the request may have gone out
        pending.extend(current.args)
        pending.extend((getattr(current, "reason", None), current.__cause__, current.__context__))
    return False


def json_object(response: requests.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when the body is not one (error pages, empty bodies)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
