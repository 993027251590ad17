"""The end-to-end tests share one local stack, so each file texts customers of its own: two files
texting one number see each other's messages in a thread, a rate turn or an opt-out, and fail only
when they happen to run close together. Numbers the stack seeds (our numbers, the demo records) and
the simulators' magic numbers are shared on purpose and left out."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from local.seed import CONTACTS, OUR_NUMBERS

E2E = Path(__file__).resolve().parents[1] / "e2e"
LITERAL_NUMBER = re.compile(r"""["'](\+1\d{10})["']""")
SIMULATOR_MAGIC = re.compile(r"\+1500555\d{4}")


def seeded_numbers() -> set[str]:
    numbers = {number.number for number in OUR_NUMBERS}
    for contact in CONTACTS:
        numbers.update(contact.phones)
    return numbers


def customer_numbers_by_file() -> dict[str, set[str]]:
    shared = seeded_numbers()
    found: dict[str, set[str]] = {}
    for path in sorted(E2E.glob("test_*.py")):
        numbers = set(LITERAL_NUMBER.findall(path.read_text(encoding="utf-8")))
        found[path.name] = {n for n in numbers if n not in shared and not SIMULATOR_MAGIC.fullmatch(n)}
    return found


def test_no_two_e2e_files_text_the_same_customer() -> None:
    files_by_number: dict[str, list[str]] = defaultdict(list)
    for name, numbers in customer_numbers_by_file().items():
        for number in numbers:
            files_by_number[number].append(name)
    clashes = {number: files for number, files in files_by_number.items() if len(files) > 1}
    assert clashes == {}, f"give each file numbers of its own: {clashes}"


def test_the_scan_sees_the_e2e_files_numbers() -> None:
    """Guards the check above against a pattern that matches nothing."""
    found = customer_numbers_by_file()
    assert len(found) > 20
    assert "+14155550700" in found["test_faults.py"]
