"""What the CRM REST adapters (Salesforce, HubSpot, Dynamics 365) share: one JSON call with its failures
classified the same way, the bearer-token sources, and the text of a digest day.

Classification, for every CRM: a timeout or a connection error, HTTP 429 (rate limited; its
``Retry-After`` is carried on the error) and any 5xx are transient (`CrmError(transient=True)`: the next
digest run retries); any other non-2xx is permanent, with the CRM's own error message as the reason.
Tokens never appear in a reason or a log line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import requests

from parley.crm.webhook import CrmError, parse_retry_after

__all__ = [
    "ClientCredentials",
    "StaticToken",
    "TokenSource",
    "call",
    "day_lines",
    "fit_lines",
    "media_tag",
    "retry_after",
]

TokenSource = Callable[[bool], str]
"""Returns a bearer token; called with True after a 401, to fetch a fresh one if it can."""


def StaticToken(token: str) -> TokenSource:  # noqa: N802 - reads like the class it stands for
    """A configured token (e.g. a HubSpot private-app token): a 401 can't be helped by asking again."""
    if not token:
        raise ValueError("the CRM needs a token")

    def source(_refresh: bool) -> str:
        return token

    return source


class ClientCredentials:
    """OAuth 2.0 client-credentials grant (RFC 6749 §4.4), the token cached until a 401 asks for another.

    Salesforce: ``POST {instance}/services/oauth2/token``; Microsoft Entra ID (Dynamics 365):
    ``POST https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`` with ``scope={instance}/.default``.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str = "",
        session: requests.Session,
        timeout: float,
    ) -> None:
        if not (token_url and client_id and client_secret):
            raise ValueError("client credentials need a token URL, a client id and a client secret")
        self._token_url = token_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        if scope:
            self._form["scope"] = scope
        self._session = session
        self._timeout = timeout
        self._token = ""
        self._lock = threading.Lock()

    def __call__(self, refresh: bool) -> str:
        with self._lock:
            if refresh or not self._token:
                self._token = self._fetch()
            return self._token

    def _fetch(self) -> str:
        try:
            response = self._session.post(
                self._token_url, data=self._form, timeout=self._timeout, allow_redirects=False
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise CrmError(f"CRM token endpoint unreachable: {type(exc).__name__}", transient=True) from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise CrmError(f"CRM token endpoint answered {status}", transient=True, status_code=status)
        data = _json_or_none(response)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not 200 <= status < 300 or not isinstance(token, str) or not token:
            detail = ""
            if isinstance(data, dict):
                detail = str(data.get("error_description") or data.get("error") or "")[:200]
            raise CrmError(
                f"CRM token request refused with {status}: {detail or 'no access_token'}",
                transient=False,
                status_code=status,
            )
        return token


def call(
    session: requests.Session,
    method: str,
    url: str,
    *,
    crm: str,
    token: TokenSource,
    json_body: Any,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> requests.Response:
    """One authenticated JSON request; a 2xx comes back, anything else is raised as a classified CrmError.

    A 401 is retried once with a fresh token (a client-credentials token may have expired); a second 401
    is permanent: the credentials are wrong.
    """
    response = _send(
        session,
        method,
        url,
        crm=crm,
        token=token(False),
        json_body=json_body,
        timeout=timeout,
        headers=headers,
    )
    if response.status_code == 401:
        response = _send(
            session,
            method,
            url,
            crm=crm,
            token=token(True),
            json_body=json_body,
            timeout=timeout,
            headers=headers,
        )
    status = response.status_code
    if 200 <= status < 300:
        return response
    detail = error_detail(response)
    if status == 429 or status >= 500:
        wait = retry_after(response)
        hint = f" (Retry-After {wait:g}s)" if wait is not None else ""
        raise CrmError(
            f"{crm} answered {status}{hint}: {detail}", transient=True, status_code=status, retry_after=wait
        )
    raise CrmError(f"{crm} rejected the record with {status}: {detail}", transient=False, status_code=status)


def _send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    crm: str,
    token: str,
    json_body: Any,
    timeout: float,
    headers: Mapping[str, str] | None,
) -> requests.Response:
    all_headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        **(headers or {}),
    }
    try:
        return session.request(
            method, url, json=json_body, headers=all_headers, timeout=timeout, allow_redirects=False
        )
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise CrmError(f"{crm} unreachable: {type(exc).__name__}", transient=True) from exc
    except requests.RequestException as exc:
        raise CrmError(f"{crm} request failed: {type(exc).__name__}", transient=False) from exc


def retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), finite and at most an hour; else None."""
    return parse_retry_after(response.headers.get("Retry-After"))


