"""Invitations: an admin copies a set-password link; it works once, for 7 days, for that employee only."""
import re
import time

import pytest

from portal.invitations import InvitationInvalid, invitation_token, invited_employee
from portal.models import Employee
from tests.conftest import PASSWORD, page_text


@pytest.fixture
def imported(make_employee):
    """An employee imported from CSV: no password, so they cannot sign in."""
    employee = make_employee(name="Ivan Imported", email="ivan@example.com")
    employee.password_hash = ""
    employee.save()
    return employee


def _link_path(html):
    return re.search(r'value="http://[^/"]+(/set-password/[^"]+)"', html).group(1)


def test_a_token_names_its_employee_until_a_password_is_set(app, imported):
    token = invitation_token(imported, app.secret_key)
    assert invited_employee(token, app.secret_key).id == imported.id
    imported.set_password("chosen at last 1")
    imported.save()
    with pytest.raises(InvitationInvalid) as used:
        invited_employee(token, app.secret_key)
    assert used.value.reason == "used"


def test_a_token_expires_and_cannot_be_forged(app, imported):
    token = invitation_token(imported, app.secret_key)
    time.sleep(1.1)
    with pytest.raises(InvitationInvalid) as expired:
        invited_employee(token, app.secret_key, max_age=0)
    assert expired.value.reason == "expired"
    with pytest.raises(InvitationInvalid) as forged:
        invited_employee(token, "another key")
    assert forged.value.reason == "invalid"


def test_admin_copies_a_link_and_the_employee_sets_a_password_once(as_admin, client, auth, imported):
    card = page_text(as_admin.get(f"/admin/employees/{imported.id}"))
    assert "Ivan Imported cannot sign in yet" in card
    answer = as_admin.post(f"/admin/employees/{imported.id}/invitation", headers={"HX-Request": "true"})
    path = _link_path(answer.get_data(as_text=True))
    assert "Works once, for 7 days" in page_text(answer)
    auth.logout()

    page = client.get(path)
    assert page.status_code == 200 and "invited to the portal as ivan@example.com" in page_text(page)
    refused = client.post(path, data={"new_password": "short", "confirm_password": "short"})
    assert "At least 10 characters" in page_text(refused)
    assert not Employee.get_by_id(imported.id).password_hash  # nothing half-saved
    done = client.post(path, data={"new_password": "my own password", "confirm_password": "my own password"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/sign-in")
    assert Employee.get_by_id(imported.id).check_password("my own password")

    again = client.get(path)
    assert again.status_code == 410 and "used already" in page_text(again)
    signed_in = client.post("/sign-in", data={"email": "ivan@example.com", "password": "my own password"})
    assert signed_in.status_code == 302


def test_links_for_the_ticked_or_everyone_who_cannot_sign_in(as_admin, admin, imported, make_employee):
    second = make_employee(name="Petr Imported", email="petr@example.com")
    second.password_hash = ""
    second.save()
    listing = as_admin.get("/admin/employees").get_data(as_text=True)
    assert f'value="{imported.id}" form="invite-form"' in listing
    assert f'value="{admin.id}" form="invite-form"' not in listing  # can sign in: nothing to tick

    everyone = as_admin.post("/admin/employees/invitations")
    text = page_text(everyone)
    assert "Ivan Imported" in text and "Petr Imported" in text and "Anna Admin" not in text
    ticked = page_text(as_admin.post("/admin/employees/invitations", data={"employee": [str(second.id)]}))
    assert "Petr Imported" in ticked and "Ivan Imported" not in ticked


def test_only_admins_make_links_and_in_russian_the_page_speaks_russian(client, auth, employee, imported, app):
    auth.login(employee, PASSWORD)
    assert client.post(f"/admin/employees/{imported.id}/invitation").status_code == 404  # admin pages hide
    auth.logout()
    token = invitation_token(imported, app.secret_key)
    page = app.test_client().get(f"/set-password/{token}", headers={"Accept-Language": "ru"})
    assert "Задайте пароль" in page_text(page)
    assert client.get("/set-password/not-a-token").status_code == 404
