"""In Chromium: the letter page and the Outbox follow their letters (issue 15, defect 11).

The letter page refreshes itself until its letter is final and then a while longer for replies; its sentence
always says what the state is; a letter a recipient refused says "Sent, partly refused" in both languages.
"""
import re

import pytest
from playwright.sync_api import expect

from portal.letters.queue import QueuePolicy, process_due_letters
from portal.letters.replies import fetch_replies
from portal.models import Letter

pytestmark = pytest.mark.browser


def _send_through_the_form(page, live_server, subject):
    page.goto(live_server + "/letters/new")
    page.fill("#to", "Friend <friend@example.com>")
    page.fill("#subject", subject)
    page.fill("#body", "Hello,\n\nour prices are below.\n")
    page.click("#send-letter")
    page.wait_for_url(re.compile(r"/letters/\d+$"))


def test_the_letter_page_follows_its_letter_to_sent_and_shows_a_reply_without_a_reload(
        live_server, signed_in_page, employee, replying_mailbox, mail_config, dovecot, mail_user, smtp_server,
        screenshot):
    replying_mailbox("imap")
    page = signed_in_page(employee)
    _send_through_the_form(page, live_server, "Prices for 2026")
    expect(page.locator(".letter-sentence")).to_have_text(re.compile(r"^The letter is in the queue\."))

    process_due_letters(mail_config, QueuePolicy(mailbox_per_minute=0))
    expect(page.locator("#letter-status .state-sent")).to_be_visible(timeout=6000)
    expect(page.locator("body")).not_to_contain_text("The letter is in the queue.")
    expect(page.locator(".letter-sentence")).to_contain_text("The letter was sent.")

    dovecot.deliver(mail_user.address, _reply(Letter.get(), "Thank you, the prices are fine."))
    fetch_replies(mail_config)
    expect(page.locator(".reply")).to_contain_text("Thank you, the prices are fine.", timeout=15000)  # no reload
    screenshot(page, "letter-sent-reply-arrived")


def _reply(letter, text):
    from tests.fixtures.letters import reply_to

    return reply_to(letter, text=text)


def test_a_letter_that_will_be_retried_never_says_it_is_in_the_queue(
        live_server, signed_in_page, employee, sending_mailbox, mail_config, smtp_server, screenshot):
    page = signed_in_page(employee)
    _send_through_the_form(page, live_server, "Meeting on Friday")
    smtp_server.fail("MAIL", "421 4.7.0 Try again later")
    process_due_letters(mail_config, QueuePolicy(mailbox_per_minute=0))
    expect(page.locator("#letter-status .state-deferred")).to_be_visible(timeout=6000)
    expect(page.locator("body")).not_to_contain_text("The letter is in the queue.")
    expect(page.locator(".letter-sentence")).to_contain_text("it will be tried again")
    screenshot(page, "letter-will-retry")


@pytest.mark.parametrize("language,words", [("en", "Sent, partly refused"), ("ru", "Отправлено, частично отклонено")],
                         ids=["en", "ru"])
def test_one_refused_recipient_shows_partly_refused_in_the_outbox_and_on_the_page(
        live_server, signed_in_page, employee, sending_mailbox, write_letter, run_queue, smtp_server, screenshot,
        page, language, words):
    employee.language = language
    employee.save()
    letter = write_letter(sending_mailbox, to="Anna <anna@example.com>, gone@example.com", subject="Contract")
    smtp_server.refuse("gone@example.com")
    run_queue()
    assert Letter.get_by_id(letter.id).state == "sent"
    signed_in_page(employee)
    page.goto(live_server + "/outbox")
    expect(page.locator(f"#letter-{letter.id} .col-state")).to_contain_text(words)
    screenshot(page, f"outbox-partly-refused-{language}")
    page.goto(live_server + f"/letters/{letter.id}")
    expect(page.locator("#letter-status .letter-facts")).to_contain_text(words)
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, f"letter-partly-refused-{language}-phone")


def test_the_outbox_swaps_in_only_the_row_whose_letter_changed(
        live_server, signed_in_page, employee, sending_mailbox, write_letter, mail_config, smtp_server, page):
    first = write_letter(sending_mailbox, subject="First")
    second = write_letter(sending_mailbox, subject="Second")
    signed_in_page(employee)
    page.goto(live_server + "/outbox")
    page.evaluate("document.getElementById('letter-%d').dataset.marked = 'kept'" % second.id)
    Letter.update(state="cancelled").where(Letter.id == first.id).execute()
    expect(page.locator(f"#letter-{first.id} .state-cancelled")).to_be_visible(timeout=6000)
    # the other row is the very element it was: only the changed row came back
    assert page.evaluate("document.getElementById('letter-%d').dataset.marked" % second.id) == "kept"
    expect(page.locator("#outbox-poll")).to_contain_text("updating")  # the second is still in flight
