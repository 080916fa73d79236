"""External addresses in Chromium: presets and the inline test against local servers, a refused Save, the grid."""
import pytest
from playwright.sync_api import expect

from portal.models import Mailbox
from tests.fixtures.browser import open_mailbox_servers

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mail_reaches_localhost")]


def fill_local_server(page, smtp):
    """Point the outgoing fields at the local aiosmtpd server."""
    open_mailbox_servers(page)
    page.fill("#smtp_host", "localhost")
    page.fill("#smtp_port", str(smtp.port))
    page.select_option("#smtp_security", smtp.security)
    page.fill("#smtp_username", smtp.username)


def run_test(page):
    """Click Test account and wait until the polls bring the result (not just the running state)."""
    page.click("button:has-text('Test account'), button:has-text('Протестировать')")
    # Only the result has a Passed/Failed badge (htmx briefly keeps the old element's class while it settles).
    page.wait_for_selector("#test-result .result-line :is(.badge-ok, .badge-fail)", timeout=20000)


@pytest.fixture
def quick_deadline(config):
    """Every account test is over within 4 s (set before the app starts)."""
    config.update(PORTAL_MAIL_DEADLINE=4.0)
    return config


@pytest.mark.parametrize("language,width", [("en", 1280), ("ru", 1280), ("en", 390)])
def test_the_form_shows_stages_while_the_test_runs_and_the_result_when_it_ends(
        quick_deadline, live_server, signed_in_page, make_employee, smtp_server, mail_user, screenshot,
        language, width):
    # Outgoing answers at once; the incoming server trickles its greeting, so the test runs ~4 s.
    from tests.servers.slow import TarpitServer

    trickling = TarpitServer(interval=1.0, greeting=b"+OK Dovecot ready.\r\n")
    try:
        page = signed_in_page(make_employee(language=language))
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(live_server + "/mailboxes/new")
        page.fill("#address", smtp_server.username)
        fill_local_server(page, smtp_server)
        page.fill("#smtp_password", smtp_server.password)
        page.select_option("#incoming_protocol", "pop3")
        page.fill("#incoming_host", "127.0.0.1")
        page.fill("#incoming_port", str(trickling.port))
        page.select_option("#incoming_security", "none")
        page.fill("#incoming_username", mail_user.address)
        page.fill("#incoming_password", mail_user.password)
        page.click("button:has-text('Test account'), button:has-text('Протестировать')")

        running = page.locator("#test-result.running")
        signed_in = "Исходящая: вход" if language == "ru" else "Outgoing: sign in"
        expect(running.locator(".stage", has_text=signed_in)).to_be_visible(timeout=3000)
        expect(running.locator(".stage-fail")).to_have_count(0)
        page.fill("#display_name", "Typed while the test runs")  # the form stays usable meanwhile
        running.scroll_into_view_if_needed()
        screenshot(page, f"test-running-{language}-{width}", full_page=False)

        finished = page.locator("#test-result:not(.running)")
        expect(finished.locator(".problem h3")).to_have_text(
            "Сервер отвечает слишком медленно" if language == "ru" else "The server answered too slowly",
            timeout=8000)
        finished.scroll_into_view_if_needed()
        screenshot(page, f"test-too-slow-{language}-{width}", full_page=False)
        assert page.locator("#display_name").input_value() == "Typed while the test runs"
        assert page.locator("#test-result input[name=proof]").count() == 0
        expect(page.locator("#test-result")).to_have_count(1)  # the poll replaces itself, nothing else
    finally:
        trickling.stop()


