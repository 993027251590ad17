"""Deterministic ids: a redelivered webhook or request must land on the same record, across deploys too."""

from __future__ import annotations

import re

from parley.domain.ids import carrier_ref, inbound_message_id, new_request_key, outbound_message_id

# Pinned: changing the scheme would make every in-flight redelivery after a deploy a new message.
PINNED_INBOUND = "in_3cffe139303369a7c9167b341f"
PINNED_OUTBOUND = "out_129c31e7ed6e22f48bed9ae42d"


def test_inbound_id_is_stable_across_processes_and_deploys() -> None:
    assert inbound_message_id("twilio", "SM0123456789abcdef") == PINNED_INBOUND


def test_outbound_id_is_stable_across_processes_and_deploys() -> None:
    assert outbound_message_id("req_1", "+14155550100") == PINNED_OUTBOUND


def test_the_same_inputs_give_the_same_id() -> None:
    assert inbound_message_id("twilio", "SM1") == inbound_message_id("twilio", "SM1")
    assert outbound_message_id("k", "+14155550100") == outbound_message_id("k", "+14155550100")


def test_inbound_ids_differ_by_carrier_and_by_carrier_id() -> None:
    ids = {
        inbound_message_id("twilio", "SM1"),
        inbound_message_id("twilio", "SM2"),
        inbound_message_id("telnyx", "SM1"),
    }
    assert len(ids) == 3


def test_outbound_ids_differ_by_request_and_by_recipient() -> None:
    ids = {
        outbound_message_id("req_a", "+14155550100"),
        outbound_message_id("req_a", "+14155550101"),
        outbound_message_id("req_b", "+14155550100"),
    }
    assert len(ids) == 3


def test_parts_cannot_run_into_each_other() -> None:
    assert inbound_message_id("ab", "c") != inbound_message_id("a", "bc")
    assert outbound_message_id("req1", "+1") != outbound_message_id("req", "1+1")


def test_inbound_and_outbound_ids_never_collide_for_the_same_parts() -> None:
    inbound = inbound_message_id("x", "y")
    outbound = outbound_message_id("x", "y")
    assert inbound.split("_", 1)[1] != outbound.split("_", 1)[1]


def test_ids_have_a_readable_prefix_and_a_fixed_width() -> None:
    assert re.fullmatch(r"in_[0-9a-f]{26}", inbound_message_id("twilio", "SM1"))
    assert re.fullmatch(r"out_[0-9a-f]{26}", outbound_message_id("k", "+14155550100"))


def test_request_keys_are_fresh_each_time() -> None:
    keys = {new_request_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", k) for k in keys)


def test_carrier_ref_joins_carrier_and_id() -> None:
    assert carrier_ref("twilio", "SM1") == "twilio#SM1"
    assert carrier_ref("twilio", "SM1") != carrier_ref("telnyx", "SM1")