def error_detail(response: requests.Response) -> str:
    """A short, readable reason from any of the CRMs' error shapes.

    Salesforce: ``[{"message": ..., "errorCode": ...}]``; HubSpot: ``{"message": ..., "category": ...}``;
    Dynamics 365 (OData): ``{"error": {"code": ..., "message": ...}}``.
    """
    data = _json_or_none(response)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        first = data[0]
        code = first.get("errorCode")
        message = str(first.get("message", ""))
        return (f"{code}: {message}" if code else message)[:300]
    if isinstance(data, dict):
        inner = data.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:300]
        for key in ("message", "error_description", "error", "reason"):
            if isinstance(data.get(key), str):
                return str(data[key])[:300]
    text = response.text.strip()
    return text[:300] if text else response.reason or "no body"


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


_KINDS = (("image/", "picture"), ("video/", "video"), ("audio/", "audio recording"))


def media_tag(media: Any) -> str:
    """What a text's attachments were, for a line of text: ``[picture]``, ``[2 pictures]``,
    ``[2 attachments]`` (of different kinds), or "" for none."""
    if not isinstance(media, list) or not media:
        return ""
    kinds = set()
    for item in media:
        content_type = str(item.get("content_type") or "") if isinstance(item, dict) else ""
        kind = next(
            (word for prefix, word in _KINDS if content_type.lower().startswith(prefix)), "attachment"
        )
        kinds.add(kind)
    kind = kinds.pop() if len(kinds) == 1 else "attachment"
    return f"[{kind}]" if len(media) == 1 else f"[{len(media)} {kind}s]"


def day_lines(payload: Mapping[str, Any]) -> list[str]:
    """The day's messages in order, one line each:
    ``<time> <direction> <from> → <to>: <body> <[picture], when it had media> [<status>]``."""
    lines = []
    for message in payload.get("messages") or []:
        if not isinstance(message, dict):
            continue
        text = " ".join(
            part for part in (str(message.get("body") or ""), media_tag(message.get("media"))) if part
        )
        lines.append(
            f"{message.get('at', '')} {message.get('direction', '')} {message.get('from', '')} → "
            f"{message.get('to', '')}: {text} [{message.get('status', '')}]"
        )
    return lines


def omitted_line(count: int) -> str:
    """The line that stands for the earlier messages a record had no room for."""
    noun = "message" if count == 1 else "messages"
    return f"… {count} earlier {noun} not shown; the full day is in Parley"


def fit_lines(
    lines: list[str],
    limit: int,
    *,
    head: tuple[str, ...] = (),
    sep: str = "\n",
    escape: Callable[[str], str] = lambda text: text,
) -> str:
    """`head` (as it is) then `lines` (each escaped), joined by `sep`, in at most `limit` characters.

    When they don't all fit, whole lines go from the oldest (the first) and a line saying how many
    follows `head`, so the latest messages always show. When even the newest line alone has no room,
    it is cut (before escaping, so an escape is never split) and ends with "…".
    """
    shown = [escape(line) for line in lines]
    whole = sep.join([*head, *shown])
    if len(whole) <= limit:
        return whole
    fixed = sum(len(h) + len(sep) for h in head)  # head and the separator after each part
    kept = 0
    used = 0  # the kept lines and the separator before each
    while kept < len(lines):
        candidate = used + len(sep) + len(shown[-1 - kept])
        if fixed + len(escape(omitted_line(len(lines) - kept - 1))) + candidate > limit:
            break
        used = candidate
        kept += 1
    parts = list(head)
    if kept == 0:
        if len(lines) > 1:
            parts.append(escape(omitted_line(len(lines) - 1)))
        room = limit - sum(len(p) + len(sep) for p in parts)
        last = lines[-1] if lines else ""
        low, high = 0, len(last)  # the longest prefix whose escaped text, with "…", fits
        while low < high:
            middle = (low + high + 1) // 2
            if len(escape(last[:middle] + "…")) <= room:
                low = middle
            else:
                high = middle - 1
        if room > 0:
            parts.append(escape(last[:low] + "…"))
        return sep.join(parts)[:limit]  # only a head longer than the limit itself is cut here
    parts.append(escape(omitted_line(len(lines) - kept)))
    return sep.join([*parts, *shown[len(lines) - kept :]])
