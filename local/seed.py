"""Demo data for the local stack: our numbers, a few records, two templates. Idempotent."""

from __future__ import annotations

from parley.config import Settings
from parley.domain.models import AutoLog, ContactRecord, OptOutScope, OurNumber, Template
from parley.wiring import Container

OUR_NUMBERS = [
    OurNumber(number="+15005550006", carrier="twilio", owner="dev", team="default", is_default=True),
    # The support line shows two per-number send rules: smart encoding on (curly quotes go as GSM-7),
    # and its own opt-outs (a STOP to it stops texts from it alone).
    OurNumber(
        number="+14155550142",
        carrier="twilio",
        owner="support",
        team="default",
        smart_encoding=True,
        opt_out_scope=OptOutScope.NUMBER,
    ),
    # One number per other carrier, so each can be tried end to end against its simulator.
    OurNumber(number="+14155550143", carrier="telnyx", owner="dev"),
    OurNumber(number="+14155550144", carrier="vonage", owner="dev"),
    OurNumber(number="+14155550145", carrier="vonage-messages", owner="dev"),
    OurNumber(number="+14155550146", carrier="bandwidth", owner="dev"),
    OurNumber(number="+14155550147", carrier="plivo", owner="dev"),
    OurNumber(number="+14155550148", carrier="aws", owner="dev"),
    # Quiet hours of its own (the organisation's are off locally): tests/e2e/test_quiet_hours.py.
    OurNumber(number="+14155550160", carrier="twilio", owner="dev", quiet_hours="21:00-08:00"),
    # A known rate of 5 segments a second: the e2e tests that need a quick sender use it.
    OurNumber(number="+14155550161", carrier="twilio", owner="dev", rate_per_second=5.0),
    # `make bench`'s pair (bench/local_burst.py): the first has no practical limit, so a burst from it
    # measures what the local stack itself can send; the second's 2 a second sits well inside that, so
    # a burst from it measures the limiter rather than the machine.
    OurNumber(number="+14155550164", carrier="twilio", owner="dev", rate_per_second=1000.0),
    OurNumber(number="+14155550165", carrier="twilio", owner="dev", rate_per_second=2.0),
    # Auto-log: texts through the first reach the CRM as they come; through the second, only when a
    # person asks (`POST /v1/crm/log`). The others follow the organisation (nightly).
    OurNumber(number="+14155550162", carrier="twilio", owner="dev", auto_log=AutoLog.IMMEDIATE),
    OurNumber(number="+14155550163", carrier="twilio", owner="dev", auto_log=AutoLog.OFF),
]

CONTACTS = [
    ContactRecord(
        contact_id="c-ada",
        name="Ada Lovelace",
        first_name="Ada",
        last_name="Lovelace",
        phone="+14155550100",
        owner="dev",
        fields={"company": "Analytical Engines"},
    ),
    ContactRecord(
        contact_id="c-grace",
        name="Grace Hopper",
        first_name="Grace",
        last_name="Hopper",
        phone="+14155550101",
        owner="support",
    ),
    ContactRecord(contact_id="c-alan", name="Alan Turing", first_name="Alan", phone="+14155550102"),
    # Routing (parley.domain.routing), shown end to end in tests/e2e/test_routing.py. Lin's home number
    # is also on an older lead: a text from it goes to the contact, whose type ranks first.
    ContactRecord(
        contact_id="c-lin",
        name="Lin Wu",
        first_name="Lin",
        phones=["+14155550210", "+14155550211"],
        owner="dev",
    ),
    ContactRecord(contact_id="l-lin", name="Lin Wu", phone="+14155550210", owner="dev", record_type="lead"),
    # Two contacts of equal rank on one shared line: a text from it is a conflict, left for a person.
    ContactRecord(contact_id="c-sam", name="Sam Reyes", first_name="Sam", phone="+14155550220", owner="dev"),
    ContactRecord(contact_id="c-kim", name="Kim Reyes", first_name="Kim", phone="+14155550220", owner="dev"),
    # Another shared line, for the CRM conflict walk-through (tests/e2e/test_crm_conflicts.py).
    ContactRecord(contact_id="c-eve", name="Eve Moss", first_name="Eve", phone="+14155550221", owner="dev"),
    ContactRecord(contact_id="c-max", name="Max Moss", first_name="Max", phone="+14155550221", owner="dev"),
]

TEMPLATES = [
    Template(
        template_id="welcome",
        name="Welcome",
        body="Hi {{first_name|there}}, thanks for reaching out to {{company|us}}! Reply here any time.",
    ),
    Template(
        template_id="appointment",
        name="Appointment reminder",
        body="Hi {{first_name}}, a reminder of your appointment on {{date}}. Reply C to confirm.",
    ),
]


def seed(settings: Settings) -> None:
    app = Container(settings)
    for number in OUR_NUMBERS:
        app.numbers.save(number)
    for contact in CONTACTS:
        app.contacts.save(contact)
    for template in TEMPLATES:
        app.templates.save(template)
