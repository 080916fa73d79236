"""The letters queue and the reply fetcher against a real provider (private Postfix + Dovecot)."""
from __future__ import annotations

import secrets
import smtplib
import ssl

import pytest

from portal.letters.replies import fetch_replies
from portal.models import Letter, LetterAttempt, Reply
from tests.fixtures.letters import QueueRunner, passed_test, reply_to
from tests.servers.real_provider import CLIENT_DOMAIN, PROVIDER_DOMAIN


@pytest.fixture
def provider(real_provider):
    """The session's provider with every failure case switched off again after the test."""
    yield real_provider
    real_provider.clear_failures()


@pytest.fixture
def anna(provider, make_mailbox, employee):
    """The employee's tested mailbox at the provider: submission with STARTTLS, replies over IMAPS on 127.0.0.2."""
    address = f"anna-{secrets.token_hex(4)}@{PROVIDER_DOMAIN}"
    password = provider.add_user(address)
    mailbox = make_mailbox(employee, address=address, display_name="Anna Berg", smtp_host=provider.host,
                           smtp_port=provider.ports["submission"], smtp_security="starttls", smtp_username=address,
                           password=password, receive_replies=True, incoming_protocol="imap",
                           incoming_host=provider.incoming_host, incoming_port=provider.ports["imaps"],
                           incoming_security="ssl", incoming_username=address)
    mailbox.set_secret("incoming_password", password)
    return passed_test(mailbox)


@pytest.fixture
def contact(provider):
    """An outside contact at client.example: (address, password)."""
    address = f"olga-{secrets.token_hex(4)}@{CLIENT_DOMAIN}"
    return address, provider.add_user(address)


@pytest.fixture
def queue(provider):
    """One pass of the sending core, as the worker runs it, reaching the provider; .later() moves its clock."""
    return QueueRunner(provider.mail_config())


def fresh(letter):
    return Letter.get_by_id(letter.id)


def test_a_queued_letter_is_delivered_and_parsed(anna, contact, write_letter, queue, provider):
    """The queue sends through submission; the contact's maildir has the letter, headers and body intact."""
    letter = write_letter(anna, to=f"Olga Ivanova <{contact[0]}>", subject="Счёт № 42 за ноябрь",
                          body="Добрый день, Ольга!\n\nСчёт во вложении.\n")
    queue()
    assert fresh(letter).state == "sent"
    [delivered] = provider.wait_for_letters(contact[0])
    assert delivered["Subject"] == "Счёт № 42 за ноябрь"
    assert delivered["From"].addresses[0].addr_spec == anna.address
    assert delivered["From"].addresses[0].display_name == "Anna Berg"
    assert delivered["Message-ID"] == letter.message_id
    assert delivered.get_body(("plain",)).get_content().replace("\r\n", "\n") == (
        "Добрый день, Ольга!\n\nСчёт во вложении.\n")


def test_a_451_at_the_end_of_data_defers_and_the_retry_delivers_once(anna, contact, write_letter, queue, provider):
    """Postfix's 451 after the letter's end: deferred, nothing delivered; lifted, the retry delivers one copy."""
    letter = write_letter(anna, to=contact[0])
    provider.fail_end_of_data(contact[0])
    queue()
    deferred = fresh(letter)
    assert deferred.state == "deferred" and deferred.smtp_code == 451
    assert provider.letters(contact[0]) == []

    provider.clear_failures()
    queue.later(minutes=5)
    queue()
    sent = fresh(letter)
    assert sent.state == "sent"
    assert [attempt.outcome for attempt in sent.history.order_by(LetterAttempt.id)] == ["deferred", "sent"]
    assert len(provider.wait_for_letters(contact[0])) == 1


def test_a_reply_sent_through_the_provider_is_fetched_for_its_letter(anna, contact, write_letter, queue, provider):
    """The contact answers through the provider's submission; the fetcher finds it over IMAPS and files it."""
    letter = write_letter(anna, to=contact[0], subject="Offer")
    queue()
    provider.wait_for_letters(contact[0])
    with smtplib.SMTP(provider.host, provider.ports["submission"], timeout=10) as client:
        client.starttls(context=ssl.create_default_context(cafile=provider.ca_file))
        client.login(*contact)
        client.sendmail(contact[0], [anna.address],
                        reply_to(fresh(letter), sender=f"Olga <{contact[0]}>", text="Agreed, thank you."))
    provider.wait_for_letters(anna.address)

    [report] = fetch_replies(provider.mail_config(), mailbox_id=anna.id)

    assert report.ok, report.problem
    [reply] = Reply.select().where(Reply.letter == letter.id)
    assert reply.sender == f"Olga <{contact[0]}>" and reply.subject == "Re: Offer"
    assert reply.body_text == "Agreed, thank you."
