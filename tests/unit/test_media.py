"""MMS media: downloaded with the carrier's credentials sent to its own hosts only, copied once.

The download tests run against local werkzeug servers and assert on what each server received. A
carrier's real hosts are https, so a local server is reached as an `extra_hosts` entry (plain http,
as the local stack's simulators are); whether it also gets credentials depends, as for any host, on
`allowed_hosts` alone.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from parley.carriers import http
from parley.carriers.bandwidth import BandwidthCarrier
from parley.carriers.base import FetchedMedia, MediaRejected, MediaSource
from parley.carriers.config import CarrierConfig
from parley.carriers.http import ANY_HOST, MediaUnavailable, download
from parley.carriers.plivo import PlivoCarrier
from parley.carriers.registry import build_carrier
from parley.carriers.telnyx import TelnyxCarrier
from parley.carriers.twilio import TwilioCarrier
from parley.carriers.vonage_messages import VonageMessagesCarrier
from parley.domain.ids import inbound_message_id
from parley.domain.models import InboundMessage, Media, OurNumber
from parley.ports import ConflictError
from tests.fakes import T0, FakeCarrier, FakeMediaCarrier, World

PNG = b"\x89PNG\r\n\x1a\n" + b"picture" * 20
AUTH = ("AC0123", "s3cret-token")
BASIC = "Basic " + base64.b64encode(b"AC0123:s3cret-token").decode()

# -- a local media server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    authorization: str | None


@dataclass
class MediaServer:
    """A threaded werkzeug server: `routes` maps a path to a function making the response."""

    routes: dict[str, Callable[[Request], Response]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.netloc}{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.received]

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        self.received.append(Received(request.path, request.headers.get("Authorization")))
        handler = self.routes.get(request.path)
        response = handler(request) if handler else Response("not found", status=404)
        return response(environ, start_response)


@pytest.fixture
def serve() -> Iterator[Callable[..., MediaServer]]:
    servers: list[tuple[Any, threading.Thread]] = []

    def start(ssl_context: ssl.SSLContext | None = None) -> MediaServer:
        app = MediaServer()
        server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
        app.port = server.server_port
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return app

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def png(_: Request) -> Response:
    return Response(PNG, content_type="image/png; charset=binary")


def redirect_to(location: str, status: int = 302) -> Callable[[Request], Response]:
    return lambda _: Response("", status=status, headers={"Location": location})


def status(code: int) -> Callable[[Request], Response]:
    return lambda _: Response("no", status=code)


def fetch(server: MediaServer, path: str, **options: Any) -> FetchedMedia:
    """Fetch as a carrier with credentials whose (only) host is `server`."""
    options.setdefault("allowed_hosts", (server.netloc,))
    options.setdefault("auth", AUTH)
    options.setdefault("extra_hosts", ("127.0.0.1",))
    options.setdefault("timeout", 5.0)
    return download(server.url(path), **options)


# -- which URLs may be fetched ----------------------------------------------------------------------

TWILIO = ("api.twilio.com", ".twilio.com")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        "https://API.Twilio.com./2010-04-01/Media/ME1",  # case and a trailing dot
        "https://media.us1.twilio.com/ME1",  # a subdomain, by the ".twilio.com" entry
        "https://api.twilio.com:443/ME1",  # the default port, spelled out
    ],
)
def test_the_carriers_hosts_and_their_subdomains_get_the_credentials(url: str) -> None:
    host, trusted = http._media_target(url, TWILIO, (), redirected=False)
    assert trusted and host.split(":")[0].endswith("twilio.com")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://api.twilio.com.evil.example/ME1", "not one of the carrier's"),  # a lookalike suffix
        ("https://evil-twilio.com/ME1", "not one of the carrier's"),
        ("https://eviltwilio.com/ME1", "not one of the carrier's"),
        ("https://twilio.com@evil.example/ME1", "user info"),  # the real host is evil.example
        ("https://api.twilio.com:8443/ME1", "not one of the carrier's"),  # another port
        ("http://api.twilio.com/ME1", "https"),  # credentials never go in the clear
        ("ftp://api.twilio.com/ME1", "https URL"),
        ("https:///ME1", "https URL"),
        ("https://api.twilio.com:99999/ME1", "malformed"),
        ("https://xn--twilio-\u00e9.com/ME1", "https URL"),  # not ASCII
        ("/2010-04-01/Media/ME1", "https URL"),
    ],
)
def test_urls_off_the_carriers_hosts_are_refused_before_any_request(url: str, words: str) -> None:
    with pytest.raises(MediaRejected, match=words) as caught:
        download(url, allowed_hosts=TWILIO, auth=AUTH, timeout=1.0)
    assert "ME1" not in str(caught.value)  # the URL (maybe presigned) is never in a reason


def test_an_allowed_http_host_is_still_refused_unless_it_is_a_local_simulator(
    serve: Callable[[], MediaServer],
) -> None:
    server = serve()
    server.routes["/m"] = png
    with pytest.raises(MediaRejected, match="https"):
        fetch(server, "/m", extra_hosts=())
    assert server.received == []
    assert fetch(server, "/m").content == PNG  # listed in extra_hosts: the local stack's case


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/m", "https://[::1]/m", "https://169.254.169.254/m", "https://localhost/m"]
)
def test_any_host_means_any_public_name_never_an_address(url: str) -> None:
    with pytest.raises(MediaRejected, match="public host"):
        download(url, allowed_hosts=(ANY_HOST,), auth=None, timeout=1.0)


def test_any_host_is_never_combined_with_credentials() -> None:
    with pytest.raises(ValueError, match="credentials"):
        download("https://media.example.com/a.png", allowed_hosts=(ANY_HOST,), auth=AUTH, timeout=1.0)


def test_any_host_sends_no_credentials_not_even_from_netrc(
    serve: Callable[[], MediaServer], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve()
    server.routes["/m"] = png
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login leaked password from-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    got = download(
        server.url("/m"), allowed_hosts=(ANY_HOST,), auth=None, timeout=5.0, extra_hosts=(server.netloc,)
    )
    assert got.content == PNG
    assert server.received == [Received("/m", None)]


# -- credentials and redirects ----------------------------------------------------------------------


def test_credentials_go_to_the_carrier_and_not_to_the_cdn_it_redirects_to(
    serve: Callable[[], MediaServer],
) -> None:
    carrier, cdn = serve(), serve()
    carrier.routes["/Media/ME1"] = redirect_to(cdn.url("/cdn/ME1.png?Expires=1&Signature=abc"), 307)
    cdn.routes["/cdn/ME1.png"] = png

    got = fetch(carrier, "/Media/ME1")

    assert got == FetchedMedia(PNG, "image/png")
    assert carrier.received == [Received("/Media/ME1", BASIC)]
    assert cdn.received == [Received("/cdn/ME1.png", None)]


def test_a_redirect_within_the_carriers_hosts_keeps_the_credentials(serve: Callable[[], MediaServer]) -> None:
    carrier = serve()
    carrier.routes["/old"] = redirect_to("/new", 301)  # relative, as servers often write it
    carrier.routes["/new"] = png
    assert fetch(carrier, "/old").content == PNG
    assert carrier.received == [Received("/old", BASIC), Received("/new", BASIC)]


def test_a_redirect_back_to_the_carrier_after_a_cdn_gets_the_credentials_again(
    serve: Callable[[], MediaServer],
) -> None:
    carrier, cdn = serve(), serve()
    carrier.routes["/a"] = redirect_to(cdn.url("/b"))
    cdn.routes["/b"] = redirect_to(carrier.url("/c"))
    carrier.routes["/c"] = png
    assert fetch(carrier, "/a").content == PNG
    assert [r.authorization for r in carrier.received] == [BASIC, BASIC]
    assert [r.authorization for r in cdn.received] == [None]


@pytest.mark.parametrize(
    "location",
    [
        "http://cdn.example.com/ME1.png",  # downgraded to http
        "https://10.0.0.7/ME1.png",  # an internal address
        "https://localhost/ME1.png",
        "ftp://cdn.example.com/ME1.png",
    ],
)
def test_a_redirect_to_http_or_an_internal_address_is_refused(
    serve: Callable[[], MediaServer], location: str
) -> None:
    carrier = serve()
    carrier.routes["/m"] = redirect_to(location)
    with pytest.raises(MediaRejected):
        fetch(carrier, "/m", extra_hosts=(carrier.netloc,))
    assert carrier.paths() == ["/m"]


def test_at_most_five_redirects_are_followed(serve: Callable[[], MediaServer]) -> None:
    carrier = serve()
    carrier.routes["/loop"] = redirect_to("/loop")
    with pytest.raises(MediaRejected, match="redirects"):
        fetch(carrier, "/loop")
    assert carrier.paths() == ["/loop"] * 6


def test_a_redirect_without_a_location_is_refused(serve: Callable[[], MediaServer]) -> None:
    carrier = serve()
    carrier.routes["/m"] = status(302)
    with pytest.raises(MediaRejected, match="Location"):
        fetch(carrier, "/m")


# -- answers and sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [404, 410, 400, 401, 403])
def test_gone_or_refused_files_are_rejected_for_good(serve: Callable[[], MediaServer], code: int) -> None:
    carrier = serve()
    carrier.routes["/m"] = status(code)
    with pytest.raises(MediaRejected, match=f"HTTP {code}"):
        fetch(carrier, "/m")


@pytest.mark.parametrize("code", [500, 502, 503, 429, 408])
def test_server_trouble_is_transient(serve: Callable[[], MediaServer], code: int) -> None:
    carrier = serve()
    carrier.routes["/m"] = status(code)
    with pytest.raises(MediaUnavailable, match=f"HTTP {code}") as caught:
        fetch(carrier, "/m")
    assert not isinstance(caught.value, MediaRejected)


def test_a_file_over_the_cap_is_rejected_by_its_declared_length(serve: Callable[[], MediaServer]) -> None:
    carrier = serve()
    carrier.routes["/big"] = lambda _: Response(b"x" * 2048, content_type="image/jpeg")
    with pytest.raises(MediaRejected, match="larger than 1000 bytes"):
        fetch(carrier, "/big", max_bytes=1000)
    assert fetch(carrier, "/big", max_bytes=2048).content == b"x" * 2048  # exactly the cap is fine


def test_a_file_over_the_cap_is_rejected_while_streaming_when_no_length_is_declared(
    serve: Callable[[], MediaServer],
) -> None:
    sent: list[int] = []

    def endless(_: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(10_000):  # 640 MB if nobody stopped reading
                sent.append(1)
                yield b"y" * 65536

        return Response(chunks(), content_type="video/mp4")  # chunked: no Content-Length

    carrier = serve()
    carrier.routes["/stream"] = endless
    with pytest.raises(MediaRejected, match="larger than"):
        fetch(carrier, "/stream", max_bytes=100_000)
    assert len(sent) < 100


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_server_trickling_the_file_is_cut_off_at_the_deadline(
    serve: Callable[[], MediaServer], declared: bool
) -> None:
    """Each byte arrives well within the read timeout, yet the whole download stops near its deadline
    (twice the timeout) instead of holding the function until it times out."""

    def trickle() -> Iterator[bytes]:
        for _ in range(200):  # 10 s at most
            yield b"x"
            time.sleep(0.05)

    def slow_file(_: Request) -> Response:
        headers = {"Content-Length": "200"} if declared else {}
        return Response(trickle(), content_type="image/png", headers=headers, direct_passthrough=True)

    carrier = serve()
    carrier.routes["/trickle"] = slow_file
    started = time.monotonic()
    with pytest.raises(MediaUnavailable, match="too slowly"):
        fetch(carrier, "/trickle", timeout=0.5)
    assert time.monotonic() - started < 3.0


def test_a_timeout_is_transient(serve: Callable[[], MediaServer]) -> None:
    def slow(_: Request) -> Response:
        time.sleep(1.0)
        return Response(PNG)

    carrier = serve()
    carrier.routes["/slow"] = slow
    with pytest.raises(requests.Timeout):
        fetch(carrier, "/slow", timeout=0.2)


def test_a_refused_connection_is_transient(serve: Callable[[], MediaServer]) -> None:
    carrier = serve()
    closed = f"127.0.0.1:{_free_port()}"
    with pytest.raises(requests.ConnectionError):
        download(f"http://{closed}/m", allowed_hosts=(closed,), auth=AUTH, timeout=1.0, extra_hosts=(closed,))
    assert carrier.received == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_content_type_is_the_bare_media_type_or_none(serve: Callable[[], MediaServer]) -> None:
    carrier = serve()
    carrier.routes["/typed"] = png
    carrier.routes["/untyped"] = lambda _: Response(PNG, headers={"Content-Type": ""})
    assert fetch(carrier, "/typed").content_type == "image/png"
    assert fetch(carrier, "/untyped").content_type is None


# -- the carriers -----------------------------------------------------------------------------------


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def record(url: str, **options: Any) -> FetchedMedia:
        calls.append({"url": url, **options})
        return FetchedMedia(PNG, "image/png")

    monkeypatch.setattr(http, "download", record)
    return calls


def test_twilio_fetches_from_twilio_hosts_with_the_account_credentials(
    downloads: list[dict[str, Any]],
) -> None:
    carrier = TwilioCarrier("AC1", "token", timeout=7.0)
    assert carrier.fetch_media("https://api.twilio.com/ME1") == FetchedMedia(PNG, "image/png")
    [call] = downloads
    assert call["allowed_hosts"] == ("twilio.com",)
    assert (call["auth"], call["timeout"], call["extra_hosts"]) == (("AC1", "token"), 7.0, ())


def test_plivo_fetches_from_plivo_hosts_with_the_auth_id_and_token(downloads: list[dict[str, Any]]) -> None:
    PlivoCarrier("MA1", "token").fetch_media("https://media.plivo.com/Account/MA1/Media/1")
    [call] = downloads
    assert set(call["allowed_hosts"]) == {"api.plivo.com", "media.plivo.com"}
    assert call["auth"] == ("MA1", "token")


def test_bandwidth_fetches_from_its_messaging_host_with_the_api_user(downloads: list[dict[str, Any]]) -> None:
    reads: list[str] = []
    carrier = BandwidthCarrier(
        account_id="99",
        username="api-user",
        password=lambda: reads.append("read") or "api-pass",
        application_id="app",
        callback_username="cb",
        callback_passwords=("cb-pass",),
    )
    carrier.fetch_media("https://messaging.bandwidth.com/api/v2/users/99/media/m/0/a.jpg")
    [call] = downloads
    assert call["allowed_hosts"] == ("messaging.bandwidth.com",)
    assert call["auth"] == ("api-user", "api-pass")  # never the callback credentials
    assert reads == ["read"]


@pytest.mark.parametrize(
    "carrier",
    [TelnyxCarrier(api_key="KEY-secret"), VonageMessagesCarrier("key", "api-secret", ("sig-secret",))],
    ids=["telnyx", "vonage-messages"],
)
def test_carriers_with_unauthenticated_media_urls_send_no_credentials(
    downloads: list[dict[str, Any]], carrier: MediaSource
) -> None:
    carrier.fetch_media("https://media.example.net/abc/IMG_1.jpg")
    [call] = downloads
    assert call["allowed_hosts"] == (ANY_HOST,) and call["auth"] is None


def test_carriers_without_credentials_send_none(downloads: list[dict[str, Any]]) -> None:
    TwilioCarrier("", "").fetch_media("https://api.twilio.com/ME1")
    assert downloads[0]["auth"] is None


MMS_CARRIERS = ["twilio", "telnyx", "vonage-messages", "bandwidth", "plivo"]
CONFIG = {
    "PARLEY_TWILIO_ACCOUNT_SID": "AC1",
    "PARLEY_TWILIO_AUTH_TOKEN": "token",
    "PARLEY_PLIVO_AUTH_ID": "MA1",
    "PARLEY_PLIVO_AUTH_TOKEN": "token",
    "PARLEY_BANDWIDTH_USERNAME": "api-user",
    "PARLEY_BANDWIDTH_PASSWORD": "api-pass",
}


@pytest.mark.parametrize("name", MMS_CARRIERS)
def test_carriers_with_mms_are_media_sources_and_read_the_local_simulator_hosts(
    downloads: list[dict[str, Any]], name: str
) -> None:
    key = f"PARLEY_{name.upper().replace('-', '_')}_MEDIA_HOSTS_EXTRA"
    carrier = build_carrier(name, CarrierConfig({**CONFIG, key: " 127.0.0.1:8787 , localhost "}))
    assert isinstance(carrier, MediaSource)
    carrier.fetch_media("http://127.0.0.1:8787/_sim/x/_media/parley.png")
    [call] = downloads
    assert call["extra_hosts"] == ("127.0.0.1:8787", "localhost")
    assert {"127.0.0.1:8787", "localhost"} <= set(call["allowed_hosts"])  # the simulator stands in


@pytest.mark.parametrize("name", MMS_CARRIERS)
def test_the_local_stack_fetches_media_from_its_simulators_only(
    downloads: list[dict[str, Any]], name: str
) -> None:
    key = f"PARLEY_{name.upper().replace('-', '_')}_MEDIA_HOSTS_EXTRA"
    env = {**CONFIG, key: "127.0.0.1:8787", "PARLEY_MEDIA_HOSTS_EXTRA_ONLY": "true"}
    carrier = build_carrier(name, CarrierConfig(env))
    assert isinstance(carrier, MediaSource)
    carrier.fetch_media("http://127.0.0.1:8787/_media/parley.png")
    assert downloads[0]["allowed_hosts"] == ("127.0.0.1:8787",)


@pytest.mark.parametrize("name", ["vonage", "aws"])
def test_carriers_without_mms_are_not_media_sources(name: str) -> None:
    env = {
        "PARLEY_AWS_SNS_TOPIC_ARNS": "arn:aws:sns:us-east-1:123456789012:parley",
        "PARLEY_VONAGE_API_KEY": "key",
        "PARLEY_VONAGE_API_SECRET": "secret",
        "PARLEY_VONAGE_SIGNATURE_SECRET": "signature-secret",
    }
    assert not isinstance(build_carrier(name, CarrierConfig(env)), MediaSource)


def test_a_carrier_only_sends_its_credentials_to_its_listed_host(serve: Callable[[], MediaServer]) -> None:
    """End to end through TwilioCarrier: its simulator host gets them; a URL elsewhere is refused."""
    twilio, other = serve(), serve()
    twilio.routes["/ME1"] = png
    other.routes["/ME1"] = png
    carrier = TwilioCarrier("AC0123", "s3cret-token", media_hosts=(), media_hosts_extra=(twilio.netloc,))
    assert carrier.fetch_media(twilio.url("/ME1")).content == PNG
    with pytest.raises(MediaRejected):
        carrier.fetch_media(other.url("/ME1"))
    assert twilio.received == [Received("/ME1", BASIC)] and other.received == []


# -- the processor copies media once ----------------------------------------------------------------

OURS = "+15005550006"
CUSTOMER = "+14155550100"
URL_A = "https://media.example.test/a.jpg"
URL_B = "https://media.example.test/b.png"


@pytest.fixture
def world() -> World:
    w = World(carrier=FakeMediaCarrier())
    w.numbers.save(OurNumber(number=OURS, carrier="fake", team="sales", is_default=True))
    return w


@pytest.fixture
def carrier(world: World) -> FakeMediaCarrier:
    assert isinstance(world.carrier, FakeMediaCarrier)
    return world.carrier


def mms(*urls: str, sid: str = "MM1") -> InboundMessage:
    return InboundMessage(
        carrier="fake",
        carrier_message_id=sid,
        from_number=CUSTOMER,
        to_number=OURS,
        body="see attached",
        media=tuple(Media(url=u, content_type="image/jpeg" if u.endswith("jpg") else None) for u in urls),
        received_at=T0,
    )


def stored_media(world: World, sid: str = "MM1") -> list[Media]:
    message = world.messages.get(inbound_message_id("fake", sid))
    assert message is not None
    return message.media


def test_each_attachment_is_copied_to_the_store_and_the_message_records_where(
    world: World, carrier: FakeMediaCarrier
) -> None:
    carrier.media = {URL_A: FetchedMedia(b"jpeg-bytes", "image/jpeg"), URL_B: FetchedMedia(PNG, "image/png")}
    returned = world.processor().store_inbound(mms(URL_A, URL_B))

    message_id = inbound_message_id("fake", "MM1")
    assert world.media.objects == {
        f"media/{message_id}/0": (b"jpeg-bytes", "image/jpeg"),
        f"media/{message_id}/1": (PNG, "image/png"),
    }
    bucket = world.media.bucket
    assert stored_media(world) == [
        Media(url=URL_A, content_type="image/jpeg", stored_at=f"s3://{bucket}/media/{message_id}/0", size=10),
        Media(
            url=URL_B,
            content_type="image/png",
            stored_at=f"s3://{bucket}/media/{message_id}/1",
            size=len(PNG),
        ),
    ]
    assert returned is not None and returned.media == stored_media(world)
    assert world.events.types == ["MessageReceived"]


def test_a_duplicate_webhook_does_not_copy_again(world: World, carrier: FakeMediaCarrier) -> None:
    carrier.media = {URL_A: FetchedMedia(b"jpeg-bytes", "image/jpeg")}
    processor = world.processor()
    processor.store_inbound(mms(URL_A))
    assert processor.store_inbound(mms(URL_A)) is None
    assert carrier.fetched == [URL_A]
    assert len(world.media.puts) == 1
    assert world.events.types == ["MessageReceived"]


def test_a_text_without_media_fetches_nothing_and_reads_nothing_more(
    world: World, carrier: FakeMediaCarrier
) -> None:
    processor = world.processor()
    processor.store_inbound(mms())
    updates = world.messages.updates
    processor.store_inbound(mms())
    assert carrier.fetched == [] and world.media.puts == [] and world.messages.updates == updates


def test_a_refused_url_is_recorded_and_never_costs_the_message(
    world: World, carrier: FakeMediaCarrier
) -> None:
    evil = "https://api.twilio.com.evil.example/x.jpg"
    carrier.media = {
        evil: MediaRejected("api.twilio.com.evil.example is not one of the carrier's media hosts")
    }
    carrier.media[URL_B] = FetchedMedia(PNG, "image/png")
    processor = world.processor()

    stored = processor.store_inbound(mms(evil, URL_B))

    assert stored is not None
    first, second = stored_media(world)
    assert first.stored_at is None and first.url == evil
    assert first.error == "api.twilio.com.evil.example is not one of the carrier's media hosts"
    assert second.stored_at is not None and second.error is None
    assert world.conversations.get(CUSTOMER) is not None
    processor.store_inbound(mms(evil, URL_B))  # the carrier retries: nothing is fetched again
    assert carrier.fetched == [evil, URL_B]


def test_a_transient_failure_raises_and_the_redelivery_copies_only_what_is_missing(
    world: World, carrier: FakeMediaCarrier
) -> None:
    carrier.media = {
        URL_A: FetchedMedia(b"jpeg-bytes", "image/jpeg"),
        URL_B: [MediaUnavailable("media.example.test answered HTTP 503"), FetchedMedia(PNG, "image/png")],
    }
    processor = world.processor()

    with pytest.raises(MediaUnavailable):
        processor.store_inbound(mms(URL_A, URL_B))

    # The text is stored, announced and threaded; the copy that worked is recorded.
    first, second = stored_media(world)
    assert first.stored_at is not None and second.pending
    assert world.events.types == ["MessageReceived"]

    assert processor.store_inbound(mms(URL_A, URL_B)) is None  # the queue redelivers the event

    assert carrier.fetched == [URL_A, URL_B, URL_B]
    assert all(m.stored_at is not None and m.error is None for m in stored_media(world))
    assert world.events.types == ["MessageReceived"]
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.message_count == 1 and conversation.unread_count == 1


def test_a_store_failure_is_transient_too(world: World, carrier: FakeMediaCarrier) -> None:
    carrier.media = {URL_A: FetchedMedia(b"jpeg-bytes", "image/jpeg")}
    world.media.failures.append(ConnectionError("S3 is unreachable"))
    processor = world.processor()
    with pytest.raises(ConnectionError):
        processor.store_inbound(mms(URL_A))
    assert stored_media(world)[0].pending
    processor.store_inbound(mms(URL_A))
    assert stored_media(world)[0].stored_at is not None


def test_the_processor_handles_a_queued_envelope_end_to_end(world: World, carrier: FakeMediaCarrier) -> None:
    """From the webhook's envelope (which knows nothing of copies) to a stored copy."""
    from parley.domain.models import CarrierEventEnvelope

    carrier.media = {URL_A: FetchedMedia(b"jpeg-bytes", "image/jpeg")}
    envelope = CarrierEventEnvelope.model_validate_json(
        CarrierEventEnvelope(event=mms(URL_A), correlation_id="c1").model_dump_json()
    )
    world.processor().handle(envelope)
    assert stored_media(world)[0].stored_at is not None


