"""In Chromium: write a letter, watch it go from queued to sent, see a reply appear; the pages in both languages."""
import datetime
import re

import pytest
from playwright.sync_api import expect

from portal.letters.queue import QueuePolicy, process_due_letters
from portal.letters.replies import fetch_replies
from portal.models import Letter, utcnow
from tests.fixtures.letters import reply_to

pytestmark = pytest.mark.browser


def test_write_a_letter_watch_it_go_out_and_see_the_reply(live_server, signed_in_page, employee, replying_mailbox,
                                                          mail_config, dovecot, mail_user, smtp_server, screenshot):
    replying_mailbox("imap")
    page = signed_in_page(employee)
    page.goto(live_server + "/letters/new")
    page.click("summary:has-text('Why this address?')")
    page.fill("#to", "Friend <friend@example.com>")
    page.fill("#subject", "Prices for 2025")
    page.fill("#body", "Hello,\n\nplease find our prices below.\n")
    screenshot(page, "new-letter-en")
    page.click("#send-letter")
    page.wait_for_url(re.compile(r"/letters/\d+$"))
    assert page.locator("#letter-status .state-queued").is_visible()
    screenshot(page, "letter-queued")

    process_due_letters(mail_config, QueuePolicy(mailbox_per_minute=0))
    page.locator("#letter-status .state-sent").wait_for(timeout=6000)  # the page polls itself
    assert len(smtp_server.messages) == 1

    dovecot.deliver(mail_user.address, reply_to(Letter.get(), text="Thank you, the prices are fine."))
    fetch_replies(mail_config)
    page.reload()
    assert page.locator(".reply").inner_text().count("Thank you, the prices are fine.") == 1
    screenshot(page, "letter-sent-with-reply")

    page.goto(live_server + "/outbox")
    assert "1 reply" in page.locator("#outbox").inner_text()


def _letters(author, mailbox, count, **fields):
    now = utcnow()
    for number in range(count):
        values = dict(author=author, mailbox=mailbox, from_address=mailbox.address, from_name=mailbox.display_name,
                      to_header=f"Contact {number} <contact{number}@example.com>",
                      subject=f"Commercial offer number {number} for the second quarter of the year",
                      message_id=f"<shot-{number}-{now.timestamp()}@example.com>", raw_message="x",
                      created_at=now - datetime.timedelta(minutes=number), state="sent", attempts=1)
        values.update(fields)
        Letter.create(**values)


def test_outbox_screenshots(live_server, signed_in_page, employee, sending_mailbox, screenshot, page, write_letter,
                            run_queue, smtp_server):
    signed_in_page(employee)
    page.goto(live_server + "/outbox")
    screenshot(page, "outbox-empty-en")

    letter = write_letter(sending_mailbox, to="nobody@example.com", subject="Contract draft")
    smtp_server.fail("RCPT", "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown")
    run_queue()
    smtp_server.clear_script()
    smtp_server.fail("MAIL", "421 4.7.0 Try again later")
    write_letter(sending_mailbox, subject="Meeting on Friday")
    run_queue()
    _letters(employee, sending_mailbox, 30)
    page.goto(live_server + "/outbox")
    assert page.locator(".nav-badge.badge-fail").is_visible()  # the Outbox's (the bell has its own)
    screenshot(page, "outbox-long-failed-en")

    employee.language = "ru"
    employee.save()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server + "/outbox")
    screenshot(page, "outbox-ru-phone")
    page.goto(live_server + f"/letters/{letter.id}")
    screenshot(page, "failed-letter-ru-phone")
    page.goto(live_server + "/letters/new")
    screenshot(page, "new-letter-ru-phone")


@pytest.mark.console_errors(  # provoked on purpose
    "status of 502",
    "Response Status Error Code 502",
    "htmx:sendError",
    "htmx:afterRequest",
    "net::ERR_FAILED")
def test_the_polling_outbox_reports_an_outage_once_and_a_closed_notice_stays_closed(
        live_server, signed_in_page, employee, sending_mailbox, write_letter, screenshot):
    write_letter(sending_mailbox, subject="Waiting for the worker")  # queued: the outbox asks again every 2 s
    page = signed_in_page(employee)
    page.goto(live_server + "/outbox")
    notice = page.locator("#request-problem")
    polls = []

    def gateway_down(route):
        polls.append(route.request.url)
        route.fulfill(status=502, body="<h1>502 Bad Gateway</h1>")

    def wait_for_polls(count):
        seen = len(polls)
        for _ in range(60):  # the list asks every 2 s: 15 s is plenty
            if len(polls) >= seen + count:
                return
            page.wait_for_timeout(250)
        raise AssertionError(f"the outbox stopped polling: {len(polls) - seen} of {count} polls in 15 s")

    page.route("**/outbox*", gateway_down)
    expect(notice).to_contain_text("(error 502)", timeout=6000)
    screenshot(page, "outbox-poll-failed", full_page=False)
    page.click("[data-close-problem]")
    wait_for_polls(2)
    expect(notice).to_be_hidden()  # closed, it stays closed while the same list keeps failing
    page.unroute("**/outbox*")
    with page.expect_response(lambda response: "/outbox" in response.url and response.status == 200, timeout=6000):
        pass  # the list comes back on its own
    page.route("**/outbox*", gateway_down)
    expect(notice).to_be_visible(timeout=6000)  # a new outage is news again


def test_nobody_can_send_screenshot(live_server, signed_in_page, employee, screenshot, page):
    signed_in_page(employee)
    page.goto(live_server + "/letters/new")
    assert page.locator("#nobody-can-send").is_visible() and page.locator("#send-letter").count() == 0
    screenshot(page, "new-letter-nobody-can-send")
    page.goto(live_server + "/contacts")
    screenshot(page, "contacts-empty")


