"""Where people see that a provider stops taking a mailbox's password: the lists' badge, the edit form's notice with
its one button, the admin's home line and the API. The day the pages judge by is pinned (never the real one), so
the words hold in any year."""
from __future__ import annotations

import datetime
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from portal import password_ending
from portal.db import StatementCounter
from portal.oauth import grants
from portal.oauth.client import Tokens
from tests.conftest import page_text
from tests.test_password_ending import microsoft_app

BEFORE = datetime.date(2026, 12, 7)
AFTER = datetime.date(2027, 1, 5)


@pytest.fixture
def pin_today(monkeypatch):
    """pin_today(day): the pages judge by ``day``; 7 December 2026 unless a test pins another."""
    def pin(day):
        monkeypatch.setattr(password_ending, "today", lambda: day)
    pin(BEFORE)
    return pin


@pytest.fixture
def at_m365(make_mailbox, pin_today):
    """at_m365(owner=None, address=...): a mailbox on a company domain hosted at Microsoft 365, with a password."""
    def make(owner=None, address="sales@acme.example", **more):
        return make_mailbox(owner, address=address, smtp_host="smtp.office365.com", smtp_port=587, **more)
    return make


def _signed_in_with_microsoft(mailbox):
    grants.new_grant("microsoft", mailbox.address, "XOAUTH2", Tokens("at", "rt", 3600), mailbox=mailbox)
    return mailbox


def _badges(response):
    return re.findall(r'<a class="badge badge-warn password-ending" href="([^"]+)"', response.get_data(as_text=True))


# ---------------------------------------------------------------- the lists

def test_my_addresses_marks_each_password_mailbox_at_microsoft_and_links_to_its_form(as_employee, employee, at_m365,
                                                                                     make_mailbox, pin_today):
    password = at_m365(employee, address="erik@acme.example")
    _signed_in_with_microsoft(at_m365(employee, address="erik.oauth@acme.example", password=""))
    make_mailbox(employee, address="erik@gmail.com", smtp_host="smtp.gmail.com")

    response = as_employee.get("/my/addresses")
    assert _badges(response) == [f"/mailboxes/{password.id}/edit"]
    assert re.search(r"erik@acme\.example .*Password sign-in ends 31 Dec 2026", page_text(response))
    pin_today(AFTER)
    assert "Password sign-in off since 31 Dec 2026" in page_text(as_employee.get("/my/addresses"))


def test_my_addresses_in_russian(client, auth, make_employee, at_m365):
    anna = make_employee(language="ru", email="anna.ru@example.com")
    at_m365(anna, address="anna@acme.example")
    auth.login(anna)
    assert "Вход по паролю отключается 31 дек. 2026" in page_text(client.get("/my/addresses"))


def test_an_employee_sees_only_the_warnings_of_their_own_mailboxes(as_employee, employee, other_employee, at_m365):
    others = at_m365(other_employee, address="olga@acme.example")
    response = as_employee.get("/my/addresses")
    assert _badges(response) == [] and "olga@acme.example" not in response.get_data(as_text=True)
    assert as_employee.get(f"/mailboxes/{others.id}/edit").status_code == 404
    assert "Microsoft" not in page_text(as_employee.get("/"))  # the home line is the admins'


def test_outgoing_messages_and_an_employees_addresses_carry_the_badge(as_admin, employee, at_m365):
    company = at_m365(scope="company", address="info@acme.example")
    personal = at_m365(employee, address="erik@acme.example")
    assert _badges(as_admin.get("/admin/mail/outgoing")) == [f"/mailboxes/{company.id}/edit"]
    assert _badges(as_admin.get(f"/admin/mail/employees/{employee.id}")) == [f"/mailboxes/{personal.id}/edit"]


