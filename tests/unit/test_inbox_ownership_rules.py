"""Who a reply goes from when the customer texted another team's number, who may make a template
personal, which linked record "add contact" replaces, the routing's reserved record ids, and JSON
nested too deeply to read (a 400's reason, never a crash)."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from parley.access import Caller
from parley.adapters.dynamo import InvalidCursor, _decode_positions, decode_cursor
from parley.domain.models import ContactRecord, InboundMessage, Message, OurNumber, SendRequest, Template
from parley.domain.routing import lead_id_for, made_by_parley, new_lead
from parley.services.conversations import AlreadyLinked, Positions
from parley.services.digest import _teams_cursor
from parley.services.mailbox import Content, Mailbox
from parley.services.records import NewRecord, RecordService
from parley.services.sending import parse_send_record
from parley.services.templates import TemplateDraft, TemplateForbidden, TemplateInvalid, TemplateService
from tests.fakes import T0, InMemoryContacts, InMemoryTemplates, World
from tests.unit.test_conversations import SALES as ANN
from tests.unit.test_conversations import Setup

SALES = Caller("alice", frozenset({"sales"}))
SALES_NUMBER = "+15005550006"
SALES_SECOND = "+15005550007"
SUPPORT_NUMBER = "+15005550008"
ANA = "+14155550100"
DEEP = "[" * 5000


# -- a reply to a text on another team's number ------------------------------------------------------


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=SALES_NUMBER, carrier="fake", team="sales", is_default=True))
    w.numbers.save(OurNumber(number=SALES_SECOND, carrier="fake", team="sales"))
    w.numbers.save(OurNumber(number=SUPPORT_NUMBER, carrier="fake", team="support", is_default=True))
    return w


def mailbox(world: World) -> Mailbox:
    return Mailbox(
        messages=world.messages,
        listing=world.messages,
        numbers=world.numbers,
        sender=world.sender(),
        clock=world.clock,
    )


def sales_conversation_answered_on(world: World, our_number: str) -> Message:
    """Sales texts Ana from its second number; she answers on `our_number` (the thread stays sales')."""
    world.sender().submit(
        SendRequest.model_validate({"to": [ANA], "body": "hello", "from": SALES_SECOND}), "k1", team="sales"
    )
    world.send_queue.take()
    world.clock.advance(seconds=1)
    event = InboundMessage(
        carrier="fake", carrier_message_id="SM1", from_number=ANA, to_number=our_number, body="yes",
        received_at=world.clock(),
    )  # fmt: skip
    stored = world.processor().store_inbound(event)
    assert stored is not None and (stored.team, stored.our_number) == ("sales", our_number)
    world.clock.advance(seconds=1)
    return stored


def test_a_reply_to_a_text_on_another_teams_number_goes_from_one_the_team_may_use(world: World) -> None:
    received = sales_conversation_answered_on(world, SUPPORT_NUMBER)

    reply = mailbox(world).reply(received.message_id, SALES, Content(body="thanks"), "rk-1")
    (bulk,) = mailbox(world).reply_many([received.message_id], SALES, Content(body="thanks"), "rk-2")

    assert (reply.team, reply.our_number) == ("sales", SALES_NUMBER)  # the team's default
    assert reply.metadata == {"reply_to": received.message_id}
    assert bulk.result == "ok" and bulk.reply_id is not None
    assert world.messages.get(bulk.reply_id).our_number == SALES_NUMBER  # type: ignore[union-attr]


def test_a_reply_still_goes_from_the_teams_number_the_customer_texted(world: World) -> None:
    received = sales_conversation_answered_on(world, SALES_SECOND)
    reply = mailbox(world).reply(received.message_id, SALES, Content(body="thanks"), "rk-1")
    assert reply.our_number == SALES_SECOND


# -- templates made personal ------------------------------------------------------------------------

ANA_USER = Caller("ana", frozenset({"sales"}))
BO_USER = Caller("bo", frozenset({"sales"}))
ADMIN = Caller("root", frozenset({"ops"}), admin=True)
NOBODY = Caller("", frozenset({"sales"}))  # a token without `sub`


def test_only_its_owner_can_make_a_shared_template_personal() -> None:
    service = TemplateService(InMemoryTemplates())
    team = service.create(TemplateDraft(name="Team", body="hello"), ANA_USER)
    personal = TemplateDraft(name="Team", body="hello", shared=False)

    with pytest.raises(TemplateForbidden, match="only by its owner.*ana"):
        service.update(team.template_id, personal, BO_USER)
    assert [t.template_id for t in service.visible(BO_USER)] == [team.template_id]

    made = service.update(team.template_id, personal, ANA_USER)
    assert (made.shared, made.owner) == (False, "ana")
    assert service.visible(BO_USER) == []


def test_an_org_wide_template_with_no_owner_cant_be_made_personal_even_by_an_admin() -> None:
    templates = InMemoryTemplates()
    templates.save(Template(template_id="welcome", name="Welcome", body="Hi"))
    service = TemplateService(templates)

    with pytest.raises(TemplateForbidden, match="no owner"):
        service.update("welcome", TemplateDraft(name="Welcome", body="Hi", shared=False), ADMIN)
    assert service.get("welcome", ADMIN).shared
    assert service.update("welcome", TemplateDraft(name="Welcome", body="Hello"), ADMIN).body == "Hello"


def test_a_token_without_a_user_cant_make_a_personal_template() -> None:
    service = TemplateService(InMemoryTemplates())
    with pytest.raises(TemplateInvalid, match="needs a user"):
        service.create(TemplateDraft(name="Mine", body="x", shared=False), NOBODY)
    assert service.visible(NOBODY) == []
    shared = service.create(TemplateDraft(name="Ours", body="x"), NOBODY)
    assert [t.template_id for t in service.visible(NOBODY)] == [shared.template_id]


# -- add contact over a linked record ---------------------------------------------------------------


@pytest.mark.parametrize(
    "linked",
    [
        ContactRecord(contact_id="sf-00Q1", name="CRM lead", phone="+14155555001", record_type="lead",
                      crm_id="00Q1", team="sales"),
        ContactRecord(contact_id="r-1", name="A person's lead", phone="+14155555001", record_type="lead",
                      team="sales"),
        ContactRecord(contact_id=lead_id_for("+14155555001"), name="Given a CRM id", phone="+14155555001",
                      record_type="lead", crm_id="00Q2", team="sales"),
    ],
    ids=["crm-lead", "persons-lead", "routing-lead-with-crm-id"],
)  # fmt: skip
def test_add_contact_refuses_to_relink_away_from_a_real_lead(linked: ContactRecord) -> None:
    s = Setup()
    s.text("+14155555001", "sales")
    s.contacts.save(linked)
    s.conversations.link("+14155555001", contact_id=linked.contact_id, owner=None, reason="crm")

    with pytest.raises(AlreadyLinked, match=f"lead '{linked.contact_id}' already"):
        s.service.add_contact(ANN, "+14155555001", {"name": "Someone New"})
    assert s.conversations.items["+14155555001"].contact_id == linked.contact_id


def test_add_contact_replaces_the_lead_routing_made() -> None:
    s = Setup()
    s.text("+14155555002", "sales")
    lead = new_lead("+14155555002", OurNumber(number="+14155550001", carrier="fake", team="sales"), T0)
    assert made_by_parley(lead)
    s.contacts.save(lead)
    s.conversations.link("+14155555002", contact_id=lead.contact_id, owner=None, reason="new lead")
    record = s.service.add_contact(ANN, "+14155555002", {"name": "Real Person"})
    assert s.conversations.items["+14155555002"].contact_id == record.contact_id != lead.contact_id


# -- the routing's record ids ------------------------------------------------------------------------


@pytest.mark.parametrize("record_id", [lead_id_for(ANA), "lead-anything"])
def test_a_record_id_in_the_routings_lead_form_is_refused_before_anything_is_read(record_id: str) -> None:
    contacts = InMemoryContacts()
    contacts.save(new_lead(ANA, OurNumber(number=SUPPORT_NUMBER, carrier="fake", team="support"), T0))
    with pytest.raises(ValidationError, match="reserved for the leads routing makes"):
        NewRecord.model_validate({"name": "X", "phones": [ANA], "record_id": record_id})
    made = RecordService(contacts, lambda: T0).create(
        NewRecord.model_validate({"name": "X", "phones": [ANA], "record_id": "Lead_1"}),
        team="sales",
        user="u",
    )
    assert made.contact_id == "Lead_1"


# -- JSON nested too deeply ----------------------------------------------------------------------------


def test_a_deeply_nested_cursor_is_refused_as_invalid() -> None:
    cursor = base64.urlsafe_b64encode(DEEP.encode()).decode()
    with pytest.raises(ValueError, match="cursor is not valid"):
        Positions.decode(cursor, "list", ["sales"])
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, ("customer_number", ANA), "message_id", "created_at")
    with pytest.raises(InvalidCursor):
        _decode_positions(cursor, ["sales"])
    with pytest.raises(ValueError, match="cursor is not valid"):
        _teams_cursor(cursor, ["sales"])


def test_a_deeply_nested_send_record_is_a_bad_request_not_a_crash() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_send_record(DEEP, "rec-1")