def test_recording_survives_a_lost_race(world: World, carrier: FakeMediaCarrier) -> None:
    carrier.media = {URL_A: FetchedMedia(b"jpeg-bytes", "image/jpeg")}
    world.messages.inject_conflicts(2)
    world.processor().store_inbound(mms(URL_A))
    assert stored_media(world)[0].stored_at is not None


def test_recording_gives_up_after_repeated_races_and_the_redelivery_finishes(
    world: World, carrier: FakeMediaCarrier
) -> None:
    carrier.media = {URL_A: FetchedMedia(b"jpeg-bytes", "image/jpeg")}
    world.messages.inject_conflicts(5)
    processor = world.processor()
    with pytest.raises(ConflictError):
        processor.store_inbound(mms(URL_A))
    processor.store_inbound(mms(URL_A))
    assert stored_media(world)[0].stored_at is not None


def test_a_carrier_that_cannot_fetch_media_leaves_it_at_the_carrier(world: World) -> None:
    world.carrier = FakeCarrier()
    world.processor().store_inbound(mms(URL_A))
    assert stored_media(world) == [Media(url=URL_A, content_type="image/jpeg")]
    assert world.media.puts == []


def test_without_a_media_store_nothing_is_fetched(world: World, carrier: FakeMediaCarrier) -> None:
    from parley.services.inbound import InboundProcessor

    processor = InboundProcessor(
        world.messages,
        world.receipts,
        world.numbers,
        world.contacts,
        world.events,
        world.clock,
        opt_outs=world.opt_outs,
    )
    assert processor.store_inbound(mms(URL_A)) is not None
    assert carrier.fetched == []


