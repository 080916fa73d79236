"""Find settings in Chromium: typing an address and pressing the button fills the servers and says from where."""
from __future__ import annotations

import pytest

PUBLIC_IP = "93.184.216.34"  # only ever resolved by the test DNS, never connected to

pytestmark = pytest.mark.browser


@pytest.fixture
def dns_for_app(config, dns_server):
    """Autoconfiguration asks the test DNS server only, and only when the button is pressed; set before the app."""
    config.update(PORTAL_MAIL_DNS_SERVERS=f"127.0.0.1:{dns_server.port}", PORTAL_MAIL_TIMEOUT=3.0,
                  PORTAL_MAIL_PROVIDER_MX_LOOKUP=False)
    return dns_server


@pytest.mark.parametrize("locale, width, found_text, nothing_text", [
    ("en-GB", 1280, "from the DNS service records", "No settings were found for nowhere.example.com"),
    ("ru-RU", 390, "из служебных записей DNS (SRV)", "Для nowhere.example.com настройки нигде не найдены"),
], ids=["english-desktop", "russian-phone"])
def test_find_settings_fills_the_servers(dns_for_app, live_server, browser, sign_in, employee, screenshot,
                                         locale, width, found_text, nothing_text):
    """SRV records fill outgoing and incoming; then an unknown domain leaves them and says so."""
    dns_for_app.add_srv("_submissions._tcp.firma.example.com", (0, 0, 465, "mail.firma.example.com"))
    dns_for_app.add_srv("_imaps._tcp.firma.example.com", (0, 0, 993, "mail.firma.example.com"))
    dns_for_app.add_a("mail.firma.example.com", PUBLIC_IP)
    context = browser.new_context(locale=locale, viewport={"width": width, "height": 900})
    try:
        page = sign_in(context.new_page(), employee)
        page.goto(live_server + "/mailboxes/new")
        page.fill("#address", "olga@firma.example.com")
        page.locator("#discovery-result").scroll_into_view_if_needed()
        page.click("button[hx-post$='/mailboxes/discover']")
        page.wait_for_selector("#discovery-result .notice")
        assert found_text in page.inner_text("#discovery-result")
        assert page.input_value("#smtp_host") == "mail.firma.example.com"
        assert page.input_value("#smtp_port") == "465"
        assert page.input_value("#smtp_security") == "ssl"
        assert page.input_value("#incoming_protocol") == "imap"
        assert page.input_value("#incoming_host") == "mail.firma.example.com"
        assert page.input_value("#incoming_port") == "993"
        page.click("#discovery-result summary")
        screenshot(page, f"found-{locale}-{width}")

        page.fill("#address", "olga@nowhere.example.com")
        page.click("button[hx-post$='/mailboxes/discover']")
        page.locator("#discovery-result", has_text="nowhere.example.com").wait_for()
        assert nothing_text in page.inner_text("#discovery-result")
        assert page.input_value("#smtp_host") == "mail.firma.example.com"  # left as it was
        page.click("#discovery-result summary")
        screenshot(page, f"nothing-{locale}-{width}")
    finally:
        context.close()
