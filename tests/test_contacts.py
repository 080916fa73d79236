"""Contacts: live search, add and edit, CSV import (all rows or none), and the picker on New letter."""
import io

from portal.contacts import import_contacts
from portal.models import Contact
from tests.conftest import page_text


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
