"""Account management: the employee list, add, edit, (de)activation, the card, and CSV import."""
import io

import pytest

from portal.db import StatementCounter
from portal.models import Employee
from tests.conftest import PASSWORD, page_text

HTMX = {"HX-Request": "true"}


def _form(**overrides):
    values = {"name": "Nina New", "email": "nina@example.com", "position": "Buyer", "department": "Purchasing",
              "role": "employee", "language": "", "password": ""}
    values.update(overrides)
    return values


# ---- the list ----

def test_list_shows_employees_and_counts_them(as_admin, employee, other_employee):
    text = page_text(as_admin.get("/admin/employees"))
    assert "3 employees" in text
    assert "Erik Employee" in text and "olga@example.com" in text and "Support" in text


def test_search_as_you_type_returns_only_the_list_fragment(as_admin, employee, other_employee, rendered):
    response = as_admin.get("/admin/employees?q=support", headers=HTMX)
    assert rendered == ["employees/partial/index.html"]
    assert "HX-Request" in response.headers["Vary"]
    html = response.get_data(as_text=True)
    assert "<html" not in html and 'id="employee-list"' in html
    text = page_text(response)
    assert "Olga Other" in text and "Erik Employee" not in text
    assert "1 employee matches “support”" in text


def test_search_page_without_javascript_keeps_the_query(as_admin, employee, rendered):
    response = as_admin.get("/admin/employees?q=ERIK")
    assert rendered[0] == "employees/index.html"
    html = response.get_data(as_text=True)
    assert 'value="ERIK"' in html and "Erik Employee" in page_text(response)


def test_search_box_is_wired_for_live_search(as_admin):
    html = as_admin.get("/admin/employees").get_data(as_text=True)
    assert 'hx-trigger="input changed delay:250ms, search"' in html
    assert 'hx-push-url="true"' in html and 'hx-get="/admin/employees"' in html


def test_search_by_email_and_department(as_admin, employee, other_employee):
    assert "Erik Employee" in page_text(as_admin.get("/admin/employees?q=erik@", headers=HTMX))
    assert "Olga Other" in page_text(as_admin.get("/admin/employees?q=SUPP", headers=HTMX))


def test_nothing_found_says_so(as_admin):
    assert "No employee matches" in page_text(as_admin.get("/admin/employees?q=zzz", headers=HTMX))


def test_search_text_is_escaped(as_admin):
    html = as_admin.get("/admin/employees?q=<script>alert(1)</script>").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_sorting_by_column_header_links(as_admin, make_employee):
    make_employee(name="Zed", email="a@example.com")
    make_employee(name="Amy", email="z@example.com")
    by_name = page_text(as_admin.get("/admin/employees"))
    assert by_name.index("Amy") < by_name.index("Zed")
    by_email_desc = page_text(as_admin.get("/admin/employees?sort=email&dir=desc"))
    assert by_email_desc.index("Amy") < by_email_desc.index("Zed")
    html = as_admin.get("/admin/employees?sort=email").get_data(as_text=True)
    assert 'href="/admin/employees?sort=email&amp;dir=desc"' in html  # clicking again reverses
    assert 'aria-sort="ascending"' in html


def test_unknown_sort_falls_back_to_name(as_admin, employee):
    assert as_admin.get("/admin/employees?sort=password_hash&page=-3").status_code == 200


@pytest.fixture
def two_per_page(config):
    config["PORTAL_PAGE_SIZE"] = 2
    return config


def test_pagination(two_per_page, client, auth, make_employee):
    boss = make_employee(name="Aaron Boss", role="admin")
    for name in ("Bea", "Cid", "Dan", "Eve"):
        Employee.create(name=name, email=f"{name.lower()}@example.com")
    auth.login(boss)
    first = page_text(client.get("/admin/employees"))
    assert "Page 1 of 3" in first and "Aaron Boss" in first and "Cid" not in first
    last = client.get("/admin/employees?page=3", headers=HTMX)
    assert "Eve" in page_text(last) and "Page 3 of 3" in page_text(last)
    assert 'rel="prev"' in last.get_data(as_text=True)
    assert "Page 3 of 3" in page_text(client.get("/admin/employees?page=99"))


# ---- add and edit ----

