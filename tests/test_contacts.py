"""Contacts: live search, add and edit, CSV import (all rows or none), and the picker on New letter."""
import io
import threading
import time

import pytest
from flask.testing import FlaskClient

from portal.api.tokens import create_token
from portal.contacts import import_contacts
from portal.models import Contact
from tests.conftest import PASSWORD, page_text


def test_add_edit_and_search_as_you_type(as_employee):
    response = as_employee.post("/contacts/new", data={"name": "Ivan Petrov", "email": "Ivan@Example.com",
                                                       "organisation": "Rosatom", "notes": "Met at the fair"})
    assert response.status_code == 302
    contact = Contact.get()
    assert contact.email == "ivan@example.com"
    as_employee.post(f"/contacts/{contact.id}/edit", data={"name": "Ivan P.", "email": "ivan@example.com",
                                                           "organisation": "Rosatom", "notes": ""})
    assert Contact.get().name == "Ivan P."
    Contact.create(name="Anna Smirnova", email="anna@example.org", organisation="Gazprom")

    fragment = as_employee.get("/contacts?q=rosat", headers={"HX-Request": "true"})
    assert 'id="contact-list"' in fragment.get_data(as_text=True) and "<html" not in fragment.get_data(as_text=True)
    assert "Ivan P." in page_text(fragment) and "Anna" not in page_text(fragment)


def test_a_duplicate_or_broken_contact_is_refused_beside_its_field(as_employee):
    Contact.create(email="ivan@example.com")
    duplicate = as_employee.post("/contacts/new", data={"email": "IVAN@example.com"})
    assert "already exists" in page_text(duplicate)
    injected = as_employee.post("/contacts/new", data={"name": "Evil\r\nBcc: x@example.com", "email": "e@example.com"})
    assert "single line" in page_text(injected)
    assert Contact.select().count() == 1


def test_csv_import_creates_and_updates_all_or_nothing(as_employee):
    Contact.create(email="known@example.com", name="Old name")
    good = "name,email,organisation\nNew Person,new@example.com,Acme\nNew name,known@example.com,Acme\n"
    response = as_employee.post("/contacts/import", data={"file": (io.BytesIO(good.encode()), "contacts.csv")},
                                content_type="multipart/form-data", follow_redirects=True)
    assert "1 new, 1 updated" in page_text(response)
    assert Contact.by_email("known@example.com").name == "New name"

    bad = "name,email\nSomeone,someone@example.com\nBroken,not-an-address\n"
    response = as_employee.post("/contacts/import", data={"file": (io.BytesIO(bad.encode()), "contacts.csv")},
                                content_type="multipart/form-data")
    assert "Nothing was imported" in page_text(response) and "not-an-address" in page_text(response)
    assert Contact.by_email("someone@example.com") is None


def test_import_reads_semicolons_and_refuses_unknown_columns(app):
    report = import_contacts("email;name\na@example.com;A\n".encode("utf-8-sig"))
    assert report.ok and Contact.by_email("a@example.com").name == "A"
    assert import_contacts(b"email,phone\na@example.com,1\n").error


def test_the_picker_offers_to_and_cc_buttons(as_employee):
    Contact.create(name="Ivan Petrov", email="ivan@example.com")
    html = as_employee.get("/contacts/pick?q=ivan", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-add-recipient="to"' in html and 'data-address="Ivan Petrov &lt;ivan@example.com&gt;"' in html


def _csv_file(rows, *, start=0, notes=""):
    lines = ["name,email,organisation,notes"]
    lines += [f"Contact {number},contact{number}@example.com,Org,{notes}" for number in range(start, start + rows)]
    return io.BytesIO(("\n".join(lines) + "\n").encode())


def _import(client, file):
    return client.post("/contacts/import", data={"file": (file, "contacts.csv")}, content_type="multipart/form-data")


@pytest.fixture
def one_megabyte_config(config):
    config.update(PORTAL_IMPORT_MAX_BYTES=1024 * 1024, PORTAL_MAX_REQUEST_BYTES=2 * 1024 * 1024)
    return config


@pytest.mark.parametrize("megabytes", [1.5, 3])  # over the import's limit; over any request's too
def test_an_oversized_import_is_refused_beside_the_file_field(one_megabyte_config, as_employee, megabytes):
    notes = "x" * 200
    rows = int(megabytes * 1024 * 1024 / 240)
    response = _import(as_employee, _csv_file(rows, notes=notes))
    assert response.status_code in (200, 413)
    html = response.get_data(as_text=True)
    assert 'id="file-error"' in html and "The file is larger than 1 MB." in page_text(response)
    assert "<h1>Import contacts</h1>" in html  # the import page, not a bare error page
    assert Contact.select().count() == 0


def test_a_file_larger_than_any_request_is_refused_unread(as_employee):
    response = _import(as_employee, io.BytesIO(b"email\n" + b"a@example.com\n" * 500_000))  # 7 MB
    assert response.status_code == 413
    assert "The file is larger than 4 MB." in page_text(response) and 'id="file-error"' in response.get_data(True)


@pytest.mark.parametrize(("extra", "message"), [
    ({"note": "x" * 600_000}, "One field of the form was longer than 488 KB: nothing was saved."),
    ({f"extra{number}": "x" for number in range(1001)}, "The form had more than 1000 fields and files"),
])
def test_an_import_form_over_another_limit_says_that_limit_not_the_files(as_employee, extra, message):
    data = {"file": (_csv_file(3), "contacts.csv"), **extra}
    response = as_employee.post("/contacts/import", data=data, content_type="multipart/form-data")
    assert response.status_code == 413 and message in page_text(response)
    assert "The file is larger" not in page_text(response)
    assert Contact.select().count() == 0


def test_an_import_of_too_many_lines_is_refused(as_employee):
    response = _import(as_employee, _csv_file(10_001))
    assert 'id="file-error"' in response.get_data(as_text=True)
    assert "The file has more than 10000 lines." in page_text(response)
    assert Contact.select().count() == 0


def test_other_writers_get_in_while_a_large_import_runs(app, as_employee, other_employee):
    colleague = app.test_client()
    colleague.post("/sign-in", data={"email": other_employee.email, "password": PASSWORD})
    answers = {}
    importing = threading.Thread(target=lambda: answers.update(imported=_import(as_employee, _csv_file(10_000))))
    importing.start()
    deadline = time.monotonic() + 120
    while Contact.select().count() == 0 and importing.is_alive() and time.monotonic() < deadline:
        time.sleep(0.002)
    seen_midway = Contact.select().count()
    saved = colleague.post("/contacts/new", data={"email": "meanwhile@example.com", "name": "Meanwhile"})
    # The API too: a token's first use writes when it was last used.
    api = FlaskClient(app, app.response_class, use_cookies=False).get(
        "/api/v1/me", headers={"Authorization": f"Bearer {create_token(other_employee, 'CRM')[1]}"})
    importing.join(120)
    assert api.status_code == 200
    # The import commits batch by batch: part of it was visible while it ran, and the colleague's save
    # went through between two batches instead of waiting for (or failing behind) the whole file.
    assert 0 < seen_midway < 10_000
    assert saved.status_code == 302 and Contact.by_email("meanwhile@example.com") is not None
    assert answers["imported"].status_code == 302
    assert Contact.select().count() == 10_001
