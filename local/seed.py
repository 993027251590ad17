"""Demo data for the local stack: two of our numbers, a few contacts, two templates. Idempotent."""

from __future__ import annotations

from parley.config import Settings
from parley.domain.models import ContactRecord, OurNumber, Template
from parley.wiring import Container

OUR_NUMBERS = [
    OurNumber(number="+15005550006", carrier="twilio", owner="dev", team="default", is_default=True),
    OurNumber(number="+14155550142", carrier="twilio", owner="support", team="default"),
    # One number per other carrier, so each can be tried end to end against its simulator.
    OurNumber(number="+14155550143", carrier="telnyx", owner="dev"),
    OurNumber(number="+14155550144", carrier="vonage", owner="dev"),
    OurNumber(number="+14155550145", carrier="vonage-messages", owner="dev"),
    OurNumber(number="+14155550146", carrier="bandwidth", owner="dev"),
    OurNumber(number="+14155550147", carrier="plivo", owner="dev"),
    OurNumber(number="+14155550148", carrier="aws", owner="dev"),
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