def test_add_employee(as_admin, client, auth):
    response = as_admin.post("/admin/employees/new", data=_form(password="long enough password"))
    nina = Employee.by_email("NINA@example.com")
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/employees/{nina.id}"
    assert nina.department == "Purchasing" and nina.role == "employee"
    assert "Employee Nina New added." in page_text(as_admin.get(response.headers["Location"]))
    auth.logout()
    assert auth.login("nina@example.com", "long enough password").status_code == 302


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"email": "ERIK@example.com"}, "email", "An employee with this e-mail already exists."),
        ({"name": "   "}, "name", "This field is required."),
        ({"email": "not an address"}, "email", "Enter a valid e-mail address."),
        ({"position": "x" * 256}, "position", "At most 255 characters."),
        ({"department": "Sales\r\nBcc: x@example.com"}, "department", "Use a single line without control characters."),
        ({"password": "short"}, "password", "At least 10 characters."),
        ({"role": "owner"}, "role", "Not a valid choice."),
    ],
)
def test_bad_input_re_renders_with_the_message_beside_the_field(as_admin, employee, overrides, field, message):
    before = Employee.select().count()
    response = as_admin.post("/admin/employees/new", data=_form(**overrides))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'id="{field}-error"' in html and message in html.split(f'id="{field}-error"')[1][:300]
    assert Employee.select().count() == before


def test_typed_values_come_back_escaped(as_admin):
    html = as_admin.post("/admin/employees/new",
                         data=_form(name='<b onmouseover="x">', email="bad")).get_data(as_text=True)
    assert '<b onmouseover' not in html and "&lt;b onmouseover=" in html


def test_edit_employee(as_admin, employee):
    page = as_admin.get(f"/admin/employees/{employee.id}/edit")
    assert 'value="Erik Employee"' in page.get_data(as_text=True)
    response = as_admin.post(
        f"/admin/employees/{employee.id}/edit",
        data=_form(name="Erik Renamed", email="erik@example.com", role="admin", language="ru"),
    )
    assert response.status_code == 302
    erik = Employee.get_by_id(employee.id)
    assert (erik.name, erik.role, erik.language) == ("Erik Renamed", "admin", "ru")
    assert erik.check_password(PASSWORD)  # an empty password field keeps the password


def test_edit_refuses_another_employees_email(as_admin, employee, other_employee):
    response = as_admin.post(f"/admin/employees/{employee.id}/edit", data=_form(email="Olga@Example.com"))
    assert "An employee with this e-mail already exists." in page_text(response)
    assert Employee.get_by_id(employee.id).email == "erik@example.com"


def test_admin_cannot_demote_self(as_admin, admin):
    response = as_admin.post(f"/admin/employees/{admin.id}/edit", data=_form(email=admin.email, role="employee"))
    assert "You cannot take the admin role from yourself." in page_text(response)
    assert Employee.get_by_id(admin.id).is_admin


# ---- deactivate and reactivate ----

def test_deactivate_asks_first_then_blocks_sign_in(as_admin, employee, client, auth, rendered):
    confirm = as_admin.get(f"/admin/employees/{employee.id}/deactivate", headers=HTMX)
    assert rendered == ["employees/partial/confirm_status.html"]
    assert "Deactivate Erik Employee?" in page_text(confirm)
    assert Employee.get_by_id(employee.id).active
    rendered.clear()
    done = as_admin.post(f"/admin/employees/{employee.id}/deactivate", headers=HTMX)
    assert rendered == ["employees/partial/status.html"]
    assert "Erik Employee can no longer sign in." in page_text(done) and "Reactivate" in page_text(done)
    assert not Employee.get_by_id(employee.id).active
    auth.logout()
    assert auth.login(employee).status_code == 200  # refused


def test_deactivate_without_javascript(as_admin, employee):
    assert "Deactivate Erik Employee?" in page_text(as_admin.get(f"/admin/employees/{employee.id}/deactivate"))
    response = as_admin.post(f"/admin/employees/{employee.id}/deactivate")
    assert response.headers["Location"] == f"/admin/employees/{employee.id}"
    assert "Deactivated" in page_text(as_admin.get(response.headers["Location"]))


def test_reactivate(as_admin, make_employee):
    sleeper = make_employee(active=False)
    as_admin.post(f"/admin/employees/{sleeper.id}/reactivate")
    assert Employee.get_by_id(sleeper.id).active


