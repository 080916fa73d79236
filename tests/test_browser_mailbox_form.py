"""The mailbox form in Chromium: address and password first, the servers folded until they are needed, and a
bar at the foot of the window with Test account, Save and the test's outcome."""
import socket

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import assert_no_sideways_scroll, open_mailbox_servers

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mail_reaches_localhost")]


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _open_form(live_server, page, width, path="/mailboxes/new"):
    """The mailbox form in a window ``width`` px wide (900 px tall)."""
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server + path)
    return page


def _type_account(page, smtp, port=None):
    """Address and password, then the servers (opened to type into) for the local aiosmtpd ``smtp``."""
    page.fill("#address", smtp.username)
    page.fill("#smtp_password", smtp.password)
    open_mailbox_servers(page)
    page.fill("#smtp_host", "localhost")
    page.fill("#smtp_port", str(port or smtp.port))
    page.select_option("#smtp_security", smtp.security)
    page.fill("#smtp_username", smtp.username)


def _fold_servers(page):
    section = page.locator("#mailbox-servers")
    if section.get_attribute("open") is not None:
        section.locator("> summary").click()
    expect(section).not_to_have_attribute("open", "")


@pytest.mark.parametrize("language,width,height", [
    ("en", 1366, 1400), ("ru", 1366, 1400), ("en", 390, 2300), ("ru", 390, 2400)])
def test_the_form_starts_with_address_and_password_and_fits(
        live_server, signed_in_page, make_employee, screenshot, language, width, height):
    page = _open_form(live_server, signed_in_page(make_employee(language=language)), width)

    expect(page.locator("#address")).to_be_visible()
    expect(page.locator("#smtp_password")).to_be_visible()
    expect(page.locator("#smtp_host")).to_be_hidden()
    for button in ("#test-account", "#save-mailbox"):  # in the bar at the foot of the window
        box = page.locator(button).bounding_box()
        assert 0 <= box["y"] and box["y"] + box["height"] <= 900, button
    # The general advice for any other server waits beside the form, or below it on a phone.
    advice, address = page.locator(".mailbox-advice").bounding_box(), page.locator("#address").bounding_box()
    beside = advice["x"] >= address["x"] + address["width"]
    below = advice["y"] > page.locator("#smtp_password").bounding_box()["y"]
    assert below if width < 900 else beside
    tall = page.evaluate("document.documentElement.scrollHeight")
    assert tall <= height, f"the form is {tall} px tall"  # it was 1874 px on a laptop and 3135 on a phone
    assert_no_sideways_scroll(page)
    screenshot(page, f"form-{language}-{width}")

    page.locator("#mailbox-servers > summary").click()
    expect(page.locator("#smtp_host")).to_be_visible()
    expect(page.locator("#incoming_host")).to_be_hidden()  # only once an incoming server is chosen
    page.select_option("#incoming_protocol", "imap")
    expect(page.locator("#incoming_host")).to_be_visible()
    expect(page.locator("#receive_replies")).to_be_visible()
    assert_no_sideways_scroll(page)
    screenshot(page, f"form-servers-{language}-{width}")


def test_an_address_with_no_known_servers_opens_the_servers(live_server, signed_in_page, employee):
    page = signed_in_page(employee)
    page.goto(live_server + "/mailboxes/new")
    page.fill("#address", "olga@unknown-firm.example.com")
    page.locator("#address").blur()

    expect(page.locator("#mailbox-servers")).to_have_attribute("open", "")
    expect(page.locator("#smtp_host")).to_be_visible()


def test_a_known_provider_fills_the_servers_and_names_them_in_the_folded_summary(
        live_server, signed_in_page, employee):
    page = signed_in_page(employee)
    page.goto(live_server + "/mailboxes/new")
    page.fill("#address", "erik@yandex.ru")
    page.locator("#address").blur()

    expect(page.locator("#mailbox-servers .servers-summary")).to_contain_text("smtp.yandex.ru:465")
    expect(page.locator("#mailbox-servers")).not_to_have_attribute("open", "")


@pytest.mark.parametrize("language,width", [("en", 1366), ("ru", 1366), ("en", 390)])
def test_a_server_field_the_test_blames_is_opened_marked_and_named_in_the_bar(
        live_server, signed_in_page, make_employee, smtp_server, screenshot, language, width):
    page = _open_form(live_server, signed_in_page(make_employee(language=language)), width)
    _type_account(page, smtp_server, port=_closed_port())
    _fold_servers(page)
    bar = page.locator(".form-actions")
    before = bar.bounding_box()

    page.click("#test-account")

    expect(page.locator("#test-summary .badge-fail")).to_be_visible(timeout=20000)
    expect(page.locator("#mailbox-servers")).to_have_attribute("open", "")
    port = page.locator("#smtp_port")
    expect(port).to_have_attribute("aria-invalid", "true")
    expect(port).to_be_focused()
    expect(page.locator("#test-summary .summary-problem")).to_have_text(
        page.locator("#test-result .problem h3").inner_text())
    after = bar.bounding_box()
    assert abs(after["height"] - before["height"]) < 1, "the bar changed its height"  # nothing jumps
    assert after["y"] + after["height"] <= 900
    screenshot(page, f"blamed-{language}-{width}", full_page=False)


