"""API Gateway HTTP API (payload v2) glue shared by the HTTP handlers."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl

from parley.carriers.base import WebhookRequest


def raw_body(event: dict[str, Any]) -> bytes:
    """The exact bytes the caller sent; HTTP APIs base64-encode form posts."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")


def public_url(event: dict[str, Any], public_base_url: str) -> str:
    """The URL the carrier signed: the configured public base plus path and query, exactly."""
    path = event.get("rawPath", "/")
    query = event.get("rawQueryString") or ""
    base = public_base_url.rstrip("/")
    if not base:
        domain = event.get("requestContext", {}).get("domainName", "")
        base = f"https://{domain}"
    return f"{base}{path}" + (f"?{query}" if query else "")


def webhook_request(event: dict[str, Any], public_base_url: str) -> WebhookRequest:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return WebhookRequest(
        method=event.get("requestContext", {}).get("http", {}).get("method", "POST"),
        url=public_url(event, public_base_url),
        headers=headers,
        body=raw_body(event),
        query=dict(parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True)),
    )


def response(status: int, body: Any, *, content_type: str = "application/json") -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return {"statusCode": status, "headers": {"Content-Type": content_type}, "body": text}


def error(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return response(status, {"error": message, **extra})
