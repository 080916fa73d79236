"""Single sign-on in Chromium: through oidc-provider's real login page and back, provisioning an admin from the
group claim, RP-initiated logout at the provider; the sign-in page and the admin's page in English, Russian
and at 390 px."""

import pytest

from portal.models import Employee
from portal.secret_box import active_box
from portal.sso import store_settings
from tests.fixtures.browser import assert_no_sideways_scroll
from tests.servers.oauth import CLIENT_SECRET
from tests.test_sso import address

VIEWS = [("en", 1280), ("ru", 1280), ("en", 390)]
# oidc-provider's own development login and logout pages ask for a Google font and a favicon it does not have.
PROVIDER_PAGE_ERRORS = pytest.mark.console_errors("https://fonts.googleapis.com/css", "/favicon.ico: Failed to load")


@pytest.fixture
def provider(make_oauth_provider, live_server, monkeypatch):
    """oidc-provider sending the browser back to the live portal, and allowing its sign-in page after logout."""
    return configured_provider(make_oauth_provider, live_server, monkeypatch)


@pytest.fixture
def many_groups_provider(make_oauth_provider, live_server, monkeypatch):
    """The same, with the groups in the ID token as Azure AD sends them: a "manygroups…" login is in 200."""
    return configured_provider(make_oauth_provider, live_server, monkeypatch, claims_in_id_token=True)


def configured_provider(make_oauth_provider, live_server, monkeypatch, **options):
    monkeypatch.setenv("POST_LOGOUT_REDIRECT_URIS", live_server + "/sign-in")
    provider = make_oauth_provider(redirect_uris=(live_server + "/sso/callback",), **options)
    store_settings(active_box(), {
        "company_name": "Example Corp", "discovery_url": provider.issuer + "/.well-known/openid-configuration",
        "client_id": "portal", "client_secret": CLIENT_SECRET, "scopes": "openid email profile groups",
        "passwords_allowed": True, "provision": True, "department_claim": "department", "groups_claim": "groups",
        "admin_group": "portal-admins"}, "browser-test")
    return provider


def sign_in_at_provider(page, login):
    """oidc-provider's own login page, then its consent page."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Continue")  # the consent page
    page.click("button[type=submit]")


@pytest.mark.browser
@PROVIDER_PAGE_ERRORS
@pytest.mark.parametrize("language, width", VIEWS)
def test_sign_in_through_the_provider_and_out_of_it(live_server, page, provider, screenshot, language, width):
    """A person new to the portal in the provider's admin group: created as an admin, signed in, then signed out
    of the portal and, from the offer, of the provider too."""
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server + "/sign-in")
    switch_language(page, language)
    button = page.locator("#sso-sign-in")
    assert button.inner_text() == ("Sign in with Example Corp" if language == "en" else "Войти через Example Corp")
    assert page.locator("#sso-sign-in").bounding_box()["y"] < page.locator("#sign-in-form").bounding_box()["y"]
    assert_no_sideways_scroll(page)
    screenshot(page, f"sign-in-{language}-{width}")
    login = "admin" + address()
    button.click()
    sign_in_at_provider(page, login)
    page.wait_for_url(live_server + "/")
    created = Employee.by_email(login)
    assert created.role == "admin" and created.department == "Sales"
    assert page.locator("summary", has_text="Account management" if language == "en" else "Управление").count()
    if page.locator("[data-menu-toggle]").is_visible():  # a phone's width folds the menu
        page.click("[data-menu-toggle]")
    page.get_by_role("button", name="Sign out" if language == "en" else "Выйти").click()
    page.wait_for_selector("#sso-sign-out")
    assert_no_sideways_scroll(page)
    screenshot(page, f"signed-out-{language}-{width}")
    page.click("#sso-sign-out")
    page.wait_for_selector("button[name=logout]")  # oidc-provider asks to confirm
    page.click("button[name=logout][value=yes]")
    page.wait_for_url(live_server + "/sign-in*")
    # Signed out at the provider as well: "Sign in with" asks for the login again.
    page.click("#sso-sign-in")
    page.wait_for_selector("input[name=login]")


@pytest.mark.browser
@PROVIDER_PAGE_ERRORS
def test_a_person_in_two_hundred_groups_stays_signed_in_and_signs_out_at_the_provider(
        live_server, page, many_groups_provider):
    """Chromium drops a cookie over 4 KB without a word: an ID token kept in the session cookie signed this person
    out at once. Kept on the server, the session holds, and the provider's logout still gets the token as hint."""
    login = "manygroups" + address()
    page.goto(live_server + "/sign-in")
    page.click("#sso-sign-in")
    sign_in_at_provider(page, login)
    page.wait_for_url(live_server + "/")
    assert page.locator("#sign-in-form").count() == 0 and Employee.by_email(login) is not None
    assert all(len(cookie["name"]) + len(cookie["value"]) < 4096 for cookie in page.context.cookies())
    page.goto(live_server + "/profile")  # still signed in on the next page
    assert page.url == live_server + "/profile"
    if page.locator("[data-menu-toggle]").is_visible():
        page.click("[data-menu-toggle]")
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.click("#sso-sign-out")
    page.wait_for_selector("button[name=logout]")  # the provider took the long hint and asks to confirm
    page.click("button[name=logout][value=yes]")
    page.wait_for_url(live_server + "/sign-in*")


