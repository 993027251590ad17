"""GET /v1/messages/{message_id}/media/{index} through the real API handler, on moto's S3 and DynamoDB:
the web inbox loads a customer's picture with its token, as the message is visible."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from functions.api import app as api
from parley import wiring
from parley.adapters import aws
from parley.adapters.dynamo import DynamoMessages
from parley.domain.models import Media
from parley.services.inbox import MAX_MEDIA_BYTES, StoredMedium
from tests.integration.test_dynamo_adapters import T0, msg
from tests.integration.test_handlers import CONTEXT, REGION, Stack, http_event
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

BUCKET = "parley-media-api-test"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
SALES = {"sub": "u-sales", "teams": "[sales]"}
SUPPORT = {"sub": "u-support", "team": "support"}
CARRIER_URL = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME{}"


@pytest.fixture
def media(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoMessages]:  # noqa: F811
    """The stack with a media bucket configured, as template.yaml's Globals name it."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("PARLEY_MEDIA_BUCKET", BUCKET)
    wiring.reset_container()
    aws.client.cache_clear()
    yield DynamoMessages(stack.settings)
    wiring.reset_container()


def _stored(message_id: str, index: int, content: bytes, content_type: str) -> Media:
    key = f"media/{message_id}/{index}"
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key=key, Body=content, ContentType=content_type
    )
    return Media(
        url=CARRIER_URL.format(index),
        content_type=content_type,
        stored_at=f"s3://{BUCKET}/{key}",
        size=len(content),
    )


def _message(messages: DynamoMessages, message_id: str, *items: Media, **fields: Any) -> None:
    base = msg(message_id, team="sales")
    messages.insert(base.model_copy(update={"media": list(items), **fields}))


def _get(path: str, claims: dict[str, str] = SALES) -> dict[str, Any]:
    result: dict[str, Any] = api.handler(http_event("GET", path, claims=claims), CONTEXT)
    return result


def _error(result: dict[str, Any]) -> str:
    assert result["headers"]["Content-Type"] == "application/json"
    reason: str = json.loads(result["body"])["error"]
    return reason


def test_the_bytes_come_back_in_the_stored_type(media: DynamoMessages) -> None:
    pdf = b"%PDF-1.4 a receipt"
    _message(
        media, "mms-1", _stored("mms-1", 0, PNG, "image/png"), _stored("mms-1", 1, pdf, "application/pdf")
    )

    picture = _get("/v1/messages/mms-1/media/0")
    assert picture["statusCode"] == 200
    assert picture["isBase64Encoded"] is True
    assert base64.b64decode(picture["body"]) == PNG
    headers = picture["headers"]
    assert headers["Content-Type"] == "image/png"
    assert headers["Cache-Control"] == "private, max-age=300"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"] == "inline"

    document = _get("/v1/messages/mms-1/media/1")
    assert document["statusCode"] == 200 and base64.b64decode(document["body"]) == pdf
    assert document["headers"]["Content-Type"] == "application/pdf"
    assert document["headers"]["Content-Disposition"] == "attachment"


def test_another_teams_user_gets_404_as_for_the_message(media: DynamoMessages) -> None:
    _message(media, "mms-2", _stored("mms-2", 0, PNG, "image/png"))

    result = _get("/v1/messages/mms-2/media/0", claims=SUPPORT)
    assert result["statusCode"] == 404
    assert _error(result) == "no message with id mms-2"
    assert _get("/v1/messages/mms-2", claims=SUPPORT)["statusCode"] == 404  # the same rule
    assert _get("/v1/messages/no-such/media/0")["statusCode"] == 404


@pytest.mark.parametrize("index", ["1", "-1", "x", "00001", "1e3"])
def test_an_index_with_no_media_is_404(media: DynamoMessages, index: str) -> None:
    _message(media, "mms-3", _stored("mms-3", 0, PNG, "image/png"))

    result = _get(f"/v1/messages/mms-3/media/{index}")
    assert result["statusCode"] == 404
    assert "no media" in _error(result)


def test_a_text_without_media_is_404(media: DynamoMessages) -> None:
    _message(media, "sms-1")
    assert "has no media 0" in _error(_get("/v1/messages/sms-1/media/0"))


def test_media_not_stored_is_404_with_the_reason(media: DynamoMessages) -> None:
    refused = Media(url=CARRIER_URL.format(0), content_type="image/png", error="the carrier answered 404")
    pending = Media(url=CARRIER_URL.format(1), content_type="image/png")
    _message(media, "mms-4", refused, pending)

    first = _get("/v1/messages/mms-4/media/0")
    assert first["statusCode"] == 404 and "not stored: the carrier answered 404" in _error(first)
    second = _get("/v1/messages/mms-4/media/1")
    assert second["statusCode"] == 404 and "not copied" in _error(second)


def test_an_object_gone_from_the_bucket_is_404(media: DynamoMessages) -> None:
    item = _stored("mms-5", 0, PNG, "image/png")
    boto3.client("s3", region_name=REGION).delete_object(Bucket=BUCKET, Key="media/mms-5/0")
    _message(media, "mms-5", item)

    result = _get("/v1/messages/mms-5/media/0")
    assert result["statusCode"] == 404 and "no longer stored" in _error(result)


def test_an_object_too_large_for_a_response_is_413_naming_its_size(media: DynamoMessages) -> None:
    size = MAX_MEDIA_BYTES + 1
    _message(media, "mms-6", _stored("mms-6", 0, b"\0" * size, "image/jpeg"))

    result = _get("/v1/messages/mms-6/media/0")
    assert result["statusCode"] == 413
    assert str(size) in _error(result)


def test_media_expired_by_retention_is_404(media: DynamoMessages) -> None:
    _message(media, "mms-7", expired_at=T0, body="")

    result = _get("/v1/messages/mms-7/media/0")
    assert result["statusCode"] == 404
    assert "expired" in _error(result)


def test_the_store_reads_back_bytes_and_type_and_none_for_a_missing_key(media: DynamoMessages) -> None:
    store = aws.S3MediaStore(BUCKET, REGION)
    store.put("media/m-r/0", PNG, "IMAGE/PNG; charset=binary")
    assert store.read("media/m-r/0") == (PNG, "image/png")
    assert store.read("media/m-r/1") is None


@pytest.mark.parametrize("index", ["٠", "０", "²"])
def test_an_index_in_other_digits_than_ascii_is_404(media: DynamoMessages, index: str) -> None:
    _message(media, "mms-9", _stored("mms-9", 0, PNG, "image/png"))

    result = _get(f"/v1/messages/mms-9/media/{index}")
    assert result["statusCode"] == 404
    assert "no media" in _error(result)


@pytest.mark.parametrize("content_type", ["image/svg+xml; charset=utf-8", "Image/SVG+XML", " image/svg+xml "])
def test_an_svg_in_any_case_or_with_parameters_is_downloaded_not_shown(
    media: DynamoMessages, content_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The S3 store hands back a bare lower-case type; the handler does not count on it."""
    _message(media, "mms-svg", _stored("mms-svg", 0, PNG, "image/png"))
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    monkeypatch.setattr(wiring.container().inbox, "medium", lambda *args: StoredMedium(svg, content_type))

    result = _get("/v1/messages/mms-svg/media/0")
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Disposition"] == "attachment"
    monkeypatch.setattr(wiring.container().inbox, "medium", lambda *args: StoredMedium(PNG, "Image/PNG; x=1"))
    assert _get("/v1/messages/mms-svg/media/0")["headers"]["Content-Disposition"] == "inline"