def test_a_list_costs_the_same_statements_with_two_or_eight_warnings(as_admin, at_m365):
    microsoft_app()

    def add(count):
        for n in range(count):
            at_m365(scope="company", address=f"box{n}-{count}@acme.example")

    def statements():
        with StatementCounter() as counted:
            response = as_admin.get("/admin/mail/outgoing")
        return counted.count, len(_badges(response))

    add(2)
    few, badges = statements()
    assert badges == 2
    add(6)
    many, badges = statements()
    assert (many, badges) == (few, 8)


# ---------------------------------------------------------------- the edit form

def test_the_form_says_what_happens_and_when_and_offers_sign_in_with_microsoft(as_employee, employee, at_m365):
    microsoft_app()
    mailbox = at_m365(employee, address="erik@acme.example")
    response = as_employee.get(f"/mailboxes/{mailbox.id}/edit")
    text = page_text(response)
    assert ("Microsoft 365 (Exchange Online) stops accepting this address's password on 31 December 2026. "
            "At the end of December 2026 Microsoft turns password sign-in") in text
    assert "Switch it to “Sign in with Microsoft”" in text
    notice = response.get_data(as_text=True).split('id="password-ending"')[1].split("</div>")[0]
    assert 'formaction="/mailboxes/sign-in/microsoft"' in notice and "Sign in with Microsoft</button>" in notice

    # The button carries the form to Microsoft's consent page for this address.
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.get_data(as_text=True)))
    form.update(address=mailbox.address, smtp_host=mailbox.smtp_host, smtp_port="587", smtp_security="starttls")
    went = as_employee.post("/mailboxes/sign-in/microsoft", data=form, headers={"HX-Request": "true"})
    target = urlsplit(went.headers["HX-Redirect"])
    assert (target.netloc, target.path) == ("login.microsoftonline.com", "/organizations/oauth2/v2.0/authorize")
    assert parse_qs(target.query)["login_hint"] == ["erik@acme.example"]


def test_a_microsoft_365_password_may_stay_chosen_until_its_owner_switches_but_an_outlook_com_one_may_not(
        as_employee, employee, at_m365, make_mailbox):
    """Microsoft 365's administrators may turn passwords back on for a while, so its form keeps "Use a password
    instead" (chosen for a mailbox that has one), and editing another field needs no sign-in; Outlook.com refuses
    every password, so its form offers the sign-in alone."""
    def sign_in_choice(mailbox):
        page = as_employee.get(f"/mailboxes/{mailbox.id}/edit").get_data(as_text=True)
        return page.split('class="oauth-choice"')[1].split("</div>")[0]

    microsoft_app()
    choice = sign_in_choice(at_m365(employee, address="erik@acme.example"))
    assert 'value="password" checked' in choice and "Use a password instead" in choice
    choice = sign_in_choice(make_mailbox(employee, address="erik@outlook.com", smtp_host="smtp-mail.outlook.com"))
    assert 'value="oauth" checked' in choice and "Use a password instead" not in choice


def test_without_the_microsoft_app_an_admin_is_sent_to_sign_in_providers(as_admin, at_m365, pin_today):
    pin_today(AFTER)
    mailbox = at_m365(scope="company")
    response = as_admin.get(f"/mailboxes/{mailbox.id}/edit")
    text = page_text(response)
    assert ("Microsoft 365 (Exchange Online) turned password sign-in off on 31 December 2026, and this address "
            "still uses a password.") in text
    assert "register the portal's app first. Account management → Sign-in providers" in text
    notice = response.get_data(as_text=True).split('id="password-ending"')[1].split("</div>")[0]
    assert 'href="/admin/sign-in-providers"' in notice and "formaction" not in notice


def test_without_the_microsoft_app_an_employee_is_told_to_ask_an_admin(client, auth, make_employee, at_m365):
    olga = make_employee(language="ru", email="olga.ru@example.com")
    mailbox = at_m365(olga, address="olga@acme.example")
    auth.login(olga)
    response = client.get(f"/mailboxes/{mailbox.id}/edit")
    text = page_text(response)
    assert ("Microsoft 365 (Exchange Online) перестаёт принимать пароль этого адреса 31 декабря 2026.") in text
    assert "Вход через Microsoft на портале ещё не настроен: попросите администратора" in text
    assert "/admin/sign-in-providers" not in response.get_data(as_text=True)