def test_admin_cannot_deactivate_self(as_admin, admin):
    response = as_admin.post(f"/admin/employees/{admin.id}/deactivate", headers=HTMX)
    assert "You cannot deactivate yourself." in page_text(response)
    assert Employee.get_by_id(admin.id).active


def test_deactivate_needs_csrf(as_admin, employee):
    assert as_admin.post(f"/admin/employees/{employee.id}/deactivate", csrf=False).status_code == 400
    assert Employee.get_by_id(employee.id).active


# ---- the card ----

def test_card_has_aria_tabs_and_the_profile(as_admin, employee, rendered):
    response = as_admin.get(f"/admin/employees/{employee.id}")
    html = response.get_data(as_text=True)
    assert 'role="tablist"' in html and 'role="tab"' in html and 'role="tabpanel"' in html
    assert 'hx-get="/admin/employees/%d/profile"' % employee.id in html
    assert "Manager" in page_text(response) and "Sales" in page_text(response)


def test_card_shows_addresses_tab_only_when_the_mailbox_pages_exist(app, as_admin, employee):
    html = as_admin.get(f"/admin/employees/{employee.id}").get_data(as_text=True)
    assert ("External addresses" in html) == ("mailboxes.employee_addresses" in app.view_functions)


def test_profile_tab_is_a_fragment_for_htmx_and_the_card_otherwise(as_admin, employee, rendered):
    as_admin.get(f"/admin/employees/{employee.id}/profile", headers=HTMX)
    assert rendered == ["employees/partial/profile_tab.html"]
    rendered.clear()
    as_admin.get(f"/admin/employees/{employee.id}/profile")
    assert rendered[0] == "employees/card.html"