def test_admin_adds_a_company_mailbox_through_a_preset_and_the_inline_test(
        live_server, signed_in_page, admin, make_project, smtp_server, screenshot):
    make_project("Alpha")
    page = signed_in_page(admin)
    page.goto(live_server + "/admin/mail/outgoing")
    screenshot(page, "outgoing-empty")
    page.click("text=Add company address")
    page.wait_for_url("**/mailboxes/new?scope=company")  # loaded, so htmx listens before the change below
    open_mailbox_servers(page)
    page.select_option("#provider", "yandex")
    expect(page.locator("#smtp_host")).to_have_value("smtp.yandex.ru")  # no eval in the page: its CSP forbids it
    assert "Yandex" in page.locator("#provider-advice").inner_text()
    page.fill("#address", smtp_server.username)
    page.fill("#display_name", "Sales team")
    screenshot(page, "preset-filled")
    fill_local_server(page, smtp_server)
    page.fill("#smtp_password", smtp_server.password)
    run_test(page)
    assert "Passed" in page.locator("#test-result").inner_text()
    screenshot(page, "test-passed")
    page.click("button:has-text('Save')")
    page.wait_for_url("**/admin/mail/outgoing")
    assert smtp_server.username in page.locator(".mailbox-table").inner_text()
    screenshot(page, "outgoing-saved")
    assert Mailbox.get().scope == "company"


def test_employee_adds_a_personal_mailbox(live_server, signed_in_page, employee, smtp_server, screenshot):
    page = signed_in_page(employee)
    page.goto(live_server + "/my/addresses")
    screenshot(page, "my-addresses-empty")
    page.click("text=Add external address")
    page.wait_for_url("**/mailboxes/new**")  # loaded, so htmx listens before the fields change
    page.fill("#address", smtp_server.username)
    page.locator("#address").blur()
    fill_local_server(page, smtp_server)
    page.fill("#smtp_password", smtp_server.password)
    run_test(page)
    page.click("button:has-text('Save')")
    page.wait_for_url("**/my/addresses")
    assert smtp_server.username in page.locator(".mailbox-table").inner_text()
    screenshot(page, "my-addresses-saved")
    mailbox = Mailbox.get()
    assert mailbox.owner_id == employee.id and mailbox.tested


def test_a_failing_test_explains_itself_keeps_the_form_and_save_stays_refused(
        live_server, signed_in_page, admin, smtp_server, screenshot):
    page = signed_in_page(admin)
    page.goto(live_server + "/mailboxes/new?scope=company")
    page.fill("#address", smtp_server.username)
    page.fill("#display_name", "Keep me")
    fill_local_server(page, smtp_server)
    page.fill("#smtp_password", "not-the-password")
    run_test(page)
    result = page.locator("#test-result").inner_text()
    assert "Failed" in result and "535" in result
    assert page.locator("#test-result .problem h3").inner_text().strip()
    # Everything typed stays, the password too (the browser kept it; the server never sent it back).
    assert page.input_value("#display_name") == "Keep me"
    assert page.input_value("#smtp_password") == "not-the-password"
    screenshot(page, "test-failed")
    page.click("button:has-text('Save')")
    page.wait_for_selector("#form-status .error")
    assert "Run Test account first" in page.locator("#form-status").inner_text()
    screenshot(page, "save-refused")
    assert Mailbox.select().count() == 0


@pytest.mark.console_errors(  # provoked on purpose
    "status of 429",
    "Response Status Error Code 429",
    "status of 502",
    "Response Status Error Code 502",
    "htmx:sendError",
    "htmx:afterRequest",
    "net::ERR_FAILED")
def test_a_refused_or_unanswered_test_says_so_and_the_form_stays(
        account_tests_limited, live_server, signed_in_page, employee, smtp_server, screenshot):
    page = signed_in_page(employee)
    page.goto(live_server + "/mailboxes/new")
    page.fill("#address", smtp_server.username)
    fill_local_server(page, smtp_server)
    page.fill("#smtp_password", "wrong")
    notice = page.locator("#request-problem")
    expect(notice).to_be_hidden()
    test_button = page.locator("button:has-text('Test account')")
    for _ in range(2):
        test_button.click()
        expect(test_button).to_be_enabled()
    expect(page.locator("#test-result")).to_contain_text("Failed")
    # The third test within the minute: the portal refuses it, and says so where it can be seen.
    test_button.click()
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Too many attempts. Wait a minute and try again.")
    expect(page.locator("#test-result")).to_contain_text("Failed")  # the last result stays
    assert page.input_value("#smtp_password") == "wrong"  # and so does everything typed
    screenshot(page, "problem-too-many", full_page=False)
    page.keyboard.press("Escape")  # Escape closes it, as the Close button does
    expect(notice).to_be_hidden()

    # No answer at all (the connection dropped), then an answer the portal did not write (a proxy's 502).
    page.route("**/mailboxes/test", lambda route: route.abort())
    test_button.click()
    expect(notice).to_contain_text("The portal did not answer.")
    page.unroute("**/mailboxes/test")
    page.route("**/mailboxes/test", lambda route: route.fulfill(status=502, body="<h1>Bad Gateway</h1>"))
    test_button.click()
    expect(notice).to_contain_text("The portal could not finish this (error 502). Try again in a moment.")
    expect(notice).not_to_contain_text("Bad Gateway")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "problem-proxy-phone", full_page=False)


