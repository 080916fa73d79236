"""Reading the To and Cc fields: the shortcut for the common forms reads them exactly as a mail header reader does."""
import random
import time
from email.utils import getaddresses

import pytest

from portal.letters.compose import (
    LetterError,
    _address_entries,
    _entry_addresses,
    _split_by_character,
    parse_recipients,
)


def _as_header_reads(entry):
    return [(" ".join(name.split()), address) for name, address in getaddresses([entry]) if address]


def test_names_and_addresses_in_the_common_forms_read_as_the_header_parser_reads_them():
    rng = random.Random(20261129)
    name_chars, address_chars = list("ab Z9._-' Иё"), list("abc.+_-=9")
    for _ in range(20000):
        name = "".join(rng.choice(name_chars) for _ in range(rng.randint(0, 8)))
        address = ("".join(rng.choice(address_chars) for _ in range(rng.randint(1, 6))) + "@"
                   + "".join(rng.choice(address_chars) for _ in range(rng.randint(1, 6))))
        entry = rng.choice([f"{name} <{address}>", f"{name}<{address}>", address]).strip()
        read = [(" ".join(name.split()), address) for name, address in _entry_addresses(entry)]
        assert read == _as_header_reads(entry), entry


@pytest.mark.parametrize("entry", ['"Doe, John" <j@example.com>', "John (work) <j@example.com>", "x <a@b.c> y",
                                   "a@b@c", "<j@example.com> trailing", '"Smith; Ann" <ann@example.org>'])
def test_anything_else_goes_to_the_header_parser(entry):
    assert _entry_addresses(entry) == [(n, a) for n, a in getaddresses([entry]) if a]


def test_a_field_of_common_entries_gives_each_person_once_with_their_name():
    recipients = parse_recipients("Anna Petrova <anna@example.com>; bob@example.org, Anna <ANNA@example.com>, "
                                  "Иван Петров <ivan@example.ru>")
    assert [(r.name, r.address) for r in recipients] == [
        ("Anna Petrova", "anna@example.com"), ("", "bob@example.org"), ("Иван Петров", "ivan@example.ru")]


def test_an_entry_with_two_at_signs_is_refused_naming_it():
    with pytest.raises(LetterError) as refused:
        parse_recipients("ok@example.com, a@b@example.com")
    assert "a@b@example.com" in str(refused.value)


def test_fields_split_the_same_whether_or_not_they_hold_quotes_brackets_or_comments():
    rng = random.Random(29)
    pieces = ["a@example.com", "Ann <ann@example.com>", '"Doe, John" <j@example.com>', "<a,b@example.com>", ",", ";",
              " ", '"', "(", ")", "<", ">", "\\", "x", "Bob (sales; north) <b@example.org>"]
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 7)))
        assert _address_entries(text) == _split_by_character(text), text


@pytest.mark.parametrize("text", ["a" + " " * 200_000 + "x", "Name" + " " * 200_000 + "<a@example.com>",
                                  "a" + " x" * 100_000 + " <a@example.com>"])
def test_a_huge_field_is_answered_in_moments_not_minutes(text):
    # A form field may carry half a megabyte. The quadratic pattern this replaced took 22 s on
    # 100,000 spaces, holding the web process; the bound is far above linear time and far below that.
    started = time.monotonic()
    try:
        parse_recipients(text)
    except LetterError:
        pass
    assert time.monotonic() - started < 5