def test_a_late_redelivery_after_the_message_changed_still_records_the_copy(
    world: World, carrier: FakeMediaCarrier
) -> None:
    """A receipt-free inbound message can still be updated meanwhile (e.g. read by a person)."""
    carrier.media = {URL_A: [MediaUnavailable("503"), FetchedMedia(b"jpeg-bytes", "image/jpeg")]}
    processor = world.processor()
    with pytest.raises(MediaUnavailable):
        processor.store_inbound(mms(URL_A))
    message = world.messages.get(inbound_message_id("fake", "MM1"))
    assert message is not None
    world.messages.update(
        message.model_copy(update={"metadata": {"read": True}}), expected_version=message.version
    )
    world.clock.advance(timedelta(minutes=1))
    processor.store_inbound(mms(URL_A))
    after = world.messages.get(inbound_message_id("fake", "MM1"))
    assert after is not None and after.metadata == {"read": True} and after.media[0].stored_at is not None


# -- internal addresses in any spelling, and names that resolve to them ------------------------------


@pytest.mark.parametrize(
    "host",
    ["2130706433", "127.1", "0x7f000001", "2852039166", "0251.0376.0251.0376", "10.1"],
    ids=["decimal", "short", "hex", "metadata-decimal", "metadata-octal", "private-short"],
)
def test_ipv4_literals_in_any_spelling_are_not_public_host_names(host: str) -> None:
    with pytest.raises(MediaRejected, match="public host"):
        http._media_target(f"https://{host}/x", (ANY_HOST,), (), redirected=False)
    with pytest.raises(MediaRejected, match="public host"):
        http._media_target(f"https://{host}/x", TWILIO, (), redirected=True)


