"""An accessibility audit of every page with axe-core in Chromium: the WCAG 2.1 A and AA rules, in English and
Russian, on a laptop and a phone, including the states that matter (field errors, a passed and a failed account
test, a letter, the 404 page). Any "serious" or "critical" violation fails, named so that it says what to fix."""
from pathlib import Path

import pytest
from playwright.sync_api import expect

from portal import webhooks
from portal.api.tokens import create_token
from portal.models import Letter, MailboxHealth, Reply, utcnow
from tests.fixtures.browser import _in_ci, open_mailbox_servers
from tests.test_browser_layout import LAPTOP, PHONE, _pages, portal_with_data  # noqa: F401 (a fixture)
from tests.test_browser_notifications import fill_centre

AXE = Path(__file__).resolve().parent / "browser_tools" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
FAILING_IMPACTS = {"serious", "critical"}

# axe is injected as a <script> of its own, which the portal's Content-Security-Policy rightly refuses (it allows
# only the portal's own scripts); bypass_csp lets this audit's pages load it. Everything else about the page,
# its own scripts included, runs as it does for a person.
pytestmark = [pytest.mark.browser, pytest.mark.browser_context_args(bypass_csp=True)]


@pytest.fixture
def audit():
    """audit(page, where): the serious and critical WCAG 2.1 A/AA violations axe finds on the page as it is now,
    each a line naming the page, the rule, its help text and the offending elements' selectors."""
    if not AXE.exists():
        reason = f"the accessibility audit needs axe-core at {AXE} (`make browser-test-tools` installs it with npm)"
        if _in_ci():
            pytest.fail(reason + " and CI=true, so it must be there", pytrace=False)
        pytest.skip(reason)

    def audit(page, where):
        page.wait_for_load_state("load")
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.add_script_tag(path=str(AXE))
        result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA)
        return [f"{where}: {violation['id']} ({violation['impact']}): {violation['help']} -> "
                + ", ".join(" ".join(node["target"]) if isinstance(node["target"], list) else str(node["target"])
                            for node in violation["nodes"])
                for violation in result["violations"] if violation["impact"] in FAILING_IMPACTS]

    return audit


def _assert_none(violations):
    assert not violations, "accessibility violations:\n" + "\n".join(violations)


@pytest.fixture
def everything(admin, portal_with_data, make_mailbox):  # noqa: F811 (the layout test's fixture, imported)
    """The layout test's data, plus what the later pages show: the admin's letters (one sent, one failed) with a
    reply, notifications, a webhook, a mailbox whose health check failed."""
    own = make_mailbox(admin, address="admin.own@example.com")
    sent = Letter.create(author=admin, mailbox=own, from_address=own.address, to_header="Friend <friend@example.com>",
                         subject="Prices for 2026", body_text="Hello,\n\nour prices are below.\n",
                         message_id="<a11y-sent@example.com>", raw_message="x", state="sent", sent_at=utcnow())
    Letter.create(author=admin, mailbox=own, from_address=own.address, to_header="nobody@example.com",
                  subject="Offer for ACME", message_id="<a11y-failed@example.com>", raw_message="x", state="failed",
                  problem_code="recipient_unknown", problem_stage="smtp.rcpt", finished_at=utcnow())
    reply = Reply.create(letter=sent, mailbox=own, message_id="<a11y-reply@example.com>",
                         sender="Anna Client <anna@client.example>", subject="Re: Prices for 2026",
                         body_text="Thank you, the prices are fine.", fetched_at=utcnow())
    fill_centre(admin)
    token, _ = create_token(admin, "CRM")
    webhooks.create_endpoint(token, "http://127.0.0.1:8080/hooks/portal", webhooks.EVENTS, actor=admin,
                             settings=webhooks.WebhookSettings(allowed_hosts=("127.0.0.1:*",)))
    MailboxHealth.create(mailbox=portal_with_data["company"], last_check_at=utcnow(), last_check_ok=False,
                         failed_checks=1, problem_code="auth_failed", problem_stage="smtp.login",
                         server_reply="535 5.7.8 bad")
    worker = portal_with_data["worker"]
    return _pages(portal_with_data) + [
        "/letters/new", "/outbox", f"/letters/{sent.id}", f"/replies/{reply.id}", "/notifications",
        "/admin/mail/health", f"/mailboxes/{own.id}/health", "/profile/webhooks",
        f"/admin/employees/{worker.id}/webhooks", f"/admin/employees/{worker.id}/api-tokens",
        f"/admin/employees/{worker.id}/deactivate", "/admin/sign-in", "/admin/sign-in-providers",
        "/admin/directory", "/contacts/new", "/contacts/import",
    ]


