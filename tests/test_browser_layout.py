"""Every page on a laptop and a phone: nothing scrolls sideways, one breadcrumb and search-bar style, a
navigation that folds and highlights the page's own section, a keyboard-friendly menu, no console errors."""
import pytest
from playwright.sync_api import expect

from portal.models import AuditEvent
from tests.fixtures.browser import assert_no_sideways_scroll

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}


@pytest.fixture
def portal_with_data(admin, make_employee, make_project, make_mailbox):
    """A little of everything, with the long words that break a narrow layout."""
    brand = make_project(name="Brand A")
    worker = make_employee(name="Konstantin Konstantinopolsky", email="konstantin.konstantinopolsky@example.com",
                           department="International business development")
    company = make_mailbox(projects=[brand], address="international-sales-department@example.com")
    make_mailbox(worker, address="konstantin.personal@example.com", projects=[brand])
    AuditEvent.create(mailbox=company, address=company.address, actor=admin, action="changed", ip="127.0.0.1",
                      changed_fields='["smtp_password", "access_everyone", "smtp_trusted_fingerprint"]')
    AuditEvent.create(mailbox=company, address=company.address, actor=admin, action="test_failed",
                      ip="127.0.0.1", detail="security_mode_mismatch")
    return {"worker": worker, "company": company, "brand": brand}


def _pages(data):
    worker, company, brand = data["worker"], data["company"], data["brand"]
    return [
        "/", "/my/addresses", "/profile", "/admin/employees", f"/admin/employees/{worker.id}",
        f"/admin/employees/{worker.id}/edit", "/admin/employees/new", "/admin/employees/import",
        "/admin/projects", f"/admin/projects/{brand.id}/rename", "/admin/mail/outgoing", "/admin/mail/employees",
        f"/admin/mail/employees/{worker.id}", "/admin/mail/senders", "/admin/mail/audit",
        "/mailboxes/new?scope=company", f"/mailboxes/{company.id}/edit", "/admin/api-tokens", "/profile/api-tokens",
        "/contacts", "/replies",
    ]


@pytest.mark.parametrize("language", ["en", "ru"])
def test_no_page_scrolls_sideways_on_a_phone(live_server, page, sign_in, admin, portal_with_data, language):
    admin.language = language
    admin.save()
    page.set_viewport_size(PHONE)
    sign_in(page, admin)
    for path in _pages(portal_with_data):
        response = page.goto(live_server + path)
        assert response.ok, path
        assert_no_sideways_scroll(page)


def test_sign_in_page_logs_no_console_errors(live_server, page, no_console_errors):
    page.goto(live_server + "/sign-in")
    page.wait_for_load_state("networkidle")
    assert no_console_errors == []


def test_breadcrumbs_share_one_style_and_stay_on_one_line(live_server, page, sign_in, admin, portal_with_data):
    worker, company = portal_with_data["worker"], portal_with_data["company"]
    sign_in(page, admin)
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        for path in (f"/admin/employees/{worker.id}/edit", f"/mailboxes/{company.id}/edit", "/admin/mail/outgoing",
                     f"/admin/projects/{portal_with_data['brand'].id}/rename", "/profile/api-tokens"):
            page.goto(live_server + path)
            crumbs = page.locator("nav.breadcrumb")
            expect(crumbs).to_have_count(1)
            separator = crumbs.locator("li").last.evaluate("li => getComputedStyle(li, '::before').content")
            assert separator == '"›"', (path, separator)
            # On a phone only the way back and the page show ("… › Parent › Page"); on a laptop all.
            parent, last = (crumbs.locator("li").nth(i).bounding_box() for i in (-2, -1))
            assert abs(parent["y"] - last["y"]) < 4, f"{path} breadcrumb wraps at {size['width']} px"
            assert last["x"] + last["width"] <= size["width"], path


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_search_bars_line_up_with_their_button(live_server, page, sign_in, admin, portal_with_data, size):
    page.set_viewport_size(size)
    sign_in(page, admin)
    for path in ("/admin/employees", "/admin/mail/employees", "/admin/mail/audit", "/contacts"):
        page.goto(live_server + path)
        bar = page.locator("search form")
        expect(bar).to_have_count(1)
        assert bar.evaluate("f => getComputedStyle(f).borderTopWidth") == "0px", f"{path}: a border wraps the bar"
        form_box = bar.bounding_box()
        button = bar.locator("button[type=submit]").bounding_box()
        field = bar.locator("input").last.bounding_box()
        assert button["x"] >= 0 and button["x"] + button["width"] <= size["width"], f"{path}: button clipped"
        assert button["width"] < 0.4 * form_box["width"], f"{path}: button is {button['width']} px wide"
        if button["y"] < field["y"] + field["height"]:  # on the inputs' line: same bottom edge
            assert abs((button["y"] + button["height"]) - (field["y"] + field["height"])) < 3, path


