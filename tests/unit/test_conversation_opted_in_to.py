"""A conversation's `opted_in_to`: the per-number lines a customer opted out of all our numbers texted
START to since, which sending lets text them again. The view must say what sending decides."""

from __future__ import annotations

from typing import Any

from parley.domain.models import MessageStatus
from parley.openapi import openapi_document
from parley.services.conversations import with_consent
from tests.fakes import World
from tests.unit.test_keyword_consent import ANA, OWN, POOL, send_from, text_in, world

__all__ = ["world"]  # the fixture


def _view(world: World) -> Any:
    conversation = world.conversations.get(ANA)
    assert conversation is not None
    return with_consent(conversation, world.opt_outs.get(ANA))


def test_a_start_to_a_per_number_line_after_stop_to_all_names_that_line(world: World) -> None:
    text_in(world, "SM1", "STOP", to=POOL)
    text_in(world, "SM2", "START", to=OWN, minutes=5)

    view = _view(world)
    assert (view.opted_out, view.opted_out_of, view.opted_in_to) == (True, [], [OWN])
    assert send_from(world, OWN, "k1") is MessageStatus.ACCEPTED
    assert send_from(world, POOL, "k2") is MessageStatus.SUPPRESSED


def test_a_later_stop_to_all_numbers_clears_it(world: World) -> None:
    text_in(world, "SM1", "STOP", to=POOL)
    text_in(world, "SM2", "START", to=OWN, minutes=5)
    text_in(world, "SM3", "STOP", to=POOL, minutes=10)

    assert _view(world).opted_in_to == []
    assert send_from(world, OWN, "k1") is MessageStatus.SUPPRESSED


def test_a_later_stop_to_the_line_itself_clears_it(world: World) -> None:
    text_in(world, "SM1", "STOP", to=POOL)
    text_in(world, "SM2", "START", to=OWN, minutes=5)
    text_in(world, "SM3", "STOP", to=OWN, minutes=10)

    view = _view(world)
    assert (view.opted_in_to, view.opted_out_of) == ([], [OWN])
    assert send_from(world, OWN, "k1") is MessageStatus.SUPPRESSED


def test_without_an_opt_out_from_all_it_is_empty(world: World) -> None:
    text_in(world, "SM1", "Hello", to=POOL)
    assert _view(world).opted_in_to == []
    text_in(world, "SM2", "STOP", to=OWN, minutes=1)
    text_in(world, "SM3", "START", to=OWN, minutes=2)
    assert (_view(world).opted_out, _view(world).opted_in_to) == (False, [])


def test_the_api_document_describes_it() -> None:
    field = openapi_document()["components"]["schemas"]["ConversationView"]["properties"]["opted_in_to"]
    assert field["type"] == "array" and "START" in field["description"]