def resolving_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    """Make every name resolve to `addresses`; the names looked up are returned."""
    looked_up: list[str] = []

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        looked_up.append(host)
        return [(0, 1, 6, "", (address, port)) for address in addresses]

    monkeypatch.setattr(http, "_resolve", resolve)
    return looked_up


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.7",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "fec0::1",  # site-local
        "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "2002:a00:7::1",  # 6to4 around 10.0.0.7
        "2001:0:4136:e378:8000:63bf:f5ff:fefe",  # Teredo whose client is 10.0.1.1
    ],
)
def test_a_public_name_that_resolves_to_an_internal_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    looked_up = resolving_to(monkeypatch, "93.184.216.34", address)
    with pytest.raises(MediaRejected, match="internal address"):
        download("https://media.example.net/a.jpg", allowed_hosts=(ANY_HOST,), auth=None, timeout=1.0)
    assert looked_up == ["media.example.net"]


def test_every_redirect_is_resolved_and_checked_before_it_is_followed(
    serve: Callable[[], MediaServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    carrier = serve()
    carrier.routes["/m"] = redirect_to("https://internal.example.net/ME1.png")
    looked_up = resolving_to(monkeypatch, "10.0.0.9")
    with pytest.raises(MediaRejected, match="internal address"):
        fetch(carrier, "/m", extra_hosts=(carrier.netloc,))
    assert carrier.paths() == ["/m"]
    assert looked_up == ["internal.example.net"]  # the simulator's own host is not looked up


def test_public_addresses_pass_and_a_name_that_does_not_resolve_is_transient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    both = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    resolving_to(monkeypatch, *both)
    assert http._public_addresses("media.example.net", 443) == both
    resolving_to(monkeypatch, "2002:5db8:d822::1")  # 6to4 around the public 93.184.216.34
    assert http._public_addresses("media.example.net", 443) == ["2002:5db8:d822::1"]

    def no_answer(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        raise OSError("Name or service not known")

    monkeypatch.setattr(http, "_resolve", no_answer)
    with pytest.raises(MediaUnavailable, match="does not resolve"):
        http._public_addresses("media.example.net", 443)


# -- the address checked is the address connected to (no DNS rebinding) -----------------------------

PUBLIC = "93.184.216.34"


@dataclass
class FakeNetwork:
    """Names in `dns` get one answer per lookup (the last repeats); every connection is recorded and
    reaches loopback or the local server an address is `rerouted` to, nothing else."""

    dns: dict[str, list[list[str]]] = field(default_factory=dict)
    rerouted: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    connected: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    net = FakeNetwork()
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        answers = net.dns.get(str(host))
        if answers is None:
            return real_getaddrinfo(host, port, *args, **kwargs)
        net.lookups.append(str(host))
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answer]

    def connect(sock: socket.socket, address: Any) -> None:
        net.connected.append((address[0], address[1]))
        target = net.rerouted.get((address[0], address[1]))
        if target is None and address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"{address[0]} is not reachable from the tests")
        real_connect(sock, target or address)

    # Both the check's lookup and any lookup the connection could make see the same answers.
    monkeypatch.setattr(http, "_resolve", getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return net


@dataclass
class TlsServer:
    media: MediaServer
    server_names: list[str | None]  # the SNI of each handshake


@pytest.fixture
def tls(
    serve: Callable[..., MediaServer], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., TlsServer]:
    """Start an https media server whose certificate names `names`, issued by a CA requests trusts."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parley test CA")])
    ca_cert = (
        _certificate(ca_name, ca_key.public_key(), ca_name)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(tmp_path / "ca.pem"))

    def start(*names: x509.GeneralName) -> TlsServer:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "media server")])
        cert = (
            _certificate(subject, key.public_key(), ca_name)
            .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = tmp_path / f"server-{cert.serial_number}.pem"
        pem.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pem)
        server_names: list[str | None] = []
        context.sni_callback = lambda _socket, name, _context: server_names.append(name)
        return TlsServer(serve(context), server_names)

    return start


def _certificate(subject: x509.Name, public_key: Any, issuer: x509.Name) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
    )


def host_header(hosts: list[str]) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        hosts.append(request.host)
        return png(request)

    return handler


@pytest.mark.parametrize("via_redirect", [False, True], ids=["first-url", "redirect"])
def test_a_name_that_turns_internal_after_the_check_is_never_connected_to(
    network: FakeNetwork, tls: Callable[..., TlsServer], serve: Callable[..., MediaServer], via_redirect: bool
) -> None:
    media = tls(x509.DNSName("media.example.net"))
    hosts: list[str] = []
    media.media.routes["/a.png"] = host_header(hosts)
    network.dns["media.example.net"] = [[PUBLIC], ["169.254.169.254"]]  # public first, internal after
    network.rerouted[(PUBLIC, 443)] = ("127.0.0.1", media.media.port)
    connections: list[tuple[str, int]] = []
    url = "https://media.example.net/a.png"
    if via_redirect:
        carrier = serve()
        carrier.routes["/m"] = redirect_to(url)
        url = carrier.url("/m")
        connections.append(("127.0.0.1", carrier.port))

    got = download(url, allowed_hosts=(ANY_HOST,), auth=None, timeout=5.0, extra_hosts=("127.0.0.1",))

    assert got.content == PNG
    assert network.connected == [*connections, (PUBLIC, 443)]
    assert network.lookups == ["media.example.net"]
    assert media.server_names == ["media.example.net"] and hosts == ["media.example.net"]


def test_https_checks_the_certificate_against_the_host_name_not_the_address_connected_to(
    network: FakeNetwork, tls: Callable[..., TlsServer]
) -> None:
    impostor = tls(x509.IPAddress(ipaddress.ip_address(PUBLIC)), x509.DNSName("other.example.net"))
    impostor.media.routes["/a.png"] = png
    network.dns["media.example.net"] = [[PUBLIC]]
    network.rerouted[(PUBLIC, 443)] = ("127.0.0.1", impostor.media.port)
    with pytest.raises(requests.exceptions.SSLError, match="not valid for 'media.example.net'"):
        download("https://media.example.net/a.png", allowed_hosts=(ANY_HOST,), auth=None, timeout=5.0)
    assert network.connected == [(PUBLIC, 443)]
    assert impostor.media.received == []


def test_each_checked_address_is_tried_in_turn_and_none_reached_is_transient(
    network: FakeNetwork, tls: Callable[..., TlsServer]
) -> None:
    media = tls(x509.DNSName("media.example.net"))
    media.media.routes["/a.png"] = png
    network.dns["media.example.net"] = [["93.184.216.35", PUBLIC]]
    network.rerouted[(PUBLIC, 443)] = ("127.0.0.1", media.media.port)
    assert download("https://media.example.net/a.png", allowed_hosts=(ANY_HOST,), auth=None, timeout=5.0)
    assert network.connected == [("93.184.216.35", 443), (PUBLIC, 443)]

    network.dns["media.example.net"] = [["93.184.216.35"]]
    with pytest.raises(requests.ConnectionError) as caught:
        download("https://media.example.net/a.png", allowed_hosts=(ANY_HOST,), auth=None, timeout=5.0)
    assert http.never_connected(caught.value)
