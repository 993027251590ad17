"""Merge-field rendering: plain substitution, defaults, and a loud failure for every missing field."""

from __future__ import annotations

import random
import string

import pytest

from parley.domain.templates import MissingMergeField, placeholders, render


def test_fills_placeholders_from_values() -> None:
    assert render("Hi {{first_name}}, see you {{day}}.", {"first_name": "Ana", "day": "Monday"}) == (
        "Hi Ana, see you Monday."
    )


def test_whitespace_inside_the_braces_is_ignored() -> None:
    assert render("Hi {{  first_name   }}!", {"first_name": "Ana"}) == "Hi Ana!"
    assert render("Hi {{ first_name | there }}!", {}) == "Hi there!"


def test_the_same_field_twice_is_filled_twice() -> None:
    assert render("{{x}}-{{ x }}", {"x": "1"}) == "1-1"


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_default_is_used_when_the_value_is_absent_or_blank(value: str | None) -> None:
    assert render("Hi {{first_name|there}}", {"first_name": value}) == "Hi there"


def test_default_is_used_when_the_field_is_missing_entirely() -> None:
    assert render("Hi {{first_name|there}}", {}) == "Hi there"


def test_a_value_wins_over_the_default() -> None:
    assert render("Hi {{first_name|there}}", {"first_name": "Ana"}) == "Hi Ana"


def test_an_empty_default_renders_as_nothing_instead_of_failing() -> None:
    assert render("Hi{{suffix|}}!", {}) == "Hi!"


def test_defaults_are_trimmed_but_may_contain_spaces_and_punctuation() -> None:
    assert render("Dear {{name| valued customer, }}", {}) == "Dear valued customer,"


def test_every_missing_field_is_named_once_in_order_of_appearance() -> None:
    with pytest.raises(MissingMergeField) as caught:
        render("{{b}} {{a}} {{ok}} {{b}} {{c|fallback}} {{d}}", {"ok": "yes"})
    assert caught.value.fields == ["b", "a", "d"]
    assert "b, a, d" in str(caught.value)


def test_a_blank_value_without_a_default_is_missing() -> None:
    with pytest.raises(MissingMergeField) as caught:
        render("Hi {{first_name}}", {"first_name": "  "})
    assert caught.value.fields == ["first_name"]


def test_a_missing_field_is_a_value_error_for_callers_that_map_those_to_400() -> None:
    assert issubclass(MissingMergeField, ValueError)


def test_dunder_names_are_just_names_with_no_value() -> None:
    with pytest.raises(MissingMergeField) as caught:
        render("{{__class__}}", {})
    assert caught.value.fields == ["__class__"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ 7*7 }}",
        "{{x.__class__}}",
        "{{ first_name.upper() }}",
        "{{ [c for c in ()] }}",
        "{{'a'+'b'}}",
    ],
)
def test_expressions_are_never_evaluated(template: str) -> None:
    # Not a placeholder, so not a lookup and certainly not Python: the text is left as written.
    out = render(template, {"x": "X", "first_name": "ana"})
    assert out == template
    assert "49" not in out and "ANA" not in out and "<class" not in out


def test_values_are_inserted_verbatim_and_never_rendered_again() -> None:
    out = render("Hi {{name}}", {"name": "{{secret}}", "secret": "s3cr3t"})
    assert out == "Hi {{secret}}"
    assert "s3cr3t" not in out


@pytest.mark.parametrize(
    "text",
    [
        "{name}",
        "{{}}",
        "{{ }}",
        "a } b { c",
        '{"json": [1, 2]}',
        "}} backwards {{",
        "{{ not a placeholder }}",
        "{{x}",
        "{x}}",
    ],
)
def test_braces_that_are_not_placeholders_pass_through(text: str) -> None:
    assert render(text, {"name": "N", "x": "X"}) == text


def test_placeholders_lists_each_name_once_in_order() -> None:
    assert placeholders("{{b}} {{ a|z }} {{b}} {x} {{c}}") == ["b", "a", "c"]


def test_no_placeholder_is_ever_left_in_the_output() -> None:
    rng = random.Random(20240506)
    names = ["first_name", "last_name", "company", "day", "_x", "A1"]
    filler = string.ascii_letters + " ,.!?-'|"
    for _ in range(300):
        parts: list[str] = []
        for _ in range(rng.randint(1, 6)):
            parts.append("".join(rng.choice(filler) for _ in range(rng.randint(0, 8))))
            name = rng.choice(names)
            pad = " " * rng.randint(0, 2)
            default = rng.choice(["", "|", "|friend", "| a default "])
            parts.append("{{" + pad + name + pad + default + "}}")
        template = "".join(parts)
        values = {n: rng.choice(["Ana", "Acme Ltd", "Mon"]) for n in names}
        out = render(template, values)
        assert "{{" not in out and "}}" not in out, (template, out)
