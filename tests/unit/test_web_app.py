"""The web inbox's function: which files it serves, with what headers, and its sign-in settings."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from functions.web import app as web
from parley import web_inbox

STATIC = web.STATIC_DIR
APP_SOURCE = Path(web.__file__).read_text()

OIDC = {
    "issuer": "https://login.example.com/tenant",
    "client_id": "inbox-web",
    "authorization_endpoint": "https://login.example.com/oauth2/authorize",
    "token_endpoint": "https://tokens.example.com/oauth2/token",
}


def event(
    path: str, *, file: str | None = None, method: str = "GET", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The HTTP API's v2 event for GET / (no path parameter) or GET /ui/{file+}."""
    built: dict[str, Any] = {
        "version": "2.0",
        "rawPath": path,
        "headers": headers or {},
        "requestContext": {"http": {"method": method, "path": path}},
    }
    if file is not None:
        built["pathParameters"] = {"file": file}
    return built


def ui(name: str, **kwargs: Any) -> dict[str, Any]:
    return event(f"/ui/{name}", file=name, **kwargs)


def no_reads(name: str) -> str | None:
    raise AssertionError(f"read {name}: the dev mode reads no parameter")


@pytest.fixture
def dev_site() -> web_inbox.Site:
    return web_inbox.Site(web_inbox.load_files(web.STATIC_DIR), stage="local", read=no_reads)


def oidc_site(
    values: dict[str, Any] | None, reads: list[str] | None = None, fetch: web_inbox.Fetch | None = None
) -> web_inbox.Site:
    def read(name: str) -> str | None:
        if reads is not None:
            reads.append(name)
        return None if values is None else json.dumps(values)

    def no_fetch(url: str) -> dict[str, Any]:
        raise AssertionError(f"fetched {url}, but the parameter names both endpoints")

    return web_inbox.Site(
        web_inbox.load_files(web.STATIC_DIR), stage="prod", read=read, fetch=fetch or no_fetch
    )


def test_the_page_is_served_at_the_root_with_a_strict_policy(dev_site: web_inbox.Site) -> None:
    answer = dev_site.respond(event("/"))

    assert answer["statusCode"] == 200
    headers = answer["headers"]
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert answer["body"] == (STATIC / "index.html").read_text()
    assert headers["X-Content-Type-Options"] == "nosniff"
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["img-src"] == "'self' blob:"  # pictures fetched with the token, shown from object URLs
    assert "unsafe" not in headers["Content-Security-Policy"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', headers["ETag"])


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("compose.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
        ("index.html", "text/html; charset=utf-8"),
    ],
)
def test_each_file_has_its_content_type_and_its_own_text(
    dev_site: web_inbox.Site, name: str, content_type: str
) -> None:
    answer = dev_site.respond(ui(name))

    assert (answer["statusCode"], answer["headers"]["Content-Type"]) == (200, content_type)
    assert answer["body"] == (STATIC / name).read_text()
    assert answer["headers"]["Cache-Control"] == "no-cache"  # revalidated with the ETag each time


def test_every_file_the_page_and_its_modules_name_is_served(dev_site: web_inbox.Site) -> None:
    """index.html's /ui/ references, and each module's relative imports, all resolve to a file."""
    names = set(re.findall(r'"/ui/([^"]+)"', (STATIC / "index.html").read_text()))
    for script in STATIC.glob("*.js"):
        names |= set(re.findall(r'from "\./([^"]+)"', script.read_text()))
    assert {"app.js", "app.css", "sms.js", "compose.js"} <= names
    for name in sorted(names):
        assert dev_site.respond(ui(name))["statusCode"] == 200, name


def test_a_matching_etag_answers_304_without_a_body(dev_site: web_inbox.Site) -> None:
    etag = dev_site.respond(ui("app.js"))["headers"]["ETag"]

    again = dev_site.respond(ui("app.js", headers={"If-None-Match": etag}))
    other = dev_site.respond(ui("app.js", headers={"if-none-match": '"0000"'}))

    assert (again["statusCode"], again["body"], again["headers"]["ETag"]) == (304, "", etag)
    assert other["statusCode"] == 200


