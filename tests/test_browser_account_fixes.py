"""Test account in Chromium against the real provider: the field at fault is marked, and a fix is one click."""
import secrets

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import open_mailbox_servers
from tests.servers.real_provider import PROVIDER_DOMAIN

pytestmark = [pytest.mark.browser]


@pytest.fixture
def provider_reachable(config, real_provider):
    """Let Test account reach the real provider (SMTP on 127.0.0.1, IMAP/POP3 on 127.0.0.2), trusting its CA."""
    config.update(PORTAL_MAIL_ALLOWED_HOSTS=f"{real_provider.host}:*,{real_provider.incoming_host}:*",
                  PORTAL_MAIL_CA_FILE=real_provider.ca_file, PORTAL_MAIL_TIMEOUT=10.0,
                  PORTAL_MAIL_PROVIDER_MX_LOOKUP=False)
    return real_provider


def _fill(page, provider, address, password, *, port, security, login=None):
    page.fill("#address", address)
    open_mailbox_servers(page)
    page.fill("#smtp_host", provider.host)
    page.fill("#smtp_port", str(provider.ports[port]))
    page.select_option("#smtp_security", security)
    page.fill("#smtp_username", login or address)
    page.fill("#smtp_password", password)


def _new_mailbox_form(provider, live_server, signed_in_page, make_employee, language="en", width=1280):
    """A new user at the provider, and the new-mailbox form open for an employee in ``language``."""
    address = f"u{secrets.token_hex(4)}@{PROVIDER_DOMAIN}"
    password = provider.add_user(address)
    page = signed_in_page(make_employee(language=language))
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server + "/mailboxes/new")
    return page, address, password


def _finished(page):
    page.wait_for_selector("#test-result .result-line :is(.badge-ok, .badge-fail)", timeout=30000)
    return page.locator("#test-result")


@pytest.mark.parametrize("language,width", [("en", 1280), ("ru", 1280), ("en", 390)])
def test_swapped_ssl_and_starttls_is_marked_at_the_field_and_fixed_in_one_click(
        provider_reachable, live_server, signed_in_page, make_employee, screenshot, language, width):
    provider = provider_reachable
    page, address, password = _new_mailbox_form(provider, live_server, signed_in_page, make_employee, language, width)
    _fill(page, provider, address, password, port="submissions", security="starttls")

    page.click("#test-account")
    result = _finished(page)

    fix = result.locator("button.fix")
    expect(fix).to_have_text("Включить SSL на этом порту и проверить снова" if language == "ru"
                             else "Use SSL on this port and test again")
    security = page.locator("#smtp_security")
    expect(security).to_have_attribute("aria-invalid", "true")
    note = page.locator("#fault-smtp_security")
    expect(note).to_have_text("Перепутаны SSL и STARTTLS" if language == "ru" else "SSL and STARTTLS are swapped")
    assert "fault-smtp_security" in security.get_attribute("aria-describedby")
    assert page.evaluate("document.activeElement.id") == "smtp_security"  # scrolled to, and focused
    screenshot(page, f"fix-offered-{language}-{width}", full_page=False)
    fix.scroll_into_view_if_needed()
    screenshot(page, f"fix-button-{language}-{width}", full_page=False)

    fix.click()
    expect(page.locator("#test-result .result-line .badge-ok")).to_be_visible(timeout=30000)
    assert security.input_value() == "ssl"
    expect(page.locator(".field-fault")).to_have_count(0)
    expect(security).not_to_have_attribute("aria-invalid", "true")
    page.locator("#test-result").scroll_into_view_if_needed()
    screenshot(page, f"fix-passed-{language}-{width}", full_page=False)


def test_a_short_login_is_fixed_with_the_whole_address(provider_reachable, live_server, signed_in_page,
                                                       make_employee):
    provider = provider_reachable
    page, address, password = _new_mailbox_form(provider, live_server, signed_in_page, make_employee)
    _fill(page, provider, address, password, port="submissions", security="ssl", login=address.partition("@")[0])

    page.click("#test-account")
    _finished(page).locator("button.fix", has_text="Sign in with the whole address").click()

    expect(page.locator("#test-result .result-line .badge-ok")).to_be_visible(timeout=30000)
    assert page.locator("#smtp_username").input_value() == address


@pytest.mark.parametrize("language,width", [("en", 1280), ("ru", 1280), ("en", 390)])
def test_the_test_letter_round_trip_reports_its_delivery_time(
        provider_reachable, live_server, signed_in_page, make_employee, screenshot, language, width):
    provider = provider_reachable
    page, address, password = _new_mailbox_form(provider, live_server, signed_in_page, make_employee, language, width)
    _fill(page, provider, address, password, port="submissions", security="ssl")
    page.select_option("#incoming_protocol", "imap")
    page.fill("#incoming_host", provider.incoming_host)
    page.fill("#incoming_port", str(provider.ports["imaps"]))
    page.select_option("#incoming_security", "ssl")
    page.fill("#incoming_username", address)
    page.fill("#incoming_password", password)
    page.check("#send_test_letter")

    page.click("#test-account")
    result = _finished(page)

    expect(result.locator(".result-line .badge-ok")).to_be_visible()
    arrived = result.locator("p.round-trip")
    expect(arrived).to_contain_text("Тестовое письмо пришло через" if language == "ru"
                                    else "The test letter arrived")
    expect(result.locator(".stage", has_text="IMAP: тестовое письмо пришло" if language == "ru"
                          else "IMAP: test letter arrived")).to_be_visible()
    arrived.scroll_into_view_if_needed()
    screenshot(page, f"round-trip-{language}-{width}", full_page=False)
    assert len(provider.letters(address)) == 1


def test_without_an_incoming_server_the_page_says_what_the_round_trip_would_prove(
        provider_reachable, live_server, signed_in_page, make_employee):
    provider = provider_reachable
    page, address, password = _new_mailbox_form(provider, live_server, signed_in_page, make_employee)
    _fill(page, provider, address, password, port="submissions", security="ssl")
    page.check("#send_test_letter")

    page.click("#test-account")

    expect(_finished(page).locator("p.round-trip")).to_contain_text(
        "With an incoming server filled in, the test would also wait for it to arrive")