def test_boosted_and_history_restore_requests_get_the_page(as_admin, employee, rendered):
    as_admin.get("/admin/employees", headers={**HTMX, "HX-Boosted": "true"})
    as_admin.get("/admin/employees", headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert rendered.count("employees/index.html") == 2


# ---- CSV import ----

def _upload(client, text, name="people.csv"):
    data = {"file": (io.BytesIO(text.encode("utf-8")), name)}
    return client.post("/admin/employees/import", data=data, content_type="multipart/form-data")


def test_import_creates_and_updates_with_a_report(as_admin, employee, rendered):
    response = _upload(
        as_admin,
        "name,email,position,department,role\n"
        "Erik Employee,ERIK@example.com,Lead,Sales,employee\n"
        "Пётр Петров,petr@example.com,Engineer,R&D,admin\n",
    )
    text = page_text(response)
    assert "Imported: 1 created, 1 updated." in text
    assert Employee.by_email("petr@example.com").is_admin
    assert Employee.get_by_id(employee.id).position == "Lead"


def test_import_refuses_a_broken_file_and_imports_nothing(as_admin, employee):
    response = _upload(
        as_admin,
        "name,email,department\n"
        "Good One,good@example.com,Sales\n"
        ",noname@example.com,Sales\n"
        "Bad Mail,not-an-address,Sales\n"
        "Too,many@example.com,values,here\n"
        "Twice,good@example.com,Sales\n",
    )
    text = page_text(response)
    assert "Nothing was imported: 4 lines were refused." in text
    assert "This field is required." in text and "Enter a valid e-mail address." in text
    assert "This line has 4 values; the first line names 3 columns." in text
    assert "This e-mail appears twice in the file." in text
    assert Employee.by_email("good@example.com") is None


def test_import_only_updates_the_columns_the_file_has(as_admin, employee):
    _upload(as_admin, "email,name\nerik@example.com,Erik E.\n")
    erik = Employee.get_by_id(employee.id)
    assert (erik.name, erik.department, erik.position) == ("Erik E.", "Sales", "Manager")


@pytest.mark.parametrize(
    "content, message",
    [
        ("nom,courriel\nx,y\n", "The first line must name the columns"),
        ("name,email\n", "The file has no employees in it."),
    ],
)
def test_import_file_level_problems(as_admin, content, message):
    response = _upload(as_admin, content)
    assert response.status_code == 200 and message in page_text(response)


def test_import_refuses_non_utf8(as_admin):
    data = {"file": (io.BytesIO("name,email\nJosé,j@example.com\n".encode("latin-1")), "p.csv")}
    response = as_admin.post("/admin/employees/import", data=data, content_type="multipart/form-data")
    assert "The file is not UTF-8 text." in page_text(response)


@pytest.fixture
def small_import_config(config):
    config.update(PORTAL_IMPORT_MAX_BYTES=1024 * 1024, PORTAL_IMPORT_MAX_ROWS=100)
    return config


def _people(count):
    return "name,email,department\n" + "".join(f"Person {n},person{n}@example.com,{'x' * 200}\n" for n in range(count))


@pytest.mark.parametrize("rows, message", [
    (5000, "The file is larger than 1 MB. Split it into smaller files."),
    (101, "The file has more than 100 lines. Split it into files of at most 100 lines."),
])
def test_import_limits_are_said_beside_the_file_field(small_import_config, as_admin, rows, message):
    response = _upload(as_admin, _people(rows))
    assert 'id="file-error"' in response.get_data(as_text=True) and message in page_text(response)
    assert Employee.select().where(Employee.email.startswith("person")).count() == 0


def test_an_import_larger_than_any_request_gets_the_import_page(as_admin):
    response = _upload(as_admin, _people(30_000))  # 7 MB
    assert response.status_code == 413 and "<h1>Import employees</h1>" in response.get_data(as_text=True)
    assert "The file is larger than 4 MB." in page_text(response)


@pytest.mark.parametrize(("extra", "message"), [
    ({"note": "x" * 600_000}, "One field of the form was longer than 488 KB: nothing was saved."),
    ({f"extra{number}": "x" for number in range(1001)}, "The form had more than 1000 fields and files"),
])
def test_an_import_form_over_another_limit_says_that_limit_not_the_files(as_admin, extra, message):
    data = {"file": (io.BytesIO(b"name,email\nPetr,petr@example.com\n"), "people.csv"), **extra}
    response = as_admin.post("/admin/employees/import", data=data, content_type="multipart/form-data")
    assert response.status_code == 413 and message in page_text(response)
    assert "The file is larger" not in page_text(response)
    assert Employee.by_email("petr@example.com") is None


def test_the_command_line_import_has_the_same_limits(runner, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(_people(10_001).replace("x" * 200, "Sales"))
    result = runner.invoke(args=["import-employees", str(path)])
    assert result.exit_code == 1 and "The file has more than 10000 lines." in result.output
    assert Employee.select().count() == 0


def test_import_needs_a_file(as_admin):
    response = as_admin.post("/admin/employees/import", data={}, content_type="multipart/form-data")
    assert "Choose a CSV file." in page_text(response)


def test_import_report_escapes_file_content(as_admin):
    html = _upload(as_admin, 'name,email\n<img src=x onerror=alert(1)>,"<script>@x"\n').get_data(as_text=True)
    assert "<img src=x" not in html and "<script>@x" not in html


def test_search_finds_cyrillic_names_in_any_case(as_admin, make_employee):
    make_employee(name="Анна Петрова", department="Продажи")
    make_employee(name="Boris Smith")
    for text in ("анна", "АННА", "продажи"):
        listing = page_text(as_admin.get("/admin/employees", query_string={"q": text}, headers={"HX-Request": "true"}))
        assert "Анна Петрова" in listing and "Boris Smith" not in listing


def test_import_reads_semicolon_csv_as_russian_excel_writes_it(runner, tmp_path):
    csv_file = tmp_path / "people.csv"
    csv_file.write_bytes("\ufeffname;email;department\nМария Иванова;maria@example.com;Юристы\n".encode("utf-8"))
    result = runner.invoke(args=["import-employees", str(csv_file)])
    assert result.exit_code == 0, result.output
    assert Employee.by_email("maria@example.com").department == "Юристы"


def _scan(text):
    """What a plain case-folded substring test finds: the answer the index must give."""
    text = text.strip().casefold()
    return sorted(e.email for e in Employee.select() if text in e.search_text)


def test_search_index_finds_exactly_what_a_substring_scan_finds(app, make_employee):
    from portal.models.people import TRIGRAM

    people = [make_employee(name=name, department=dept) for name, dept in (
        ("Анна Петрова", "Продажи"), ("Anna Smith", "Sales"), ('Quote "Q" Person', "Legal"), ("Boris", "Логистика"))]
    people[3].name = "Борис Иванов"  # a rename must reach the index through its trigger
    people[3].save()
    people[1].delete_instance()  # and so must a delete
    for text in ("анна", "АННА", "Sales", "@example", '"q"', "иван", "бор", "an", "zzz", "ПРОДАЖИ"):
        found = sorted(e.email for e in Employee.search(text))
        assert found == _scan(text), text
    assert len("иван") >= TRIGRAM  # the index, not the scan, answered most of these


def test_a_search_pages_through_its_matches_in_two_queries_whichever_way_it_looks(app, make_employee):
    from portal.models.people import FEW, search_text_of
    from portal.people import list_employees

    for number in range(30):
        make_employee(name=f"Seller {number:02d}", department="Sales")
    make_employee(name="Lena Lawyer", department="Legal")
    # Enough employees at one domain that a search for it scans instead of reading the index.
    Employee.insert_many([{"name": f"Zed {n:04d}", "email": f"zed{n}@bulk.example.org", "department": "Bulk",
                           "search_text": search_text_of(f"Zed {n:04d}", f"zed{n}@bulk.example.org", "Bulk")}
                          for n in range(FEW + 5)]).execute()
    for text, total, last_page_names in (
            ("sales", 30, ["Seller 25", "Seller 26", "Seller 27", "Seller 28", "Seller 29"]),  # the index
            ("bulk.example", FEW + 5, [f"Zed {n:04d}" for n in range(FEW, FEW + 5)])):  # a scan
        pages = -(-total // 25)
        with StatementCounter() as queries:
            listing = list_employees(text, size=25, page=pages)
        assert listing.total == total and listing.pages == pages and listing.page == pages, text
        assert [e.name for e in listing.rows] == last_page_names, text
        assert queries.count == 2, text  # the total comes with the choice of index or scan (a count on PostgreSQL)


# ---- ending an employee's sessions ----

def test_deactivation_ends_sessions_for_good(another_browser, as_admin, employee):
    office, home = another_browser(employee), another_browser(employee, remember=True)
    done = as_admin.post(f"/admin/employees/{employee.id}/deactivate", headers=HTMX)
    # The card's count of browsers is brought up to date beside the status it replaces.
    assert 'id="employee-sign-out-form" class="row" hx-swap-oob="true"' in done.get_data(as_text=True)
    assert "Signed in on 0 browsers." in page_text(done)
    as_admin.post(f"/admin/employees/{employee.id}/reactivate")
    assert office.get("/").status_code == 302 and home.get("/").status_code == 302  # reactivation brings none back


def test_admin_signs_an_employee_out_everywhere(another_browser, as_admin, admin, employee):
    office, home = another_browser(employee), another_browser(employee, remember=True)
    card = page_text(as_admin.get(f"/admin/employees/{employee.id}"))
    assert "Signed in on 2 browsers." in card
    response = as_admin.post(f"/admin/employees/{employee.id}/sign-out")
    assert response.status_code == 302
    assert "Erik Employee is signed out of 2 browsers." in page_text(as_admin.get(response.headers["Location"]))
    assert office.get("/").status_code == 302 and home.get("/").status_code == 302
    assert "Signed in on 0 browsers." in page_text(as_admin.get(f"/admin/employees/{employee.id}"))
    assert another_browser(employee)  # the employee may sign in again


def test_admin_sign_out_of_oneself_keeps_the_admins_own_session(another_browser, as_admin, admin):
    elsewhere = another_browser(admin)
    as_admin.post(f"/admin/employees/{admin.id}/sign-out")
    assert elsewhere.get("/").status_code == 302 and as_admin.get("/").status_code == 200


def test_signing_an_employee_out_is_for_admins_with_the_form_token(another_browser, as_admin, employee, other_employee):
    office = another_browser(employee)
    assert as_admin.post(f"/admin/employees/{employee.id}/sign-out", csrf=False).status_code == 400
    outsider = another_browser(other_employee)
    assert outsider.post(f"/admin/employees/{employee.id}/sign-out").status_code == 404  # as if not there
    assert office.get("/").status_code == 200


def test_a_new_password_from_an_admin_ends_the_employees_sessions(another_browser, as_admin, employee):
    office = another_browser(employee, remember=True)
    response = as_admin.post(f"/admin/employees/{employee.id}/edit", data={
        "name": employee.name, "email": employee.email, "role": "employee", "language": "",
        "password": "a fresh passphrase"})
    assert response.status_code == 302
    assert office.get("/").status_code == 302