@pytest.mark.parametrize(
    "name",
    [
        "nope.js",
        "app.py",  # beside static/, never served
        "__init__.py",
        "../app.py",
        "..%2Fapp.py",
        "%2e%2e/app.py",
        "static/app.js",
        "./app.js",
        "..\\app.py",
        "/etc/passwd",
        "..",
        ".",
        "app.js/",
        "APP.JS",
        "app.js%00.html",
    ],
)
def test_anything_but_a_served_file_is_404_and_no_path_reaches_the_disk(
    dev_site: web_inbox.Site, name: str
) -> None:
    answer = dev_site.respond(ui(name))

    assert answer["statusCode"] == 404
    assert json.loads(answer["body"]) == {"error": "no such file"}
    assert "def handler" not in answer["body"]


def test_a_path_without_the_parameter_is_read_from_the_raw_path(dev_site: web_inbox.Site) -> None:
    assert dev_site.respond(event("/ui/app.css"))["body"] == (STATIC / "app.css").read_text()
    assert dev_site.respond(event("/ui/../app.py"))["statusCode"] == 404


def test_only_plain_files_of_known_types_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<p>hi</p>")
    (tmp_path / "notes.txt").write_text("not served")
    (tmp_path / ".hidden.js").write_text("secret")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.js").write_text("deep")
    (tmp_path / "folder.js").mkdir()

    files = web_inbox.load_files(tmp_path)

    assert set(files) == {"page.html"}
    assert web_inbox.load_files(tmp_path / "missing") == {}


def test_methods_other_than_get_are_refused(dev_site: web_inbox.Site) -> None:
    answer = dev_site.respond(event("/", method="POST"))

    assert answer["statusCode"] == 405
    assert answer["headers"]["Allow"] == "GET, HEAD"


def test_locally_the_page_signs_in_with_the_dev_token_endpoint(dev_site: web_inbox.Site) -> None:
    answer = dev_site.respond(ui("config.json"))

    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {"mode": "dev", "token_url": "/_local/token"}


def test_deployed_the_page_gets_the_oidc_settings_and_may_post_to_the_token_endpoint() -> None:
    reads: list[str] = []
    site = oidc_site({**OIDC, "scope": "openid email"}, reads)

    answer = site.respond(ui("config.json"))

    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {
        "mode": "oidc",
        **OIDC,
        "scope": "openid email",
        "use_token": "access_token",
    }
    assert reads == ["/parley/prod/web/config"]
    assert "connect-src 'self' https://tokens.example.com;" in answer["headers"]["Content-Security-Policy"]
    # the page itself, served after, may post there too (and nowhere else)
    page_policy = site.respond(event("/"))["headers"]["Content-Security-Policy"]
    assert "connect-src 'self' https://tokens.example.com;" in page_policy


def test_a_cold_container_serving_the_page_first_already_allows_the_token_endpoint() -> None:
    policy = oidc_site(OIDC).respond(event("/"))["headers"]["Content-Security-Policy"]

    assert "connect-src 'self' https://tokens.example.com;" in policy


def test_the_page_is_served_even_when_the_settings_are_unusable() -> None:
    answer = oidc_site(None).respond(event("/"))

    assert answer["statusCode"] == 200
    assert "connect-src 'self';" in answer["headers"]["Content-Security-Policy"]


def test_unusable_settings_are_not_read_again_for_every_file_of_a_page_load() -> None:
    reads: list[str] = []
    site = oidc_site(None, reads)

    answers = [site.respond(event("/")), site.respond(ui("app.js")), site.respond(ui("config.json"))]

    assert [a["statusCode"] for a in answers] == [200, 200, 503]
    assert len(reads) == 1


def test_the_settings_are_read_once_per_container_for_a_while() -> None:
    reads: list[str] = []
    site = oidc_site(OIDC, reads)

    for _ in range(3):
        assert site.respond(ui("config.json"))["statusCode"] == 200

    assert len(reads) == 1


def test_endpoints_left_out_come_from_the_issuers_discovery_document() -> None:
    fetched: list[str] = []

    def discovery(url: str) -> dict[str, Any]:
        fetched.append(url)
        return {
            "authorization_endpoint": "https://idp.example.com/auth",
            "token_endpoint": "https://idp.example.com/token",
        }

    values = {"issuer": "https://idp.example.com/realms/parley/", "client_id": "web", "use_token": "id_token"}
    config = json.loads(oidc_site(values, fetch=discovery).respond(ui("config.json"))["body"])

    assert fetched == ["https://idp.example.com/realms/parley/.well-known/openid-configuration"]
    assert config["authorization_endpoint"] == "https://idp.example.com/auth"
    assert config["token_endpoint"] == "https://idp.example.com/token"
    assert (config["scope"], config["use_token"]) == ("openid", "id_token")