def test_a_value_refused_on_save_opens_the_servers(live_server, signed_in_page, employee):
    page = signed_in_page(employee)
    page.goto(live_server + "/mailboxes/new")
    page.fill("#address", "olga@example.com")
    page.fill("#smtp_password", "secret")
    open_mailbox_servers(page)
    page.fill("#smtp_host", "127.0.0.1")
    page.fill("#smtp_port", "99999")
    _fold_servers(page)

    page.click("#save-mailbox")

    expect(page.locator("#smtp_port")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#mailbox-servers")).to_have_attribute("open", "")
    expect(page.locator("#smtp_port")).to_be_visible()


@pytest.mark.parametrize("language,width", [("en", 1366), ("ru", 1366), ("en", 390), ("ru", 390)])
def test_projects_employees_and_departments_are_picked_as_chips_by_keyboard(
        live_server, signed_in_page, make_employee, make_project, smtp_server, screenshot, language, width):
    from portal.models import Mailbox, Project

    for name in ("Alpha", "Beta", "Gamma"):
        make_project(name)
    olga = make_employee(name="Olga Orlova", department="Support")
    page = _open_form(live_server, signed_in_page(make_employee(role="admin", language=language)), width,
                      "/mailboxes/new?scope=company")
    russian = language == "ru"

    expect(page.locator("select#projects")).to_be_hidden()  # no Ctrl-click list
    projects = page.get_by_role("combobox", name="Проекты" if russian else "Projects")
    expect(projects).to_be_visible()
    expect(page.locator("#projects-count")).to_have_text("Выбрано: 0" if russian else "0 selected")

    projects.click()
    projects.type("gam")
    expect(page.locator("#projects-options [role=option]")).to_have_text(["Gamma"])
    page.keyboard.press("Enter")
    chips = page.locator("#slot-projects .chip")
    expect(chips).to_have_text(["Gamma×"])
    expect(page.locator("#projects-count")).to_have_text("Выбрано: 1" if russian else "1 selected")
    page.keyboard.press("ArrowDown")  # Alpha, Beta left: the arrow moves to Beta
    page.keyboard.press("Enter")
    expect(chips).to_have_text(["Beta×", "Gamma×"])  # in the list's order
    screenshot(page, f"chips-{language}-{width}", full_page=False)
    page.keyboard.press("Backspace")  # the empty field: the last chip goes
    expect(chips).to_have_text(["Beta×"])
    page.get_by_role("button", name="Убрать «Beta»" if russian else "Remove Beta").click()
    expect(chips).to_have_count(0)
    expect(projects).to_be_focused()
    projects.type("gamma")
    page.keyboard.press("Enter")
    assert page.url.endswith("/mailboxes/new?scope=company")  # Enter added; it never submitted the form
    assert page.eval_on_selector("#projects", "s => Array.from(s.selectedOptions, o => o.text)") == ["Gamma"]

    page.get_by_role("switch", name="Доступен всем" if russian else "Everyone may use it").uncheck()
    employees = page.locator("#access_employees-filter")
    employees.type("olga")
    page.keyboard.press("Enter")
    page.locator("#access_departments-filter").type("supp")
    page.keyboard.press("Enter")
    expect(page.locator("#slot-access_departments .chip")).to_have_text(["Support×"])
    assert_no_sideways_scroll(page)

    _type_account(page, smtp_server)
    page.click("#test-account")
    expect(page.locator("#test-summary .badge-ok")).to_be_visible(timeout=20000)
    expect(chips).to_have_text(["Gamma×"])  # the answer re-drew the field: still a picker, same choice
    expect(page.locator("#slot-projects .chips-picker")).to_have_count(1)
    page.click("#save-mailbox")
    page.wait_for_url("**/admin/mail/outgoing")

    saved = Mailbox.get()
    assert saved.project_ids() == [Project.get(Project.name == "Gamma").id]
    assert sorted((r.employee_id or 0, r.department or "") for r in saved.access_rules) == [
        (0, "Support"), (olga.id, "")]


@pytest.mark.parametrize("language,width", [("ru", 1366), ("ru", 390), ("en", 1366)])
def test_a_passed_test_reads_in_the_readers_language_down_to_the_stage_details(
        live_server, signed_in_page, make_employee, smtp_server, screenshot, language, width):
    page = _open_form(live_server, signed_in_page(make_employee(language=language)), width)
    _type_account(page, smtp_server)

    page.click("#test-account")

    expect(page.locator("#test-summary .badge-ok")).to_have_text("Пройдено" if language == "ru" else "Passed",
                                                                 timeout=20000)
    tls = page.locator(".stage", has_text="TLS").locator(".stage-detail")
    expect(tls).to_contain_text("сертификат проверен, SHA-256" if language == "ru" else "verified certificate, SHA-256")
    assert_no_sideways_scroll(page)
    page.locator("#test-result").scroll_into_view_if_needed()
    screenshot(page, f"passed-{language}-{width}", full_page=False)
