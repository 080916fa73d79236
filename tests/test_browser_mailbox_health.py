"""The Health page, the health badges and a mailbox's health panel in Chromium, in English and Russian, on a desktop
and a phone."""
import pytest
from playwright.sync_api import expect

from portal.models import Letter, MailboxInbox, utcnow
from portal.models.health import MailboxHealth
from tests.fixtures.browser import assert_no_sideways_scroll

WIDTHS = (1366, 390)


@pytest.fixture
def dns_for_app(config, dns_server):
    config.update(PORTAL_MAIL_DNS_SERVERS=f"127.0.0.1:{dns_server.port}")
    dns_server.add_txt("example.ru", "v=spf1 include:_spf.google.com ~all")
    dns_server.add_txt("_dmarc.example.ru", "v=DMARC1; p=quarantine")
    dns_server.add_mx("example.ru", "mx.yandex.net")
    return dns_server


@pytest.fixture
def health_boxes(make_mailbox, make_employee):
    """An admin per language, and a mailbox in each state (one receiving replies), two letters waiting."""
    owner = make_employee(name="Olga Other", email="olga@example.com")
    working = make_mailbox(owner, address="olga@example.ru", smtp_host="smtp.yandex.ru", receive_replies=True,
                           incoming_protocol="imap", incoming_host="imap.yandex.ru", incoming_port=993)
    MailboxInbox.create(mailbox=working, last_fetch_at=utcnow(), last_success_at=utcnow())
    warning = make_mailbox(scope="company", address="sales@example.com")
    MailboxHealth.create(mailbox=warning, last_check_at=utcnow(), last_check_ok=False, failed_checks=1,
                         problem_code="auth_failed", problem_stage="smtp.login", server_reply="535 5.7.8 bad")
    paused = make_mailbox(owner, address="olga.paused@example.com", active=False, paused_problem="auth_failed",
                          paused_reply="535 5.7.8 Authentication failed")
    make_mailbox(owner, address="olga.holiday@example.com", active=False)
    for n in range(2):
        Letter.create(author=owner, mailbox=paused, from_address=paused.address, message_id=f"<w{n}@example.com>",
                      raw_message="x", state="deferred", problem_code="mailbox_paused")
    admins = {lang: make_employee(name=f"Admin {lang}", email=f"admin-{lang}@example.com", role="admin",
                                  language=lang) for lang in ("en", "ru")}
    return admins, owner, working


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_the_health_page_and_the_badges(dns_for_app, live_server, browser, sign_in, health_boxes, screenshot, lang):
    admins, owner, working = health_boxes
    paused_word = {"en": "Paused by the portal", "ru": "Приостановлен порталом"}[lang]
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = sign_in(context.new_page(), admins[lang])

        page.goto(live_server + "/admin/mail/health")
        assert paused_word in page.inner_text("#health-list")
        assert_no_sideways_scroll(page)
        screenshot(page, f"health-{lang}-{width}")

        page.select_option("#state", "paused_by_portal")
        expect(page.locator("#health-list")).not_to_contain_text("sales@example.com")
        assert "olga.paused@example.com" in page.inner_text("#health-list")

        page.goto(live_server + f"/admin/mail/employees/{owner.id}")
        assert paused_word in page.inner_text("main")
        assert_no_sideways_scroll(page)
        screenshot(page, f"badges-{lang}-{width}")

        page.goto(live_server + f"/mailboxes/{working.id}/edit")
        page.wait_for_selector("#mailbox-health button:has-text('DNS')")
        page.click("#mailbox-health button:has-text('DNS')")
        page.wait_for_selector("#mailbox-health .checklist")
        assert "smtp.yandex.ru" in page.inner_text("#mailbox-health")
        page.click("#mailbox-health form:first-of-type button")
        page.wait_for_selector("#mailbox-health [role=status]")
        page.locator("#mailbox-health").scroll_into_view_if_needed()
        assert_no_sideways_scroll(page)
        screenshot(page, f"panel-{lang}-{width}")
        context.close()
