"""Provider sign-in in Chromium, through oidc-provider's real login and consent pages: connect a mailbox, test and
save it; a letter leaves with the token; the worker refreshes the expired token once; revoked at the provider, the
mailbox needs reconnecting, its letter waits, and Reconnect releases it. Both languages, phone width, screenshots."""
from __future__ import annotations

import secrets
import time

import pytest
from playwright.sync_api import expect

from portal.models import Letter, Mailbox
from portal.models.oauth import MailboxGrant
from portal.oauth.apps import save_app
from tests.fixtures.browser import assert_no_sideways_scroll, open_mailbox_servers
from tests.servers.oauth import CLIENT_ID, CLIENT_SECRET

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mail_reaches_localhost")]

TEXT = {
    "en": {"sign_in": "Sign in with your company's server", "signed_in": "Signed in", "save": "Save",
           "needs": "Needs reconnecting", "reconnect": "Reconnect", "connected": "is connected again"},
    "ru": {"sign_in": "Войти через сервер компании", "signed_in": "Вход выполнен", "save": "Сохранить",
           "needs": "Нужно переподключить", "reconnect": "Переподключить", "connected": "снова подключён"},
}


def consent_at_the_provider(page, login):
    """oidc-provider's own pages: the login form (any password; skipped while its session lasts), then consent."""
    page.wait_for_selector("input[name=login], button[type=submit]:has-text('Continue')")
    if page.locator("input[name=login]").count():
        page.fill("input[name=login]", login)
        page.fill("input[name=password]", "any")
        page.click("button[type=submit]")
    page.wait_for_selector("button[type=submit]:has-text('Continue')")
    page.click("button[type=submit]:has-text('Continue')")


# oidc-provider's development login pages load a Google font and have no favicon: not the portal's pages.
@pytest.mark.console_errors("fonts.googleapis.com", "favicon.ico")
@pytest.mark.parametrize("language,width", [("en", 1280), ("ru", 390)])
def test_connect_send_refresh_revoke_and_reconnect(live_server, signed_in_page, make_employee, make_oauth_provider,
                                                   make_oauth_smtp_server, run_queue, write_letter, screenshot,
                                                   language, width):
    words = TEXT[language]
    provider = make_oauth_provider(redirect_uris=(live_server + "/oauth/callback",), access_token_ttl=6)
    server = make_oauth_smtp_server(provider)
    save_app("company", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, sasl="XOAUTH2",
             discovery_url=f"{provider.issuer}/.well-known/openid-configuration",
             scopes="openid email offline_access mail")
    admin = make_employee(language=language, role="admin")
    page = signed_in_page(admin)
    page.set_viewport_size({"width": width, "height": 900})

    page.goto(live_server + "/admin/sign-in-providers")
    expect(page.locator("#redirect-uri")).to_have_text(live_server + "/oauth/callback")
    assert CLIENT_SECRET not in page.content()
    assert_no_sideways_scroll(page)
    screenshot(page, f"providers-{language}-{width}")

    address = f"anna{secrets.token_hex(3)}@mail.example"
    page.goto(live_server + "/mailboxes/new")
    page.fill("#address", address)
    open_mailbox_servers(page)
    page.fill("#smtp_host", "localhost")
    page.fill("#smtp_port", str(server.port))
    page.select_option("#smtp_security", "starttls")
    expect(page.locator("#smtp_password")).to_be_visible()  # a company server: a password is the default
    page.check("input[name=auth][value=oauth]")
    expect(page.locator("#smtp_password")).to_be_hidden()  # the sign-in replaces the password
    screenshot(page, f"form-before-sign-in-{language}-{width}", full_page=False)
    page.click(f"button:has-text(\"{words['sign_in']}\")")
    consent_at_the_provider(page, address)

    page.wait_for_url(live_server + "/mailboxes/new?**")
    expect(page.locator("#oauth-identity")).to_contain_text(address)
    expect(page.locator("#address")).to_have_value(address)  # the form came back as it was
    page.wait_for_selector("#test-result .result-line .badge-ok", timeout=20000)  # the test ran by itself
    assert_no_sideways_scroll(page)
    screenshot(page, f"form-signed-in-tested-{language}-{width}")
    page.click(f"button:has-text('{words['save']}')")
    page.wait_for_url(live_server + "/my/addresses")
    mailbox = Mailbox.get(Mailbox.address == address)
    grant = MailboxGrant.get(MailboxGrant.mailbox == mailbox.id)
    assert mailbox.tested and mailbox.smtp_password == ""
    assert grant.secret("access_token") not in page.content()

    first = write_letter(mailbox, author=admin)
    assert run_queue().outcomes["sent"] == 1
    assert server.logins[-1] == address and [m.mail_from for m in server.messages] == [address]
    assert Letter.get_by_id(first.id).state == "sent"

    before = MailboxGrant.get_by_id(grant.id).refreshes  # 0, or 1 on a machine slow enough to near the expiry
    time.sleep(5.5)  # the token is about to expire: the worker refreshes it once, then sends
    write_letter(mailbox, author=admin)
    assert run_queue().outcomes["sent"] == 1
    assert MailboxGrant.get_by_id(grant.id).refreshes == before + 1

    provider.revoke(MailboxGrant.get_by_id(grant.id).secret("access_token"))
    waiting = write_letter(mailbox, author=admin)
    run_queue()
    assert Letter.get_by_id(waiting.id).state == "deferred"
    page.goto(live_server + "/outbox")
    expect(page.locator("#oauth-waiting-heading")).to_have_text(words["needs"])
    assert_no_sideways_scroll(page)
    screenshot(page, f"outbox-needs-reconnecting-{language}-{width}")
    page.goto(live_server + "/my/addresses")
    expect(page.locator(".oauth-waiting")).to_contain_text(address)
    screenshot(page, f"mine-needs-reconnecting-{language}-{width}")
    page.locator(".oauth-waiting").get_by_role("button", name=words["reconnect"]).click()
    consent_at_the_provider(page, address)
    expect(page.locator("body")).to_contain_text(words["connected"])
    expect(page.locator(".oauth-waiting")).to_have_count(0)
    screenshot(page, f"mine-reconnected-{language}-{width}")
    assert run_queue().outcomes["sent"] == 1
    assert Letter.get_by_id(waiting.id).state == "sent"