def test_a_bad_address_among_good_ones_is_quoted_beside_the_to_field_as_typed(live_server, signed_in_page, employee,
                                                                              sending_mailbox, screenshot, page):
    signed_in_page(employee)
    for language, quoted in (("en", "“a@b@example.com” is not a valid e-mail address."),
                             ("ru", "«a@b@example.com»")):
        employee.language = language
        employee.save()
        page.goto(live_server + "/letters/new")
        page.fill("#to", "Anna <anna@example.com>, a@b@example.com")
        page.fill("#subject", "Prices")
        page.fill("#body", "Hello")
        page.click("#send-letter")
        error = page.locator("#to-error")
        error.wait_for()
        assert quoted in error.inner_text()
        assert page.locator("#to").input_value() == "Anna <anna@example.com>, a@b@example.com"  # nothing lost
        screenshot(page, f"new-letter-bad-address-{language}")
    assert Letter.select().count() == 0


@pytest.mark.browser
def test_a_bounced_letter_and_a_paused_mailbox_in_both_languages(
        live_server, signed_in_page, employee, page, sending_mailbox, write_letter, run_queue, smtp_server, screenshot):
    from portal.letters.bounces import Bounce, BouncedRecipient, record_bounce
    from portal.models import Mailbox

    letter = write_letter(sending_mailbox, subject="Счёт-фактура за ноябрь", to="gone@example.com, ok@example.com")
    run_queue()
    assert record_bounce(Bounce(Letter.get_by_id(letter.id).message_id, (BouncedRecipient(
        "gone@example.com", "5.1.1", "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"),)),
        sending_mailbox.id) == letter.id
    Mailbox.update(active=False, paused_problem="auth_failed",
                   paused_reply="535 5.7.8 Error: authentication failed").where(
        Mailbox.id == sending_mailbox.id).execute()

    signed_in_page(employee)
    for language, width in (("en", 1280), ("ru", 1280), ("ru", 390), ("en", 390)):
        employee.language = language
        employee.save()
        page.set_viewport_size({"width": width, "height": 900})
        for name, url in (("letter", f"/letters/{letter.id}"), ("outbox", "/outbox"), ("addresses", "/my/addresses")):
            page.goto(live_server + url)
            screenshot(page, f"{name}-{language}-{width}")
        page.goto(live_server + f"/letters/{letter.id}")
        assert page.locator(".recipients .badge-fail").count() == 1
        page.goto(live_server + "/my/addresses")
        assert page.locator(".paused-reason").is_visible()


def test_a_failed_letter_with_a_new_reply_clears_both_counts_whatever_answer_comes_last(
        live_server, signed_in_page, employee, sending_mailbox, write_letter, run_queue, smtp_server):
    """The page posts "seen" and "read" on load; each answer redraws every count. Sent one after the other, the last
    answer counts after both marks: neither badge comes back because the other answer was late."""
    from portal.models import Reply

    letter = write_letter(sending_mailbox, to="nobody@example.com", subject="Contract draft")
    smtp_server.fail("RCPT", "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown")
    run_queue()
    Reply.create(letter=letter, mailbox=sending_mailbox, message_id="<r1@client.example>", sender="nobody@example.com",
                 subject="Re: Contract draft", body_text="Which contract?")
    page = signed_in_page(employee)
    page.goto(live_server + "/outbox")
    expect(page.locator("#nav-outbox-count .badge")).to_have_count(1)
    expect(page.locator("#nav-replies-count .badge")).to_have_count(1)
    held, marks = [], []
    page.on("request", lambda request: marks.append(request.url) if request.method == "POST" else None)
    page.route(f"**/letters/{letter.id}/seen", lambda route: held.append(route))  # "seen" answers late
    page.goto(live_server + f"/letters/{letter.id}")
    page.wait_for_timeout(500)
    assert held and not any(url.endswith("/replies/read") for url in marks), marks  # "read" waits for "seen"
    held[0].continue_()
    page.wait_for_load_state("networkidle")
    assert any(url.endswith("/replies/read") for url in marks)
    expect(page.locator("#nav-outbox-count .badge")).to_have_count(0)
    expect(page.locator("#nav-replies-count .badge")).to_have_count(0)


def test_a_failed_letter_counts_as_seen_once_its_page_is_shown_not_when_it_is_fetched(
        live_server, signed_in_page, employee, sending_mailbox, write_letter, run_queue, smtp_server):
    """The page posts "seen" when Chromium shows it; a GET alone (a prefetcher, an <img src>) clears no badge."""
    letter = write_letter(sending_mailbox, to="nobody@example.com", subject="Contract draft")
    smtp_server.fail("RCPT", "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown")
    run_queue()
    page = signed_in_page(employee)
    page.goto(live_server + "/outbox")
    badge = page.locator(".nav-badge.badge-fail")
    assert badge.is_visible()
    page.evaluate(f"fetch('{live_server}/letters/{letter.id}', {{credentials: 'same-origin'}})")
    page.reload()
    assert badge.is_visible() and Letter.needing_attention(employee) == 1
    with page.expect_response(lambda answer: answer.url.endswith(f"/letters/{letter.id}/seen")) as seen:
        page.goto(live_server + f"/letters/{letter.id}")
    assert seen.value.status == 200
    expect(badge).to_have_count(0)  # on the letter's page itself: the answer swaps the counts in
    page.goto(live_server + "/outbox")
    assert badge.count() == 0 and Letter.needing_attention(employee) == 0
