"""In Chromium: the bell with its unread count, the notification centre, My profile's choices and the system
mailbox section, in English and Russian, at 1366 and 390 px."""

import pytest

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
