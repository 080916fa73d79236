"""New letter in Chromium: every error at once, a calm start, and after Send and Back a page that agrees with itself."""
import re

import pytest
from playwright.sync_api import expect

from portal.models import Letter
from tests.fixtures.browser import assert_no_sideways_scroll

pytestmark = pytest.mark.browser


def _agrees(page):
    """The project field, the sender block drawn for it, and the Send button tell the same story."""
    chosen = page.locator("#project").input_value()
    expect(page.locator("#letter-sender")).to_have_attribute("data-project", chosen)
    can_send = page.locator("#letter-sender #mailbox").count() == 1
    expect(page.locator("#send-letter")).to_have_count(1 if can_send else 0)
    return chosen


@pytest.mark.parametrize("language,width", [("en", 1366), ("ru", 1366), ("en", 390), ("ru", 390)])
def test_every_error_at_once_and_a_calm_start(live_server, signed_in_page, employee, make_project, sending_mailbox,
                                              screenshot, language, width):
    make_project("Alpha")
    make_project("Beta")
    employee.language = language
    employee.save()
    page = signed_in_page(employee)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server + "/letters/new")
    expect(page.locator("#nobody-can-send")).to_have_count(0)
    screenshot(page, f"new-letter-{language}-{width}")

    page.fill("#to", "Anna <anna@example.com>, bad@, worse at example.com")
    page.click("#send-letter")
    for field in ("#subject", "#body", "#to"):
        expect(page.locator(field)).to_have_attribute("aria-invalid", "true")
    to_error = page.locator("#to-error")
    expect(to_error).to_contain_text("bad@")
    expect(to_error).to_contain_text("worse at example.com")
    assert_no_sideways_scroll(page)
    screenshot(page, f"new-letter-errors-{language}-{width}")
    assert Letter.select().count() == 0


def test_after_send_and_back_the_project_sender_and_send_button_agree(
        live_server, signed_in_page, employee, make_project, make_mailbox, sending_mailbox):
    alpha, beta = make_project("Alpha"), make_project("Beta")
    sending_mailbox.project_links.model.create(mailbox=sending_mailbox, project=beta)  # serves Beta only
    page = signed_in_page(employee)
    page.goto(live_server + "/letters/new")
    expect(page.locator("#sender-waits")).to_be_visible()  # two projects, no letter yet: waiting for a choice
    _agrees(page)

    page.select_option("#project", str(beta.id))
    expect(page.locator("#send-letter")).to_be_visible()
    page.fill("#to", "friend@example.com")
    page.fill("#subject", "Prices")
    page.fill("#body", "Hello")
    page.click("#send-letter")
    page.wait_for_url(re.compile(r"/letters/\d+$"))
    page.go_back()
    page.wait_for_load_state("networkidle")
    assert _agrees(page) == str(beta.id)

    page.select_option("#project", str(alpha.id))  # nobody sends for Alpha
    expect(page.locator("#nobody-can-send")).to_be_visible()
    page.goto(live_server + "/outbox")
    page.go_back()
    page.wait_for_load_state("networkidle")
    _agrees(page)