def test_a_mailbox_signed_in_with_microsoft_gets_no_notice(as_employee, employee, at_m365):
    mailbox = _signed_in_with_microsoft(at_m365(employee, address="erik@acme.example", password=""))
    assert 'id="password-ending"' not in as_employee.get(f"/mailboxes/{mailbox.id}/edit").get_data(as_text=True)


# ---------------------------------------------------------------- the admin's home page

def test_the_admin_home_page_counts_the_mailboxes_per_provider(as_admin, admin, employee, at_m365, make_mailbox):
    first = at_m365(scope="company", address="info@acme.example")
    at_m365(employee, address="erik@acme.example")
    _signed_in_with_microsoft(at_m365(scope="company", address="done@acme.example", password=""))
    make_mailbox(employee, address="erik@hotmail.com", smtp_host="smtp-mail.outlook.com")
    response = as_admin.get("/")
    text = page_text(response)
    assert ("1 mailbox still signs in with a password, though Outlook.com (Hotmail, Live) turned password sign-in "
            "off on 16 September 2024.") in text
    assert ("2 mailboxes still send with a password Microsoft 365 (Exchange Online) stops accepting on "
            "31 December 2026. Open each one and sign it in with the provider: erik@acme.example , "
            "info@acme.example") in text
    assert f'href="/mailboxes/{first.id}/edit">info@acme.example</a>' in response.get_data(as_text=True)
    assert "done@acme.example" not in text

    admin.language = "ru"
    admin.save()
    text = page_text(as_admin.get("/"))
    assert ("2 ящика всё ещё подключены по паролю, а Microsoft 365 (Exchange Online) перестаёт принимать пароли "
            "31 декабря 2026.") in text


def test_the_admin_home_page_says_nothing_when_no_mailbox_is_affected(as_admin, make_mailbox):
    make_mailbox(scope="company", address="info@gmail.com", smtp_host="smtp.gmail.com")
    assert "password-ending-line" not in as_admin.get("/").get_data(as_text=True)


# ---------------------------------------------------------------- the API

def test_the_api_says_the_day_password_sign_in_ends(api_employee, employee, at_m365, make_mailbox):
    password = at_m365(employee, address="erik@acme.example")
    oauth = _signed_in_with_microsoft(at_m365(employee, address="erik.oauth@acme.example", password=""))
    outlook = make_mailbox(employee, address="erik@outlook.com", smtp_host="smtp-mail.outlook.com")
    gmail = make_mailbox(employee, address="erik@gmail.com", smtp_host="smtp.gmail.com")
    listed = {m["id"]: m["password_sign_in_ends"] for m in api_employee.get("/mailboxes").get_json()["mailboxes"]}
    assert listed == {password.id: "2026-12-31", oauth.id: None, outlook.id: "2024-09-16", gmail.id: None}
    one = api_employee.get(f"/mailboxes/{password.id}", headers={"Accept-Language": "ru"}).get_json()
    assert one["password_sign_in_ends"] == "2026-12-31"


def test_the_openapi_document_describes_the_day(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    described = document["components"]["schemas"]["Mailbox"]["properties"]["password_sign_in_ends"]
    assert described["type"] == ["string", "null"] and described["format"] == "date"


def test_the_admin_home_names_ten_addresses_and_counts_the_rest(as_admin, at_m365):
    for number in range(12):
        at_m365(scope="company", address=f"box{number:02d}@acme.example")
    line = page_text(as_admin.get("/")).split("Open each one")[1]
    assert "box09@acme.example" in line and "box10@acme.example" not in line
    assert "and 2 more, each marked the same way on its list." in line
