"""People pages in Chromium: sign in, search as you type, add an employee, card tabs, language."""
import re

import pytest
from playwright.sync_api import expect

from portal.models import Employee

pytestmark = pytest.mark.browser


def test_sign_in(live_server, page, sign_in, employee, screenshot):
    page.goto(live_server + "/sign-in")
    screenshot(page, "sign-in")
    sign_in(page, employee)
    assert page.locator("h1").inner_text() == "Hello, Erik Employee"
    screenshot(page, "signed-in")


def test_switch_language_on_sign_in_page(live_server, page, screenshot):
    page.goto(live_server + "/sign-in")
    with page.expect_navigation():
        page.select_option("#language", "ru")  # submits on change
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.locator("h1")).to_have_text("Вход")
    screenshot(page, "sign-in-ru")


def test_search_employees_as_you_type(live_server, signed_in_page, admin, make_employee, screenshot):
    for number in range(30):
        Employee.create(name=f"Person {number:02d}", email=f"person{number}@example.com", department="Logistics")
    make_employee(name="Olga Other", email="olga@example.com", department="Support")
    page = signed_in_page(admin)
    page.goto(live_server + "/admin/employees")
    screenshot(page, "list")
    page.locator("#employee-search").press_sequentially("supp", delay=30)
    page.wait_for_url("**/admin/employees?q=supp*")  # the address keeps the query
    expect(page.locator("#employee-list tbody tr")).to_have_count(1)  # waits for the swap, not just the URL
    assert "Olga Other" in page.locator("#employee-list").inner_text()
    screenshot(page, "searched")
    page.go_back()
    expect(page.locator("#employee-list tbody tr").nth(1)).to_be_attached()  # the whole list is back


def test_the_list_answers_the_last_thing_typed_even_when_the_server_is_slow(live_server, signed_in_page, admin,
                                                                            make_employee):
    """A pause, then more letters while the first search is still on its way: the list ends up answering what the
    box says, not the earlier text (htmx queues the newer search of one box behind the one in flight; the card's
    tabs, several elements, needed hx-sync for the same)."""
    make_employee(name="Olga Other", email="olga@example.com", department="Support")
    make_employee(name="Sven Sales", email="sven@example.com", department="Sales")
    page = signed_in_page(admin)
    page.goto(live_server + "/admin/employees")
    held = []
    first_search = re.compile(r"/admin/employees\?(.*&)?q=s(&|$)")
    page.route(first_search, lambda route: held.append(route))  # the first search answers late
    page.locator("#employee-search").press_sequentially("s")
    page.wait_for_timeout(600)  # past the typing pause: the search for "s" is on its way
    assert held, "the search for 's' was never sent"
    page.locator("#employee-search").press_sequentially("upp")
    page.wait_for_timeout(600)
    held[0].continue_()
    page.wait_for_load_state("networkidle")
    expect(page.locator("#employee-list tbody tr")).to_have_count(1)
    assert "Olga Other" in page.locator("#employee-list").inner_text()


def test_add_employee_with_a_mistake_first(live_server, signed_in_page, admin, employee, screenshot):
    page = signed_in_page(admin)
    page.goto(live_server + "/admin/employees/new")
    page.fill("#name", "Nina New")
    page.fill("#email", "ERIK@example.com")
    page.click("#employee-form button[type=submit]")
    assert "An employee with this e-mail already exists." in page.locator("#email-error").inner_text()
    screenshot(page, "form-with-error")
    page.fill("#email", "nina@example.com")
    page.fill("#department", "Purchasing")
    page.click("#employee-form button[type=submit]")
    page.wait_for_url("**/admin/employees/*")
    assert page.locator("h1").inner_text() == "Nina New"
    screenshot(page, "added")


def test_card_tabs(app, live_server, signed_in_page, admin, employee, screenshot):
    page = signed_in_page(admin)
    page.goto(live_server + f"/admin/employees/{employee.id}")
    profile = page.get_by_role("tab", name="Profile")
    assert profile.get_attribute("aria-selected") == "true"
    screenshot(page, "card-profile")
    if "mailboxes.employee_addresses" in app.view_functions:
        addresses = page.get_by_role("tab", name="External addresses")
        addresses.click()
        expect(page.locator("#tab-addresses")).to_have_attribute("aria-selected", "true")
        page.wait_for_load_state("networkidle")
        screenshot(page, "card-addresses")
        profile.focus()
        page.keyboard.press("ArrowRight")
        assert addresses.get_attribute("aria-selected") == "true"
        page.keyboard.press("ArrowLeft")
    else:
        profile.click()
    page.wait_for_selector("#employee-tabpanel dl.details")
    assert profile.get_attribute("aria-selected") == "true"
    assert "Sales" in page.locator("#employee-tabpanel").inner_text()


