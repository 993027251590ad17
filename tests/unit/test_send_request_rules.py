"""A send request's rules: a template that renders to nothing is refused like a missing merge field,
and the published JSON Schema accepts exactly the requests the model accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # installed with openapi-spec-validator
from pydantic import ValidationError

from parley.domain.models import ContactRecord, OurNumber, SendRequest, Template
from parley.openapi import send_request_schema
from parley.services.sending import SendRejected
from tests.fakes import World

DEFAULT = "+15005550006"
ANA = "+14155550100"
BO = "+14155550101"
PUBLISHED = Path(__file__).resolve().parents[2] / "events" / "schemas" / "send-request.v1.schema.json"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=DEFAULT, carrier="fake", is_default=True))
    return w


# ---------------------------------------------------------------- a template that renders to nothing


@pytest.mark.parametrize(
    ("body", "values"),
    [("{{note|}}", {}), ("{{note| }}", {}), ("{{a|}}\n{{b|\t}}", {}), ("{{a|\u3000}}{{b|}}", {"b": ""})],
    ids=["empty default", "blank default", "lines of blanks", "empty value, blank default"],
)
def test_a_template_that_renders_to_a_blank_text_rejects_the_whole_request(
    world: World, body: str, values: dict[str, str]
) -> None:
    world.templates.save(Template(template_id="t", name="t", body=body))

    with pytest.raises(SendRejected) as caught:
        world.sender().submit(SendRequest(to=[ANA], template_id="t", merge_values=values), "req-1")

    (error,) = caught.value.errors
    assert error.field == "merge_values"
    assert error.reason == f"the template renders to an empty text for {ANA}"
    assert world.messages.items == {}
    assert world.send_queue.jobs == []


def test_only_the_recipients_it_renders_blank_for_are_named(world: World) -> None:
    world.templates.save(Template(template_id="t", name="t", body="{{first_name|}}"))
    world.contacts.save(ContactRecord(contact_id="c1", name="Ana", phone=ANA, first_name="Ana"))

    with pytest.raises(SendRejected) as caught:
        world.sender().submit(SendRequest(to=[ANA, BO], template_id="t"), "req-1")

    assert [(e.field, e.reason) for e in caught.value.errors] == [
        ("merge_values", f"the template renders to an empty text for {BO}")
    ]
    assert world.messages.items == {}


def test_a_template_that_renders_to_some_text_is_sent(world: World) -> None:
    world.templates.save(Template(template_id="t", name="t", body="{{note|}}"))

    (sent,) = world.sender().submit(
        SendRequest(to=[ANA], template_id="t", merge_values={"note": "See you"}), "req-1"
    )

    assert sent.body == "See you"


# ---------------------------------------------------------------- the schema and the model agree

BASE: dict[str, Any] = {"to": [ANA]}
GOOD: dict[str, dict[str, Any]] = {
    "body": {"body": "hi"},
    "template": {"template_id": "t", "merge_values": {"a": "b"}},
    "null body with a template": {"body": None, "template_id": "t"},
    "body with a null template": {"body": "hi", "template_id": None},
    "body with spaces around": {"body": "  hi \n"},
    "ideographic letters": {"body": "\u4e2d"},
    "a 1600-character body": {"body": "x" * 1600},
    "smart encoding true": {"body": "hi", "smart_encoding": True},
    "smart encoding false": {"body": "hi", "smart_encoding": False},
    "smart encoding null": {"body": "hi", "smart_encoding": None},
    "everything": {
        "body": "hi",
        "from": DEFAULT,
        "send_at": "2026-12-01T09:00:00-05:00",
        "idempotency_key": "k-1",
        "metadata": {"order": 7},
        "team": "sales",
        "requested_by": "ana",
    },
}
BAD: dict[str, dict[str, Any]] = {
    "neither body nor template": {},
    "both null": {"body": None, "template_id": None},
    "body and template": {"body": "hi", "template_id": "t"},
    "empty body": {"body": ""},
    "blank body": {"body": "   "},
    "body of line breaks and tabs": {"body": "\n\r\t\x0b\x0c"},
    "body of unicode spaces": {"body": "\u00a0\u2003\u3000\u2028\u0085\x1c"},
    "body and empty template": {"body": "", "template_id": "t"},
    "a 1601-character body": {"body": "x" * 1601},
    "body not a string": {"body": 5},
    "smart encoding 'no'": {"body": "hi", "smart_encoding": "no"},
    "smart encoding 'true'": {"body": "hi", "smart_encoding": "true"},
    "smart encoding 0": {"body": "hi", "smart_encoding": 0},
    "smart encoding 1": {"body": "hi", "smart_encoding": 1},
    "no recipients": {"to": [], "body": "hi"},
    "recipients not a list": {"to": ANA, "body": "hi"},
    "an unknown field": {"body": "hi", "text": "hi"},
    "a merge value not a string": {"template_id": "t", "merge_values": {"a": 5}},
    "an empty idempotency key": {"body": "hi", "idempotency_key": ""},
    "an empty team": {"body": "hi", "team": ""},
}


def _model_accepts(request: dict[str, Any]) -> bool:
    try:
        SendRequest.model_validate(request)
    except ValidationError:
        return False
    return True


@pytest.fixture(scope="module", params=["published", "generated"])
def validator(request: pytest.FixtureRequest) -> Draft202012Validator:
    """The committed file and what the model generates now: both must hold the rules."""
    schema = json.loads(PUBLISHED.read_text()) if request.param == "published" else send_request_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("change", list(GOOD.values()), ids=list(GOOD))
def test_the_schema_and_the_model_both_accept(
    validator: Draft202012Validator, change: dict[str, Any]
) -> None:
    request = BASE | change
    assert [e.message for e in validator.iter_errors(request)] == []
    assert _model_accepts(request)


@pytest.mark.parametrize("change", list(BAD.values()), ids=list(BAD))
def test_the_schema_and_the_model_both_refuse(
    validator: Draft202012Validator, change: dict[str, Any]
) -> None:
    request = BASE | change
    assert not validator.is_valid(request)
    assert not _model_accepts(request)


def test_every_single_character_body_is_blank_for_both_or_for_neither(
    validator: Draft202012Validator,
) -> None:
    """The schema's pattern spells out what str.strip() removes (every such character is below
    U+3001); ECMA-262 also counts U+FEFF as a space, which Python doesn't."""
    disagree = [
        hex(code)
        for code in [*range(0x3001), 0xFEFF]
        if validator.is_valid(BASE | {"body": chr(code)}) != _model_accepts(BASE | {"body": chr(code)})
    ]
    assert disagree == []