def test_company_address_form_highlights_outgoing_messages(live_server, page, sign_in, admin, portal_with_data):
    sign_in(page, admin)
    for path in ("/mailboxes/new?scope=company", f"/mailboxes/{portal_with_data['company'].id}/edit"):
        page.goto(live_server + path)
        expect(page.locator(".nav-links a", has_text="My addresses")).not_to_have_attribute("aria-current", "page")
        expect(page.locator(".account-menu summary")).to_have_attribute("aria-current", "page")
        expect(page.locator(".account-menu a", has_text="Outgoing messages")).to_have_attribute("aria-current", "page")
    page.goto(live_server + "/mailboxes/new")  # the admin's own address: My addresses
    expect(page.locator(".nav-links a", has_text="My addresses")).to_have_attribute("aria-current", "page")
    expect(page.locator(".account-menu summary")).not_to_have_attribute("aria-current", "page")


def test_account_menu_shows_focus_and_closes_with_escape(live_server, page, sign_in, admin):
    sign_in(page, admin)
    summary = page.locator(".account-menu summary")
    summary.focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")  # focus by keyboard, so :focus-visible applies
    expect(summary).to_be_focused()
    outline = summary.evaluate("s => [getComputedStyle(s).outlineStyle, getComputedStyle(s).outlineWidth]")
    assert outline[0] != "none" and outline[1] != "0px", outline
    page.keyboard.press("Enter")
    expect(page.locator(".account-menu")).to_have_attribute("open", "")
    page.keyboard.press("Tab")  # into the menu
    page.keyboard.press("Escape")
    expect(page.locator(".account-menu")).not_to_have_attribute("open", "")
    expect(summary).to_be_focused()


def test_phone_navigation_folds_behind_a_menu_button(live_server, page, sign_in, admin, screenshot):
    page.set_viewport_size(PHONE)
    sign_in(page, admin)
    header = page.locator(".site-header").bounding_box()
    assert header["height"] < 100, f"the navigation takes {header['height']} px"
    expect(page.locator(".nav-links")).to_be_hidden()
    toggle = page.locator("[data-menu-toggle]")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator(".nav-links a", has_text="My addresses")).to_be_visible()
    screenshot(page, "phone-menu-open")
    page.set_viewport_size(LAPTOP)
    expect(toggle).to_be_hidden()
    expect(page.locator(".nav-links a", has_text="My addresses")).to_be_visible()


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_save_stays_in_view_on_the_long_mailbox_form(live_server, page, sign_in, admin, size):
    page.set_viewport_size(size)
    sign_in(page, admin)
    page.goto(live_server + "/mailboxes/new?scope=company")
    assert page.evaluate("document.documentElement.scrollHeight") > size["height"]  # the form is longer
    for scrolled in (0, 600):
        page.evaluate(f"window.scrollTo(0, {scrolled})")
        for button in ("#test-account", "#save-mailbox"):
            box = page.locator(button).bounding_box()
            assert 0 <= box["y"] and box["y"] + box["height"] <= size["height"], (button, scrolled, box)
