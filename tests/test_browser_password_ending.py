"""Password sign-in is ending, in Chromium: the badge on My addresses, the form's notice (the Microsoft app
registered and not) with its button taking the form to Microsoft, and the admin's home line; both languages,
desktop and phone width. The day is pinned to 7 December 2026."""
import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import assert_no_sideways_scroll
from tests.test_browser_accessibility import _assert_none, audit  # noqa: F401 (a fixture)
from tests.test_browser_layout import LAPTOP, PHONE
from tests.test_password_ending import microsoft_app
from tests.test_password_ending_views import at_m365, pin_today  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

WORDS = {
    "en": {"badge": "Password sign-in ends 31 Dec 2026",
           "notice": "Microsoft 365 (Exchange Online) stops accepting this address's password on 31 December 2026.",
           "ask": "ask an administrator", "button": "Sign in with Microsoft",
           "home": "2 mailboxes still send with a password Microsoft 365 (Exchange Online) stops accepting"},
    "ru": {"badge": "Вход по паролю отключается 31 дек. 2026",
           "notice": "Microsoft 365 (Exchange Online) перестаёт принимать пароль этого адреса 31 декабря 2026.",
           "ask": "попросите администратора", "button": "Войти через Microsoft",
           "home": "2 ящика всё ещё подключены по паролю, а Microsoft 365 (Exchange Online) перестаёт принимать"},
}


@pytest.mark.parametrize("language,width", [("en", 1280), ("ru", 1280), ("en", 390), ("ru", 390)])
def test_the_warning_on_my_addresses_the_form_and_the_admin_home(live_server, sign_in, browser, make_employee,
                                                                 at_m365, screenshot, language, width):  # noqa: F811
    words = WORDS[language]
    erik = make_employee(language=language, email=f"erik.{language}.{width}@example.com")
    mailbox = at_m365(erik, address="erik@acme.example")
    at_m365(scope="company", address="info@acme.example")
    admin = make_employee(language=language, role="admin", email=f"admin.{language}.{width}@example.com")

    context = browser.new_context(viewport={"width": width, "height": 900})
    page = sign_in(context.new_page(), erik)
    page.goto(live_server + "/my/addresses")
    badge = page.locator("a.password-ending")
    expect(badge).to_have_count(1)
    expect(badge).to_contain_text(words["badge"])
    assert_no_sideways_scroll(page)
    screenshot(page, f"my-addresses-{language}-{width}")

    badge.click()
    page.wait_for_url(f"**/mailboxes/{mailbox.id}/edit")
    notice = page.locator("#password-ending")
    expect(notice).to_contain_text(words["notice"])
    expect(notice).to_contain_text(words["ask"])
    expect(notice.locator("button")).to_have_count(0)
    assert_no_sideways_scroll(page)
    screenshot(page, f"form-no-app-{language}-{width}", full_page=False)

    microsoft_app()
    page.reload()
    button = notice.get_by_role("button", name=words["button"])
    expect(button).to_be_visible()
    assert_no_sideways_scroll(page)
    screenshot(page, f"form-with-app-{language}-{width}", full_page=False)
    if (language, width) == ("en", 1280):
        # The button takes the form to Microsoft's consent page for this address (answered here, never sent out).
        page.route("https://login.microsoftonline.com/**",
                   lambda route: route.fulfill(status=200, content_type="text/html", body="<title>consent</title>"))
        button.click()
        page.wait_for_url("https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize?**")
        assert "login_hint=erik%40acme.example" in page.url
    context.close()

    context = browser.new_context(viewport={"width": width, "height": 900})
    page = sign_in(context.new_page(), admin)
    line = page.locator(".password-ending-line")
    expect(line).to_contain_text(words["home"])
    expect(line.get_by_role("link")).to_have_count(2)
    assert_no_sideways_scroll(page)
    screenshot(page, f"admin-home-{language}-{width}", full_page=False)
    context.close()


@pytest.mark.browser_context_args(bypass_csp=True)  # axe is injected as a script of its own (see the audit)
@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_warnings_pass_the_accessibility_audit(live_server, page, sign_in, make_employee,
                                                   at_m365, audit, language):  # noqa: F811
    admin = make_employee(language=language, role="admin", email=f"admin.{language}@example.com")
    own = at_m365(admin, address="admin@acme.example")
    at_m365(scope="company", address="info@acme.example")
    sign_in(page, admin)
    violations = []
    for registered in (False, True):
        if registered:
            microsoft_app()
        for size in (LAPTOP, PHONE):
            page.set_viewport_size(size)
            for path in ("/", "/my/addresses", "/admin/mail/outgoing", f"/mailboxes/{own.id}/edit"):
                page.goto(live_server + path)
                violations += audit(page, f"{path} at {size['width']} px, app registered: {registered}")
    _assert_none(violations)


@pytest.mark.parametrize("language,width", [("en", 1280), ("ru", 390)])
def test_the_notification_says_when_and_opens_the_form(live_server, sign_in, browser, make_employee,
                                                       at_m365, screenshot, language, width):  # noqa: F811
    from portal import password_ending

    erik = make_employee(language=language, email=f"erik.{language}@example.com")
    mailbox = at_m365(erik, address="erik@acme.example")
    password_ending.warn_owners(password_ending.today())  # as the worker's hourly task does
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = sign_in(context.new_page(), erik)
    page.goto(live_server + "/notifications")
    entry = page.locator(".notification-list li").first
    expect(entry).to_contain_text({"en": "stops accepting the password of erik@acme.example on 31 December 2026",
                                   "ru": "перестанет принимать пароль адреса erik@acme.example 31 декабря 2026"
                                   }[language])
    assert_no_sideways_scroll(page)
    screenshot(page, f"notification-{language}-{width}", full_page=False)
    entry.locator(".notification-open button").click()
    page.wait_for_url(f"**/mailboxes/{mailbox.id}/edit**")
    context.close()