def failing_discovery(url: str) -> dict[str, Any]:
    raise OSError("connection refused")


@pytest.mark.parametrize(
    ("values", "fetch", "reason"),
    [
        (None, None, "not found in SSM"),
        ({"issuer": OIDC["issuer"]}, None, "needs an https issuer and a client_id"),
        ({**OIDC, "issuer": "http://login.example.com"}, None, "needs an https issuer"),
        (
            {"issuer": OIDC["issuer"], "client_id": "web"},
            failing_discovery,
            "discovery failed (connection refused)",
        ),
        (
            {**OIDC, "token_endpoint": "http://tokens.example.com/token"},
            None,
            "no https authorization and token",
        ),
    ],
)
def test_unusable_settings_answer_503_with_what_to_fix(
    values: dict[str, Any] | None, fetch: web_inbox.Fetch | None, reason: str
) -> None:
    answer = oidc_site(values, fetch=fetch).respond(ui("config.json"))

    assert answer["statusCode"] == 503
    assert reason in json.loads(answer["body"])["error"]
    assert answer["headers"]["Cache-Control"] == "no-store"


def test_a_parameter_that_is_not_a_json_object_is_named_in_the_error() -> None:
    site = web_inbox.Site({}, stage="dev", read=lambda name: "[1, 2]")

    answer = site.respond(ui("config.json"))

    assert answer["statusCode"] == 503
    assert (
        json.loads(answer["body"])["error"] == "sign-in parameter /parley/dev/web/config: not a JSON object"
    )


def test_discovery_is_https_only() -> None:
    with pytest.raises(web_inbox.SignInConfigError, match="only https"):
        web_inbox.fetch_json("http://idp.example.com/.well-known/openid-configuration")


def test_the_handler_adds_no_environment_variable() -> None:
    """The stage names the parameter: the function reads PARLEY_STAGE (Globals) and nothing new."""
    assert set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', APP_SOURCE)) <= {
        "PARLEY_STAGE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    }
    assert web_inbox.config_parameter("prod") == "/parley/prod/web/config"


def test_a_browser_that_accepts_gzip_gets_the_file_compressed_with_its_own_etag(
    dev_site: web_inbox.Site,
) -> None:
    plain = dev_site.respond(ui("app.js"))
    packed = dev_site.respond(ui("app.js", headers={"accept-encoding": "gzip, deflate, br"}))

    assert packed["headers"]["Content-Encoding"] == "gzip"
    assert packed["isBase64Encoded"] is True
    assert gzip.decompress(base64.b64decode(packed["body"])).decode("utf-8") == plain["body"]
    assert len(packed["body"]) < len(plain["body"]) / 2
    assert packed["headers"]["Vary"] == plain["headers"]["Vary"] == "Accept-Encoding"
    assert packed["headers"]["ETag"] == plain["headers"]["ETag"][:-1] + '-gz"'
    assert "Content-Encoding" not in plain["headers"]
    again = dev_site.respond(
        ui("app.js", headers={"Accept-Encoding": "gzip", "If-None-Match": packed["headers"]["ETag"]})
    )
    assert (again["statusCode"], again["body"]) == (304, "")


@pytest.mark.parametrize("accept", ["identity", "br", "gzip;q=0", "x-gzip2"])
def test_without_gzip_accepted_the_file_goes_as_it_is(dev_site: web_inbox.Site, accept: str) -> None:
    answer = dev_site.respond(ui("app.css", headers={"accept-encoding": accept}))

    assert answer["body"] == (STATIC / "app.css").read_text()
    assert "Content-Encoding" not in answer["headers"]


def test_a_weak_or_wildcard_validator_matches_too(dev_site: web_inbox.Site) -> None:
    etag = dev_site.respond(ui("app.css"))["headers"]["ETag"]

    assert dev_site.respond(ui("app.css", headers={"If-None-Match": f'"x", W/{etag}'}))["statusCode"] == 304
    assert dev_site.respond(ui("app.css", headers={"If-None-Match": "*"}))["statusCode"] == 304
