"""In Chromium: the bell with its unread count, the notification centre, My profile's choices and the system
mailbox section, in English and Russian, at 1366 and 390 px."""

import pytest
from playwright.sync_api import expect

from portal.notifications import notify
from tests.fixtures.browser import assert_no_sideways_scroll

pytestmark = pytest.mark.browser


def fill_centre(person):
    notify(person, "mailbox_assigned", about="erik@example.com", target="mailbox:1")
    notify(person, "reply_received", about="Prices for 2025", detail="Anna Client <anna@client.example>",
           target="reply:1")
    notify(person, "letter_failed", about="Offer for ACME, with a rather long subject that has to wrap on a phone",
           detail="recipient_unknown", target="letter:1")


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("width", [1366, 390])
def test_the_bell_leads_to_the_centre_and_mark_all_read_empties_it(language, width, live_server, signed_in_page,
                                                                   make_employee, page, screenshot):
    person = make_employee(language=language)
    fill_centre(person)
    page.set_viewport_size({"width": width, "height": 800})
    signed_in_page(person)
    bell = page.locator("a.nav-bell")
    if width < 700:  # the count shows on the Menu button too, where the phone's collapsed menu hides the bell
        assert page.locator("[data-menu-toggle] [data-menu-unread]").inner_text().startswith("3")
        page.click("[data-menu-toggle]")
    assert bell.is_visible()
    assert bell.locator("[data-unread-notifications]").inner_text().startswith("3")
    words = {"en": "3 unread notifications", "ru": "3 непрочитанных уведомления"}[language]
    assert bell.get_attribute("title") == words
    screenshot(page, f"bell-{language}-{width}", full_page=False)

    bell.click()
    page.wait_for_url("**/notifications")
    assert page.locator("li.notification.unread").count() == 3
    assert page.locator("a.nav-bell").get_attribute("aria-current") == "page"
    assert_no_sideways_scroll(page)
    screenshot(page, f"notifications-{language}-{width}")

    page.locator(".notification-actions button").click()
    page.wait_for_url("**/notifications")
    assert page.locator("li.notification.unread").count() == 0
    assert page.locator("[data-unread-notifications]").count() == 0
    assert_no_sideways_scroll(page)


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("width", [1366, 390])
def test_my_profile_choices_and_the_system_mailbox_section(language, width, live_server, signed_in_page,
                                                           make_employee, make_mailbox, page, screenshot):
    admin = make_employee(role="admin", language=language)
    make_mailbox(address="portal@example.com")
    page.set_viewport_size({"width": width, "height": 900})
    signed_in_page(admin)
    page.goto(live_server + "/profile#notifications")
    page.locator("#notification-form input[name=reply_received][value=email]").check()
    assert_no_sideways_scroll(page)
    screenshot(page, f"profile-notifications-{language}-{width}")
    page.locator("#notification-form button[type=submit]").click()
    page.wait_for_url("**/profile#notifications")
    assert page.locator("#notification-form input[name=reply_received][value=email]").is_checked()

    page.goto(live_server + "/admin/mail/outgoing#system-mailbox")
    page.select_option("#system-mailbox select", label="portal@example.com")
    page.locator("#system-mailbox button[type=submit]").click()
    page.wait_for_url("**/admin/mail/outgoing#system-mailbox")
    assert "portal@example.com" in page.locator("#system-mailbox p").first.inner_text()
    assert_no_sideways_scroll(page)
    page.locator("#system-mailbox").scroll_into_view_if_needed()
    screenshot(page, f"outgoing-system-mailbox-{language}-{width}")


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("width", [1366, 390])
def test_an_entry_opens_from_the_keyboard_and_only_then_counts_as_read(language, width, live_server, signed_in_page,
                                                                       make_employee, make_mailbox, write_letter,
                                                                       page, screenshot):
    """Opening is a POST (a form styled as the entry's link): Enter on it marks the entry read and lands on the
    letter; a GET of the entry's address, as a prefetcher or an <img src> would make, marks nothing."""
    person = make_employee(language=language)
    letter = write_letter(make_mailbox(person, address="erik@example.com"), author=person, subject="Offer for ACME")
    fill_centre(person)
    opened = notify(person, "letter_failed", about="Offer for ACME", detail="recipient_unknown",
                    target=f"letter:{letter.id}")
    page.set_viewport_size({"width": width, "height": 800})
    signed_in_page(person)
    page.goto(f"{live_server}/notifications")
    page.evaluate(f"fetch('{live_server}/notifications/{opened.id}', {{credentials: 'same-origin'}})")
    page.reload()
    assert page.locator("li.notification.unread").count() == 4

    entry = page.locator("li.notification").first.locator("form.notification-open button")
    # A screen reader hears the badge as its own word: "new Your letter…", not "newYour letter…".
    assert entry.inner_text().startswith(("new ", "новый "))
    entry.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/letters/{letter.id}")
    page.goto(f"{live_server}/notifications")
    assert page.locator("li.notification.unread").count() == 3
    assert page.locator("li.notification").first.get_attribute("class") == "notification"
    assert page.locator("[data-unread-notifications]").first.inner_text().startswith("3")
    assert_no_sideways_scroll(page)
    screenshot(page, f"notifications-read-{language}-{width}")