@pytest.mark.browser
@PROVIDER_PAGE_ERRORS
def test_two_tabs_started_signing_in_and_the_first_one_finishes(live_server, context, provider):
    """The second tab's "Sign in with" does not spoil the first one's way back."""
    first, second = context.new_page(), context.new_page()
    for tab in (first, second):
        tab.goto(live_server + "/sign-in")
        tab.click("#sso-sign-in")
        tab.wait_for_selector("input[name=login]")
    sign_in_at_provider(first, address())
    first.wait_for_url(live_server + "/")
    assert first.locator("#sign-in-form").count() == 0


@pytest.mark.browser
@pytest.mark.console_errors("https://fonts.googleapis.com/css", "/favicon.ico: Failed to load", "403 (FORBIDDEN)")
@pytest.mark.parametrize("language, width", VIEWS)
def test_the_way_back_opened_again_says_it_was_used(live_server, page, provider, screenshot, language, width):
    """Refused once (nobody in the portal has that address); the same link again, e.g. reloaded, is 'used'."""
    store_settings(active_box(), {"company_name": "Example Corp", "discovery_url": provider.issuer
                                  + "/.well-known/openid-configuration", "client_id": "portal",
                                  "scopes": "openid email profile", "passwords_allowed": True,
                                  "provision": False}, "browser-test")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server + "/sign-in")
    switch_language(page, language)
    page.click("#sso-sign-in")
    sign_in_at_provider(page, address())
    page.wait_for_selector("#sso-refusal[data-code=unknown]")
    page.reload()
    refusal = page.locator("#sso-refusal[data-code=replayed]")
    refusal.wait_for()
    assert ("already used" if language == "en" else "уже использована") in refusal.inner_text()
    assert_no_sideways_scroll(page)
    screenshot(page, f"used-{language}-{width}")


@pytest.mark.browser
@pytest.mark.console_errors("https://fonts.googleapis.com/css", "/favicon.ico: Failed to load", "403 (FORBIDDEN)")
def test_an_unknown_person_sees_why_when_provisioning_is_off(live_server, page, provider, screenshot):
    store_settings(active_box(), {"company_name": "Example Corp", "discovery_url": provider.issuer
                                  + "/.well-known/openid-configuration", "client_id": "portal",
                                  "scopes": "openid email profile", "passwords_allowed": True,
                                  "provision": False}, "browser-test")
    page.goto(live_server + "/sign-in")
    page.click("#sso-sign-in")
    login = address()
    sign_in_at_provider(page, login)
    page.wait_for_selector("#sso-refusal")
    assert login in page.inner_text("#sso-refusal") and Employee.select().count() == 0
    screenshot(page, "refused-en")


@pytest.mark.browser
@pytest.mark.parametrize("language, width", VIEWS)
def test_the_admin_page_checks_the_provider(live_server, signed_in_page, make_employee, provider, screenshot,
                                            language, width):
    admin = make_employee(role="admin", language=language)
    page = signed_in_page(admin)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server + "/admin/sign-in")
    assert page.locator("#sso-redirect-uri").inner_text() == live_server + "/sso/callback"
    page.get_by_role("button", name="Check" if language == "en" else "Проверить").click()
    page.wait_for_selector("#sso-check .badge")
    assert page.locator("#sso-check .badge-fail").count() == 0 and page.locator("#sso-check .badge-ok").count() == 4
    assert_no_sideways_scroll(page)
    screenshot(page, f"admin-{language}-{width}")
    # Another provider with the secret left blank: the stored secret is not sent there, the field says so.
    page.fill("#discovery_url", "https://id.example.net/.well-known/openid-configuration")
    page.get_by_role("button", name="Save" if language == "en" else "Сохранить").click()
    error = page.locator("#client_secret-error")
    error.wait_for()
    assert ("Type the client secret again" if language == "en" else "Введите секрет клиента ещё раз") in \
        error.inner_text()
    assert page.locator("#discovery_url").input_value().startswith("https://id.example.net/")  # nothing typed lost
    assert_no_sideways_scroll(page)
    screenshot(page, f"secret-again-{language}-{width}")


def switch_language(page, language):
    if language == "ru":
        page.select_option("select[name=language]", "ru")
        page.click("form.language-switcher button")


@pytest.mark.browser
@pytest.mark.parametrize("language, width", VIEWS)
def test_passwords_off_leaves_admins_their_break_glass(live_server, page, make_employee, screenshot, language,
                                                       width):
    """Only the company's sign-in is offered; the password form, folded away, still signs an admin in."""
    from tests.conftest import PASSWORD

    store_settings(active_box(), {"company_name": "Example Corp", "client_id": "portal",
                                  "discovery_url": "https://id.example.com/.well-known/openid-configuration",
                                  "passwords_allowed": False}, "browser-test")
    clerk, admin = make_employee(), make_employee(role="admin")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server + "/sign-in")
    switch_language(page, language)
    assert page.locator("#sso-sign-in").is_visible() and not page.locator("#sign-in-form").is_visible()
    assert_no_sideways_scroll(page)
    screenshot(page, f"passwords-off-{language}-{width}")
    page.click("#break-glass summary")
    for person in (clerk, admin):
        page.fill("#email", person.email)
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.click("#sign-in-form button[type=submit]")
        if person is clerk:
            page.wait_for_selector("#password-error")
            assert "Example Corp" in page.inner_text("#password-error")
            screenshot(page, f"passwords-off-refused-{language}-{width}")
    page.wait_for_url(live_server + "/")