@pytest.mark.parametrize("language", ["en", "ru"])
def test_every_page_passes_the_audit_on_a_laptop_and_a_phone(live_server, page, sign_in, admin, everything, audit,
                                                             language):
    admin.language = language
    admin.save()
    sign_in(page, admin)
    violations = []
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        for path in everything:
            page.goto(live_server + path)
            violations += audit(page, f"{path} at {size['width']} px")
    _assert_none(violations)


@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_sign_in_page_passes_the_audit(live_server, page, audit, language):
    page.set_extra_http_headers({"Accept-Language": language})
    violations = []
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        page.goto(live_server + "/sign-in")
        violations += audit(page, f"/sign-in at {size['width']} px")
    _assert_none(violations)


@pytest.mark.console_errors("404 (NOT FOUND)")
@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_404_page_passes_the_audit(live_server, page, sign_in, make_employee, audit, language):
    sign_in(page, make_employee(language=language))
    violations = []
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        assert page.goto(live_server + "/no-such-page").status == 404
        violations += audit(page, f"the 404 page at {size['width']} px")
    _assert_none(violations)


@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_mailbox_form_with_field_errors_passes_the_audit(live_server, page, sign_in, make_employee, audit,
                                                             language):
    sign_in(page, make_employee(language=language))
    violations = []
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        page.goto(live_server + "/mailboxes/new")
        page.fill("#address", "not an address")
        open_mailbox_servers(page)
        page.fill("#smtp_port", "99999")
        page.click("#save-mailbox")
        expect(page.locator("#smtp_port")).to_have_attribute("aria-invalid", "true")
        violations += audit(page, f"mailbox form with errors at {size['width']} px")
    _assert_none(violations)


@pytest.mark.usefixtures("mail_reaches_localhost")
@pytest.mark.parametrize("language", ["en", "ru"])
def test_a_passed_and_a_failed_account_test_pass_the_audit(live_server, page, sign_in, make_employee, smtp_server,
                                                           audit, language):
    sign_in(page, make_employee(language=language))
    violations = []
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        for outcome, password in (("passed", smtp_server.password), ("failed", "wrong password")):
            page.goto(live_server + "/mailboxes/new")
            page.fill("#address", smtp_server.username)
            page.fill("#smtp_password", password)
            open_mailbox_servers(page)
            page.fill("#smtp_host", "localhost")
            page.fill("#smtp_port", str(smtp_server.port))
            page.select_option("#smtp_security", smtp_server.security)
            page.fill("#smtp_username", smtp_server.username)
            page.click("#test-account")
            badge = ".badge-ok" if outcome == "passed" else ".badge-fail"
            expect(page.locator(f"#test-summary {badge}")).to_be_visible(timeout=20000)
            violations += audit(page, f"account test {outcome} at {size['width']} px")
    _assert_none(violations)


def test_the_audit_reports_a_field_without_a_label(live_server, page, audit):
    """The audit itself can fail: a field with no label on a real page is reported by its selector."""
    page.goto(live_server + "/sign-in")
    page.evaluate("document.querySelector('label[for=email]').remove()")
    violations = audit(page, "/sign-in without the e-mail label")
    assert any("label" in line and "#email" in line for line in violations), violations


def test_a_table_that_scrolls_sideways_on_a_phone_is_scrolled_by_keyboard(live_server, page, sign_in, admin,
                                                                          portal_with_data, screenshot):  # noqa: F811
    sign_in(page, admin)
    page.set_viewport_size(PHONE)
    page.goto(live_server + "/admin/mail/audit")
    wrap = page.locator(".table-wrap")
    # Chromium lets a scroller with nothing focusable inside take focus of itself; Safari does not, so the portal
    # gives it a place in the Tab order.
    expect(wrap).to_have_attribute("tabindex", "0")
    wrap.focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")  # reached by keyboard, so the focus ring shows
    expect(wrap).to_be_focused()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("End")
    assert wrap.evaluate("w => w.scrollLeft") > 0
    screenshot(page, "audit-table-focused-390", full_page=False)
    page.set_viewport_size(LAPTOP)  # it fits now: no stop in the Tab order that does nothing
    expect(wrap).not_to_have_attribute("tabindex", "0")