@pytest.mark.console_errors("status of 404", "Response Status Error Code 404")  # provoked on purpose
def test_a_failed_search_says_so_and_leaves_the_list_and_the_address_bar_alone(
        live_server, signed_in_page, admin, employee, screenshot):
    page = signed_in_page(admin)
    page.goto(live_server + "/admin/mail/employees")
    rows_before = page.locator("#employee-results").inner_text()
    # The search's element selects #employee-results from its answer and pushes its URL; the portal's
    # error answer (a real one: the request is sent on to a missing employee) must do neither.
    page.route("**/admin/mail/employees?*",
               lambda route: route.continue_(url=live_server + "/admin/mail/employees/999999"))
    page.locator("#q").press_sequentially("zz", delay=30)
    notice = page.locator("#request-problem")
    expect(notice).to_contain_text("Not found. There is nothing here, or you may not see it.")
    assert page.url == live_server + "/admin/mail/employees"
    assert page.locator("#employee-results").inner_text() == rows_before


def test_who_sends_from_what_shows_the_employees_address_winning(
        live_server, signed_in_page, admin, employee, make_project, make_mailbox, screenshot):
    alpha = make_project("Alpha")
    make_project("Beta")
    make_mailbox(address="sales@example.com", projects=[alpha], is_default=True)
    make_mailbox(employee, address="erik@example.com")
    page = signed_in_page(admin)
    page.goto(live_server + "/admin/mail/senders")
    row = page.locator("tr", has_text="Erik Employee")
    assert "erik@example.com" in row.locator("td").first.inner_text()
    assert "sales@example.com" not in row.inner_text()
    screenshot(page, "senders")
    row.locator("td").first.locator("a").click()
    page.wait_for_selector("#sender-dialog[open]")
    assert "beat company" in page.locator("#sender-detail").inner_text()
    screenshot(page, "senders-explained")


