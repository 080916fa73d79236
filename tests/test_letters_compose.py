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


SALES = "ООО «Ромашка», отдел продаж"
LONG_SUBJECT = ("Счёт-фактура и акт сверки взаиморасчётов за третий квартал по договору поставки "
                "оборудования, с приложениями, спецификацией и графиком оплаты")[:120]


def _unfolded(raw, name):
    """A header's raw value as the bytes carry it, folds undone."""
    import email

    return email.message_from_bytes(raw, policy=email.policy.compat32)[name].replace("\r\n", "")


def test_the_bytes_the_worker_sends_keep_rfc_line_limits_and_names_and_subjects_round_trip(
        make_mailbox, employee, smtp_server, write_letter, run_queue):
    import email
    import re
    from email.header import decode_header, make_header

    from tests.fixtures.letters import passed_test

    assert len(LONG_SUBJECT) == 120
    mailbox = passed_test(make_mailbox(employee, address=smtp_server.username, display_name=SALES,
                                       smtp_host="localhost", smtp_port=smtp_server.port, smtp_security="starttls",
                                       smtp_username=smtp_server.username, password=smtp_server.password))
    write_letter(mailbox, subject=LONG_SUBJECT, to=f'"{SALES}" <buyer@example.com>, Фёдор <f@example.org>')

    run_queue()

    [sent] = smtp_server.messages
    head = sent.content.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert len(line) <= 78, line  # RFC 5322's recommended limit, on the wire
        for word in re.findall(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=", line):
            assert len(word) <= 75, word  # RFC 2047
    message = email.message_from_bytes(sent.content, policy=email.policy.default)
    assert message["Subject"] == LONG_SUBJECT
    # RFC 2047 joins adjacent encoded words without the space between them (Python's address parser does not).
    assert str(make_header(decode_header(_unfolded(sent.content, "From")))) == f"{SALES} <{smtp_server.username}>"
    assert str(make_header(decode_header(_unfolded(sent.content, "To")))) == (
        f"{SALES} <buyer@example.com>, Фёдор <f@example.org>")
    assert [a.addr_spec for a in message["To"].addresses] == ["buyer@example.com", "f@example.org"]


def test_long_thread_ids_are_sent_as_written_never_as_encoded_words(sending_mailbox, smtp_server, write_letter,
                                                                    run_queue):
    import email

    long_id = "<" + "CA" * 60 + "@mail.gmail.com>"  # 136 characters: longer than a line, shorter than the limit
    write_letter(sending_mailbox, in_reply_to=long_id, references="<first@example.com> " + long_id)

    run_queue()

    message = email.message_from_bytes(smtp_server.messages[0].content, policy=email.policy.default)
    assert message["In-Reply-To"] == long_id
    assert message["References"].split() == ["<first@example.com>", long_id]
    assert b"=?" not in smtp_server.messages[0].content.split(b"\r\n\r\n", 1)[0].split(b"In-Reply-To")[1][:200]


def test_a_5025_character_in_reply_to_is_refused_at_submit_not_at_send(sending_mailbox, write_letter, smtp_server):
    # A server answers such a header line "500 Line too long": the letter would be queued and fail at send.
    from portal.models import Letter

    huge = "<" + "a" * 5011 + "@example.com>"
    assert len(huge) == 5025
    with pytest.raises(LetterError) as refused:
        write_letter(sending_mailbox, in_reply_to=huge)
    assert refused.value.field == "in_reply_to" and "998" in str(refused.value.message)
    assert Letter.select().count() == 0


def test_the_page_says_why_a_reply_with_a_huge_thread_id_is_not_queued(as_employee, sending_mailbox):
    from portal.models import Letter
    from tests.conftest import page_text
    from tests.test_letters_views import _form

    response = as_employee.post("/letters/new", data=_form(as_employee, in_reply_to="<" + "a" * 5011 + "@x.org>"))

    assert response.status_code == 200
    assert "at most 998 characters" in page_text(response)
    assert Letter.select().count() == 0


def test_any_subject_and_name_round_trips_within_the_limits():
    import datetime
    import email
    import re
    from email.header import decode_header, make_header

    from portal.letters.compose import Recipient, build_message

    rng = random.Random(20261206)
    alphabet = list("ab Z9.,«»\"'() Иёжщ  -") + ["😀", "中", "é"]
    for _ in range(300):
        subject = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 200))).strip() or "x"
        name = " ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))).split())
        raw = build_message(from_address="sales@example.com", from_name=name, to=[Recipient("a@example.com", name)],
                            cc=[], subject=subject, body="Hello\n", message_id="<m@example.com>",
                            date=datetime.datetime(2026, 12, 6))
        head = raw.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            assert len(line) <= 78 or not re.search(rb"\s", line.strip()), line
            assert all(len(w) <= 75 for w in re.findall(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=", line))
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["Subject"] == subject
        unfolded = email.message_from_bytes(raw, policy=email.policy.compat32)["From"].replace("\r\n", "")
        if name and not name.isascii():
            assert str(make_header(decode_header(unfolded))) == f"{name} <sales@example.com>"
        else:
            assert message["From"].addresses[0].display_name == name


def test_a_shared_address_sent_through_someone_s_login_names_the_login_in_sender(
        make_mailbox, employee, make_smtp_server, write_letter, run_queue, sending_mailbox, smtp_server):
    import email

    from tests.fixtures.letters import passed_test

    through_anna = make_smtp_server(username="anna@example.com")
    shared = passed_test(make_mailbox(employee, address="sales@example.com", smtp_host="localhost",
                                      smtp_port=through_anna.port, smtp_security="starttls",
                                      smtp_username="anna@example.com", password=through_anna.password))
    write_letter(shared)
    write_letter(sending_mailbox)  # its login is its own address: no Sender

    run_queue()

    [via_anna] = [email.message_from_bytes(m.content, policy=email.policy.default) for m in through_anna.messages]
    assert via_anna["From"].addresses[0].addr_spec == "sales@example.com"
    assert via_anna["Sender"] == "anna@example.com"
    [own] = [email.message_from_bytes(m.content, policy=email.policy.default) for m in smtp_server.messages]
    assert own["Sender"] is None


def test_queue_letter_lets_the_rule_pick_stores_the_letter_once_and_wakes_a_worker(sending_mailbox, employee,
                                                                                   make_employee):
    from portal.letters.compose import NobodyCanSend, queue_letter

    woken = []
    fields = dict(to="friend@example.com", subject="Hello", body="Hi.\n", submit_token="token-1", wake=woken.append)
    letter = queue_letter(employee, None, **fields)
    again = queue_letter(employee, None, **fields)  # a double submit

    assert letter.mailbox.id == sending_mailbox.id and again.id == letter.id
    assert {w.id for w in woken} == {letter.id}  # a replay still unsent may wake a worker again: harmless
    woken.clear()
    with pytest.raises(NobodyCanSend) as refused:
        queue_letter(make_employee(name="New", email="new@example.com"), None, to="a@example.com", subject="S",
                     body="B", wake=woken.append)
    assert refused.value.decision.mailbox is None and woken == []


def test_every_bad_entry_of_a_field_is_named_not_only_the_first():
    from portal.letters.compose import recipient_problems

    problems = [str(p) for p in recipient_problems("good@example.com, bad@, Anna <anna@example.com>; worse at x")]

    assert problems == ["“bad@” is not a valid e-mail address.", "“worse at x” is not a valid e-mail address."]
    assert recipient_problems("good@example.com, Anna <anna@example.com>") == []