@pytest.fixture
def e_mail_links(config):
    """The portal's public address, which the links in its e-mails begin with (set before the app is made)."""
    config["PORTAL_BASE_URL"] = "https://portal.example.com"
    return config["PORTAL_BASE_URL"]


@pytest.mark.parametrize(("language", "width"), [("en", 1366), ("ru", 1366), ("ru", 390)])
def test_a_reply_opened_from_its_notification_e_mail_counts_as_read(language, width, e_mail_links, live_server,
                                                                    signed_in_page, page, employee, sending_mailbox,
                                                                    write_letter, run_queue, smtp_server,
                                                                    make_mailbox, admin, screenshot):
    """The e-mail's link (a GET, which marks nothing) leads to the reply on its letter's page; the page, once on
    screen, posts that the replies it shows are read: the bell and the Replies badge go down, there and then."""
    import email
    import email.policy
    import re

    from portal import events
    from portal.models import Reply
    from portal.notifications import set_preferences
    from portal.portal_mail import mail_notifications, set_system_mailbox
    from tests.fixtures.letters import passed_test

    employee.language = language
    employee.save()
    set_system_mailbox(passed_test(make_mailbox(
        address="portal@example.com", display_name="The Portal", smtp_host="localhost", smtp_port=smtp_server.port,
        smtp_security="starttls", smtp_username=smtp_server.username, password=smtp_server.password)), actor=admin)
    set_preferences(employee, {"reply_received"})
    letter = write_letter(sending_mailbox, subject="Proposal")
    run_queue()
    reply = Reply.create(letter=letter, mailbox=sending_mailbox, message_id="<yes@client.example>",
                         sender="Friend <friend@example.com>", subject="Re: Proposal", body_text="Yes, agreed.")
    events.reply_received.send(reply)  # as the reply fetcher announces it
    notify(employee, "mailbox_assigned", about=sending_mailbox.address)  # another entry: the bell goes 2 -> 1
    mail_notifications(employee.id, "reply_received")
    run_queue()
    [message] = [email.message_from_bytes(m.content, policy=email.policy.default) for m in smtp_server.messages
                 if employee.email in m.rcpt_tos]
    # The link the person clicks, on the live server instead of the portal's public name.
    path = re.search(rf"{e_mail_links}(/replies/\d+)", message.get_body(("plain",)).get_content()).group(1)

    page.set_viewport_size({"width": width, "height": 900})
    signed_in_page(employee)

    def counts():
        """(the bell's number, the Replies badge's number) as the navigation shows them (0: none)."""
        bell = page.locator("[data-unread-notifications]")
        replies = page.locator("#nav-links a[href$='/replies'] .badge [aria-hidden]")
        return (int(bell.get_attribute("data-unread-notifications")) if bell.count() else 0,
                int(replies.inner_text()) if replies.count() else 0)

    page.goto(live_server + "/outbox")
    assert counts() == (2, 1)
    with page.expect_response(lambda answer: answer.url.endswith(f"/letters/{letter.id}/replies/read")) as marked:
        page.goto(live_server + path)  # the link in the e-mail
    assert marked.value.status == 200
    # The counts go down on the page on screen (the answer swaps them in), not only on the next page.
    expect(page.locator("#nav-replies-count .badge")).to_have_count(0)
    assert counts() == (1, 0)
    assert page.url.endswith(f"/letters/{letter.id}#reply-{reply.id}")
    assert page.locator(f"#reply-{reply.id}").is_visible() and "Yes, agreed." in page.locator(f"#reply-{reply.id}")\
        .inner_text()
    assert Reply.get_by_id(reply.id).read_at is not None
    screenshot(page, f"reply-from-e-mail-{language}-{width}")
    page.goto(live_server + "/replies")
    assert counts() == (1, 0) and page.locator("tr.unread").count() == 0
    if width < 700:
        assert page.locator("[data-menu-toggle] [data-menu-unread]").inner_text().startswith("1")
    page.goto(live_server + f"/letters/{letter.id}")  # nothing left to mark: no second POST
    assert page.locator(f"form[action$='/letters/{letter.id}/replies/read']").count() == 0
    screenshot(page, f"reply-read-{language}-{width}")