@pytest.mark.console_errors("htmx:sendError", "htmx:afterRequest", "net::ERR_FAILED")  # an aborted test
def test_look_at_every_page_in_both_languages_and_on_a_phone(
        live_server, page, sign_in, admin, make_employee, make_project, make_mailbox, smtp_server, screenshot):
    """Not an assertion-heavy test: it leaves screenshots of every page and state to look at."""
    projects = [make_project(f"Project {n}") for n in range(1, 6)]
    people = [make_employee(name=f"Person {n:02d}", department=("Sales", "Support", "Office")[n % 3])
              for n in range(30)]
    for n, person in enumerate(people[:20]):
        make_mailbox(person, address=f"person{n}@example.com", projects=projects[n % 3:n % 3 + 1],
                     is_default=n % 4 == 0)
    for n in range(12):
        make_mailbox(address=f"shared{n}@example.com", projects=projects[n % 5:n % 5 + 1], is_default=n % 2 == 0,
                     access_everyone=n % 3 != 0, access_departments=["Support"] if n % 3 == 0 else [],
                     active=n != 4, tested=n != 7)
    russian = make_employee(name="Ivan Russky", language="ru", role="admin", email="ivan@example.com")
    sign_in(page, admin)
    pages = {
        "outgoing": "/admin/mail/outgoing",
        "employees": "/admin/mail/employees",
        "employee-addresses": f"/admin/mail/employees/{people[0].id}",
        "employee-addresses-empty": f"/admin/mail/employees/{people[25].id}",
        "senders": "/admin/mail/senders",
        "senders-problems": "/admin/mail/senders?problem=any",
        "audit": "/admin/mail/audit",
        "mine": "/my/addresses",
        "form-new": "/mailboxes/new?scope=company",
        "form-edit": f"/mailboxes/{Mailbox.get(Mailbox.address == 'person0@example.com').id}/edit",
    }
    for name, url in pages.items():
        page.goto(live_server + url)
        screenshot(page, f"en-{name}")
    page.goto(live_server + "/mailboxes/new?scope=company")
    open_mailbox_servers(page)
    page.select_option("#provider", "google")
    expect(page.locator("#smtp_host")).to_have_value("smtp.gmail.com")
    screenshot(page, "en-form-google")
    page.fill("#address", smtp_server.username)
    fill_local_server(page, smtp_server)
    page.fill("#smtp_password", "wrong")
    run_test(page)
    screenshot(page, "en-form-failed")

    page.set_viewport_size({"width": 390, "height": 844})
    for name in ("outgoing", "employees", "senders", "form-new", "mine"):
        page.goto(live_server + pages[name])
        screenshot(page, f"phone-{name}")
    page.goto(live_server + "/mailboxes/new?scope=company")
    page.fill("#address", smtp_server.username)
    fill_local_server(page, smtp_server)
    page.fill("#smtp_password", smtp_server.password)
    run_test(page)
    screenshot(page, "phone-form-passed")
    page.locator("#test-result").scroll_into_view_if_needed()
    screenshot(page, "phone-form-passed-result", full_page=False)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.context.clear_cookies()
    sign_in(page, russian)
    for name, url in pages.items():
        page.goto(live_server + url)
        screenshot(page, f"ru-{name}")
    page.goto(live_server + "/mailboxes/new")
    page.fill("#address", smtp_server.username)
    fill_local_server(page, smtp_server)
    page.fill("#smtp_password", "wrong")
    run_test(page)
    screenshot(page, "ru-form-failed")
    assert page.locator("html").get_attribute("lang") == "ru"
    # A request that gets no answer says so, in Russian too.
    page.route("**/mailboxes/test", lambda route: route.abort())
    page.click("button:has-text('Протестировать')")
    expect(page.locator("#request-problem")).to_contain_text("Портал не ответил.")
    screenshot(page, "ru-form-no-answer", full_page=False)


def test_test_account_by_keyboard_moves_focus_to_the_outcome_and_announces_it(
        live_server, signed_in_page, admin, smtp_server):
    page = signed_in_page(admin)
    page.goto(live_server + "/mailboxes/new?scope=company")
    page.fill("#address", smtp_server.username)
    fill_local_server(page, smtp_server)
    page.fill("#smtp_password", "not-the-password")
    page.locator("button:has-text('Test account')").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#test-result .result-line :is(.badge-ok, .badge-fail)", timeout=20000)
    # A failure that names a field: that field takes focus, with the message beside it; the outcome is announced.
    expect(page.locator("#smtp_password")).to_be_focused()
    expect(page.locator("#smtp_password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#announcer")).to_contain_text("Failed")
    page.fill("#smtp_password", smtp_server.password)
    page.locator("button:has-text('Test account')").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#test-result .result-line .badge-ok", timeout=20000)
    # A pass names no field: focus moves to the outcome line instead of falling to <body>.
    expect(page.locator("#test-result .result-line")).to_be_focused()
    expect(page.locator("#announcer")).to_contain_text("Passed")


def test_changing_a_server_field_after_a_test_clears_its_outcome(live_server, signed_in_page, admin, smtp_server):
    page = signed_in_page(admin)
    page.goto(live_server + "/mailboxes/new?scope=company")
    page.fill("#address", smtp_server.username)
    fill_local_server(page, smtp_server)
    page.fill("#smtp_password", smtp_server.password)
    run_test(page)
    expect(page.locator("#test-result .result-line .badge-ok")).to_be_visible()
    assert page.locator("#test-result input[name=proof]").count() == 1
    page.fill("#smtp_port", "2626")  # the tested settings are no longer the form's
    expect(page.locator("#test-result .result-line")).to_have_count(0)
    expect(page.locator("#test-result")).to_contain_text("The server settings changed since the test")
    assert page.locator("#test-result input[name=proof]").count() == 0
    page.fill("#display_name", "Sales")  # not a server field: nothing more happens
    expect(page.locator("#test-result .settings-changed")).to_have_count(1)
