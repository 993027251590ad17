"""The S3 media store on moto, and the processor copying an MMS into it through the real adapters."""

from __future__ import annotations

import boto3
import pytest

from parley.adapters.aws import S3MediaStore
from parley.adapters.dynamo import (
    DynamoContacts,
    DynamoMessages,
    DynamoNumbers,
    DynamoOptOuts,
    DynamoReceipts,
)
from parley.carriers.base import FetchedMedia
from parley.config import Settings
from parley.domain.ids import inbound_message_id
from parley.domain.models import InboundMessage, Media, OurNumber
from parley.services.inbound import InboundProcessor
from tests.fakes import T0, FakeMediaCarrier, RecordingPublisher

BUCKET = "parley-media-test"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@pytest.fixture
def s3(aws_settings: Settings) -> object:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_put_stores_the_bytes_and_type_and_returns_the_s3_uri(s3: object) -> None:
    store = S3MediaStore(BUCKET, "us-east-1")
    uri = store.put("media/msg-1/0", PNG, "image/png")
    assert uri == f"s3://{BUCKET}/media/msg-1/0"
    stored = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key="media/msg-1/0")
    assert stored["Body"].read() == PNG
    assert stored["ContentType"] == "image/png"


@pytest.mark.parametrize(
    ("given", "saved"),
    [
        (None, "application/octet-stream"),
        ("IMAGE/JPEG; charset=binary", "image/jpeg"),
        ("text/html\r\nX-Evil: 1", "application/octet-stream"),
        ("not a type", "application/octet-stream"),
    ],
)
def test_put_keeps_only_a_plain_media_type(s3: object, given: str | None, saved: str) -> None:
    S3MediaStore(BUCKET, "us-east-1").put("media/msg-2/0", b"x", given)
    head = boto3.client("s3", region_name="us-east-1").head_object(Bucket=BUCKET, Key="media/msg-2/0")
    assert head["ContentType"] == saved


def test_a_second_put_to_the_same_key_overwrites_it(s3: object) -> None:
    store = S3MediaStore(BUCKET, "us-east-1")
    store.put("media/msg-3/0", b"first", "image/png")
    store.put("media/msg-3/0", PNG, "image/png")
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key="media/msg-3/0")["Body"]
    assert body.read() == PNG


def test_a_missing_bucket_setting_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="bucket"):
        S3MediaStore("", "us-east-1")


def test_the_processor_copies_an_mms_into_the_bucket_and_records_it_in_dynamodb(
    aws_settings: Settings, s3: object
) -> None:
    numbers = DynamoNumbers()
    numbers.save(OurNumber(number="+15005550006", carrier="twilio", is_default=True))
    carrier = FakeMediaCarrier("twilio")
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    carrier.media = {url: FetchedMedia(PNG, "image/png")}
    processor = InboundProcessor(
        DynamoMessages(aws_settings),
        DynamoReceipts(),
        numbers,
        DynamoContacts(),
        RecordingPublisher(),
        lambda: T0,
        opt_outs=DynamoOptOuts(),
        carriers=lambda name: carrier,
        media=S3MediaStore(BUCKET, "us-east-1"),
    )
    event = InboundMessage(
        carrier="twilio",
        carrier_message_id="MM1",
        from_number="+14155550100",
        to_number="+15005550006",
        media=(Media(url=url, content_type="image/png"),),
        received_at=T0,
    )

    processor.store_inbound(event)
    processor.store_inbound(event)  # the carrier's retry: no second copy

    message_id = inbound_message_id("twilio", "MM1")
    stored = DynamoMessages(aws_settings).get(message_id)
    assert stored is not None
    location = f"s3://{BUCKET}/media/{message_id}/0"
    assert stored.media == [Media(url=url, content_type="image/png", stored_at=location, size=len(PNG))]
    assert carrier.fetched == [url]
    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
    assert [o["Key"] for o in listed["Contents"]] == [f"media/{message_id}/0"]
