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
# WCAG 2.2 dropped 4.1.1 (Parsing), so axe no longer tags its duplicate-id rules as WCAG; here a repeated id still
# breaks what points at it (label for=, aria-describedby, htmx targets), so they run and fail whatever their impact.
DUPLICATE_IDS = ["duplicate-id", "duplicate-id-active", "duplicate-id-aria"]
# The shadows that show a table scrolls sideways are background gradients on .table-wrap. Over a gradient axe
# cannot tell the colour behind a text, so it left the contrast of every table cell undecided (358 cells), not
# passed. The cells' text sits on the page's own colour (the gradients only fade the edges), so the audit takes
# the shadows away and lets axe judge every table's text, badges and muted lines.
WITHOUT_SCROLL_SHADOWS = ".table-wrap { background: none !important; }"
# A menu that fades in, measured halfway, has text nearly the colour of its background (the account menu read as
# 1.1:1): the audit waits for the page's finite animations and transitions to end, as a person's eye does.
FINISHED_ANIMATIONS = """() => Promise.all(document.getAnimations()
    .filter(animation => Number.isFinite(animation.effect.getComputedTiming().endTime))
    .map(animation => animation.finished.catch(() => null)))"""

# axe is injected as a <script> of its own, which the portal's Content-Security-Policy rightly refuses (it allows
# only the portal's own scripts); bypass_csp lets this audit's pages load it. Everything else about the page,
# its own scripts included, runs as it does for a person.
pytestmark = [pytest.mark.browser, pytest.mark.browser_context_args(bypass_csp=True)]


@pytest.fixture
def audit():
    """audit(page, where): the serious and critical WCAG 2.1 A/AA violations and the repeated ids axe finds on the
    page as it is now, each a line naming the page, the rule, its help text and the offending elements."""
    if not AXE.exists():
        reason = f"the accessibility audit needs axe-core at {AXE} (`make browser-test-tools` installs it with npm)"
        if _in_ci():
            pytest.fail(reason + " and CI=true, so it must be there", pytrace=False)
        pytest.skip(reason)

    def audit(page, where):
        page.wait_for_load_state("load")
        page.evaluate(FINISHED_ANIMATIONS)
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.add_script_tag(path=str(AXE))
            page.add_style_tag(content=WITHOUT_SCROLL_SHADOWS)
        wcag = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA)
        ids = page.evaluate("rules => axe.run(document, {runOnly: {type: 'rule', values: rules}})", DUPLICATE_IDS)
        failing = [violation for violation in wcag["violations"] if violation["impact"] in FAILING_IMPACTS]
        return [f"{where}: {violation['id']} ({violation['impact']}): {violation['help']} -> "
                + ", ".join(_element(node) for node in violation["nodes"])
                for violation in failing + ids["violations"]]

    return audit


def _element(node):
    """An offending element's selector, with axe's finding where it measured one (a contrast ratio, colours)."""
    selector = " ".join(map(str, node["target"]))
    found = [check["message"] for check in node.get("any", []) if check.get("data")]
    return f"{selector} [{found[0]}]" if found else selector


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
        page.fill("#email", "nobody@example.com")
        page.fill("#password", "wrong")
        with page.expect_navigation():
            page.click("#sign-in-form button[type=submit]")
        violations += audit(page, f"/sign-in refused at {size['width']} px")
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


def _refused_mailbox(page):
    page.fill("#address", "not an address")
    open_mailbox_servers(page)
    page.fill("#smtp_port", "99999")
    page.click("#save-mailbox")


# Each form sent wrong: its address, what it takes, and a field that must come back marked invalid.
FORMS_SENT_WRONG = [
    ("/mailboxes/new", _refused_mailbox, "#smtp_port"),
    ("/letters/new", lambda page: page.click("#send-letter"), "#to"),
    ("/contacts/new", lambda page: page.click("#contact-form button[type=submit]"), "#email"),
    ("/admin/employees/new", lambda page: page.click("#employee-form button[type=submit]"), "#email"),
]