def test_a_tab_left_quickly_never_shows_the_panel_of_the_one_left(live_server, signed_in_page, admin, employee):
    """Arrow keys run through the tabs faster than their panels load: the panel of a tab already left, answering
    late, must not replace the one chosen after it (the card then said Profile over the addresses' list)."""
    page = signed_in_page(admin)
    page.goto(live_server + f"/admin/employees/{employee.id}")
    held = []
    page.route(f"**/admin/mail/employees/{employee.id}", lambda route: held.append(route))  # a slow answer
    page.get_by_role("tab", name="Profile").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-addresses")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowLeft")
    page.wait_for_timeout(500)  # time for the Profile panel to come back, were it asked for at once
    assert held, "the addresses' panel was never asked for"
    held[0].continue_()  # the late answer arrives now
    page.wait_for_load_state("networkidle")
    expect(page.locator("#tab-profile")).to_have_attribute("aria-selected", "true")
    assert page.locator("#employee-tabpanel dl.details").is_visible()
    assert "Sales" in page.locator("#employee-tabpanel").inner_text()


def test_deactivate_from_the_card(live_server, browser, signed_in_page, sign_in, admin, employee, screenshot):
    sign_in(browser.new_context().new_page(), employee)  # the employee is signed in elsewhere
    page = signed_in_page(admin)
    page.goto(live_server + f"/admin/employees/{employee.id}")
    expect(page.locator("#employee-sign-out-form")).to_contain_text("Signed in on 1 browser.")
    page.get_by_role("button", name="Deactivate…").click()
    page.wait_for_selector("#employee-status.confirm")
    screenshot(page, "confirm-deactivate")
    page.locator("#employee-status button[type=submit]").click()
    page.wait_for_selector("text=Erik Employee can no longer sign in.")
    assert not Employee.get_by_id(employee.id).active
    expect(page.locator("#employee-sign-out-form")).to_contain_text("Signed in on 0 browsers.")  # signed out too
    screenshot(page, "deactivated")


def test_projects_in_place(live_server, signed_in_page, admin, make_project, screenshot):
    make_project("Apollo")
    page = signed_in_page(admin)
    page.goto(live_server + "/admin/projects")
    page.fill("#name", "   ")
    page.get_by_role("button", name="Add project").click()
    page.wait_for_selector("#name-error")
    assert "only spaces" in page.locator("#name-error").inner_text()
    page.fill("#name", "Gemini")
    page.get_by_role("button", name="Add project").click()
    page.wait_for_selector("text=Project Gemini added.")
    page.get_by_role("link", name="Rename Apollo").click()
    page.wait_for_selector(".project-row.editing input[type=text]")
    screenshot(page, "renaming")
    page.locator(".project-row.editing input[type=text]").fill("Artemis")
    page.locator(".project-row.editing button[type=submit]").click()
    page.wait_for_selector("text=Artemis")
    page.get_by_role("button", name="Archive Artemis").click()
    page.wait_for_selector(".project-row.archived")
    screenshot(page, "projects")


@pytest.mark.console_errors("status of 413")  # provoked on purpose
@pytest.mark.parametrize("language", ["en", "ru"])
def test_a_too_large_import_is_said_beside_the_file_field(live_server, signed_in_page, make_employee, tmp_path,
                                                          screenshot, language):
    admin = make_employee(name="Anna Admin", email="admin@example.com", role="admin", language=language)
    big = tmp_path / "people.csv"  # 7 MB: over any request the portal reads, refused before it is read
    big.write_text("name,email\n" + "".join(f"Person {n},person{n}@example.com\n" for n in range(230_000)))
    page = signed_in_page(admin)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server + "/admin/employees/import")
    page.set_input_files("#file", str(big))
    with page.expect_navigation():
        page.click("#import-form button[type=submit]")
    message = {"en": "The file is larger than 4 MB. Split it into smaller files.",
               "ru": "Файл больше 4 МБ. Разделите его на файлы поменьше."}[language]
    expect(page.locator("#file-error")).to_have_text(message)
    screenshot(page, f"import-too-large-{language}-390")
    assert Employee.select().count() == 1
