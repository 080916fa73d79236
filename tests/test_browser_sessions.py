"""Sessions in Chromium: Remember me and sign-out, copied cookies, signing out everywhere."""
import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _cookie_names(context):
    return {cookie["name"] for cookie in context.cookies()}


def _sign_in_remembered(page, live_server, employee):
    page.goto(live_server + "/sign-in")
    page.fill("#email", employee.email)
    page.fill("#password", PASSWORD)
    page.check("#remember")
    with page.expect_navigation():
        page.click("#sign-in-form button[type=submit]")
    expect(page.locator("h1")).to_contain_text(employee.name)  # the home page greets them


def test_sign_out_with_remember_me_signs_out(live_server, browser, employee, screenshot):
    context = browser.new_context()
    page = context.new_page()
    _sign_in_remembered(page, live_server, employee)
    copied = context.cookies()  # what someone who copied the browser's cookies would hold
    assert {"portal_session", "remember_token"} <= {cookie["name"] for cookie in copied}
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    expect(page.locator("h1")).to_have_text("Sign in")
    screenshot(page, "signed-out")
    assert "remember_token" not in _cookie_names(context)
    page.goto(live_server + "/")
    expect(page).to_have_url(live_server + "/sign-in?next=/")
    context.close()

    # The browser closed and opened again, and another one with the copied cookies: neither is signed in.
    for cookies in ([cookie for cookie in copied if cookie["name"] == "remember_token"], copied):
        again = browser.new_context()
        again.add_cookies(cookies)
        page = again.new_page()
        page.goto(live_server + "/")
        expect(page).to_have_url(live_server + "/sign-in?next=/")
        again.close()


def test_remember_me_still_holds_without_a_sign_out(live_server, browser, employee):
    context = browser.new_context()
    page = context.new_page()
    _sign_in_remembered(page, live_server, employee)
    remembered = [cookie for cookie in context.cookies() if cookie["name"] == "remember_token"]
    context.close()
    again = browser.new_context()  # the browser restarted: only the remember cookie survives
    again.add_cookies(remembered)
    page = again.new_page()
    page.goto(live_server + "/profile")
    expect(page.locator("h1")).to_have_text("My profile")
    again.close()


def test_sign_out_everywhere_from_my_profile(live_server, browser, make_employee, screenshot):
    person = make_employee(name="Ирина Петрова", email="irina@example.com", language="ru")
    laptop = browser.new_context()
    _sign_in_remembered(laptop.new_page(), live_server, person)
    phone = browser.new_context(viewport={"width": 390, "height": 844})
    page = phone.new_page()
    _sign_in_remembered(page, live_server, person)
    page.goto(live_server + "/profile")
    section = page.locator("#profile-sessions")
    expect(section).to_contain_text("Вход выполнен на 2 браузерах, включая этот.")
    box = section.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, "the section is wider than the phone"
    screenshot(page, "profile-sessions-ru-390")
    with page.expect_navigation():
        page.get_by_role("button", name="Выйти на всех браузерах").click()
    expect(page.locator("main")).to_contain_text("Вы вышли из портала на всех браузерах.")
    screenshot(page, "signed-out-everywhere-ru-390")
    other = laptop.pages[0]
    other.goto(live_server + "/profile")
    expect(other).to_have_url(live_server + "/sign-in?next=/profile")
    laptop.close()
    phone.close()


ADMIN_TEXTS = {
    "en": ("Signed in on 1 browser.", "Erik Employee is signed out of 1 browser."),
    "ru": ("Вход выполнен на 1 браузере.", "Erik Employee: вход завершён на 1 браузере."),
}


@pytest.mark.parametrize("language, width", [("en", 1280), ("ru", 390)])
def test_admin_signs_an_employee_out(live_server, browser, signed_in_page, make_employee, employee, screenshot,
                                     language, width):
    admin = make_employee(name="Anna Admin", email="admin@example.com", role="admin", language=language)
    office = browser.new_context()
    _sign_in_remembered(office.new_page(), live_server, employee)
    page = signed_in_page(admin)
    page.set_viewport_size({"width": width, "height": 844})
    page.goto(live_server + f"/admin/employees/{employee.id}")
    before, after = ADMIN_TEXTS[language]
    expect(page.locator("#employee-sign-out-form")).to_contain_text(before)
    screenshot(page, f"card-{language}-{width}")
    with page.expect_navigation():
        page.click("#employee-sign-out-form button")
    expect(page.locator("main")).to_contain_text(after)
    expect(page.locator("#employee-sign-out-form button")).to_be_disabled()
    screenshot(page, f"card-signed-out-{language}-{width}")
    other = office.pages[0]
    other.goto(live_server + "/")
    expect(other).to_have_url(live_server + "/sign-in?next=/")
    office.close()


def test_my_profile_in_english_at_desktop_width(live_server, signed_in_page, employee, screenshot):
    page = signed_in_page(employee)
    page.goto(live_server + "/profile")
    expect(page.locator("#profile-sessions")).to_contain_text("You are signed in on 1 browser, this one included.")
    screenshot(page, "profile-sessions-en")