@pytest.mark.parametrize("language", ["en", "ru"])
def test_forms_with_field_errors_pass_the_audit(live_server, page, sign_in, make_employee, make_mailbox, audit,
                                                language):
    person = make_employee(role="admin", language=language)
    make_mailbox(person, address="olga.own@example.com")
    sign_in(page, person)
    violations = []
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        for path, send_wrong, marked in FORMS_SENT_WRONG:
            page.goto(live_server + path)
            send_wrong(page)
            expect(page.locator(marked)).to_have_attribute("aria-invalid", "true")
            violations += audit(page, f"{path} with field errors at {size['width']} px")
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
    # Chromium scrolls smoothly for keys: the table moves over a few frames, not at once.
    page.wait_for_function("w => w.scrollLeft > 0", arg=wrap.element_handle())
    screenshot(page, "audit-table-focused-390", full_page=False)
    page.set_viewport_size(LAPTOP)  # it fits now: no stop in the Tab order that does nothing
    expect(wrap).not_to_have_attribute("tabindex", "0")


@pytest.mark.parametrize("language", ["en", "ru"])
def test_open_menus_and_dialogs_pass_the_audit(live_server, page, sign_in, admin, audit, language,
                                               portal_with_data):  # noqa: F811
    """axe skips what is hidden: the account menu, the phone's menu and the Senders explanation, opened; and the
    tinted notices that come and go: a saved profile's message and the admins' "no worker is running" banner."""
    admin.language = language
    admin.save()
    company = portal_with_data["company"]
    Letter.create(author=admin, mailbox=company, from_address=company.address, message_id="<a11y-waits@example.com>",
                  raw_message="x", state="queued")  # waiting, with no worker: the banner shows on every page
    sign_in(page, admin)
    violations = []
    page.set_viewport_size(LAPTOP)
    page.goto(live_server + "/profile")
    page.click("#profile-form button[type=submit]")
    expect(page.locator(".flash-success")).to_be_visible()
    expect(page.locator("#worker-banner")).to_be_visible()
    violations += audit(page, "a saved profile, with the worker banner, at 1366 px")
    page.locator(".account-menu summary").click()
    expect(page.locator(".account-menu")).to_have_attribute("open", "")
    violations += audit(page, "the account menu open at 1366 px")
    page.goto(live_server + "/admin/mail/senders")
    page.locator(".cell-link").first.click()
    expect(page.locator("#sender-dialog")).to_have_attribute("open", "")
    violations += audit(page, "the Senders explanation open at 1366 px")
    page.set_viewport_size(PHONE)
    page.goto(live_server + "/")
    page.locator("[data-menu-toggle]").click()
    expect(page.locator(".nav-links")).to_be_visible()
    violations += audit(page, "the phone's menu open at 390 px")
    _assert_none(violations)


@pytest.mark.parametrize("language", ["en", "ru"])
def test_pages_that_had_no_main_heading_name_themselves_in_one(live_server, page, sign_in, make_employee,
                                                               screenshot, language):
    """My API tokens, My webhooks and the deactivate question had only h2s or none: a screen reader's list of
    headings started nowhere. Each now has one h1: whose tokens and webhooks, as an admin's view of them has, and
    the question's own name, as its title says."""
    person, other = make_employee(role="admin", language=language), make_employee(name="Olga Other")
    sign_in(page, person)
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for name, path, main in (("api-tokens", "/profile/api-tokens", person.name),
                                 ("webhooks", "/profile/webhooks", person.name),
                                 ("deactivate", f"/admin/employees/{other.id}/deactivate", None)):
            page.goto(live_server + path)
            heading = page.locator("h1")
            expect(heading).to_have_count(1)
            expect(heading).to_have_text(main or page.title().split(" · ")[0])
            screenshot(page, f"{name}-{language}-{width}")
