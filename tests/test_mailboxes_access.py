"""Every external-address URL (pages, fragments and form posts) as anonymous, the owner, another employee and an admin.

Another employee's mailbox, or a company mailbox one may not manage, answers 404 exactly like a
missing one; anonymous visitors are sent to sign in.
"""
import re

import pytest

from portal.models import Mailbox

# (method, url, owner, other employee, admin); {own} is the owner's mailbox, {company} a company one
# shared with the other employee's department, {missing} an id that does not exist.
URLS = [
    ("GET", "/admin/mail/outgoing", 404, 404, 200),
    ("POST", "/admin/mail/outgoing/employees-may-add", 404, 404, 302),
    ("GET", "/admin/mail/employees", 404, 404, 200),
    ("GET", "/admin/mail/employees/{owner}", 404, 404, 200),
    ("GET", "/admin/mail/employees/{missing}", 404, 404, 404),
    ("GET", "/admin/mail/senders", 404, 404, 200),
    ("GET", "/admin/mail/senders/{owner}/{project}", 404, 404, 200),
    ("GET", "/admin/mail/audit", 404, 404, 200),
    ("GET", "/my/addresses", 200, 200, 200),
    ("GET", "/mailboxes/new", 200, 200, 200),
    ("GET", "/mailboxes/new?scope=company", 200, 200, 200),
    ("POST", "/mailboxes/provider", 200, 200, 200),
    ("POST", "/mailboxes/trust", 200, 200, 200),
    ("POST", "/mailboxes/default-hint", 200, 200, 200),
    ("POST", "/mailboxes/test", 200, 200, 200),
    ("GET", "/mailboxes/{own}/edit", 200, 404, 200),
    ("POST", "/mailboxes/{own}/edit", 200, 404, 200),
    ("POST", "/mailboxes/{own}/test", 200, 404, 200),
    ("POST", "/mailboxes/{own}/pause", 302, 404, 302),
    ("POST", "/mailboxes/{own}/resume", 302, 404, 302),
    ("GET", "/mailboxes/{company}/edit", 404, 404, 200),
    ("POST", "/mailboxes/{company}/edit", 404, 404, 200),
    ("POST", "/mailboxes/{company}/test", 404, 404, 200),
    ("POST", "/mailboxes/{company}/pause", 404, 404, 302),
    ("GET", "/mailboxes/{missing}/edit", 404, 404, 404),
    ("POST", "/mailboxes/{missing}/test", 404, 404, 404),
    ("POST", "/mailboxes/{missing}/delete", 404, 404, 404),
    # Deleting last: the rows are gone afterwards.
    ("POST", "/mailboxes/{own}/delete", 302, 404, 302),
    ("POST", "/mailboxes/{company}/delete", 404, 404, 302),
]

WHO = ("anonymous", "owner", "other", "admin")


def _post_data(url):
    if url.endswith("/trust"):
        return {"side": "smtp", "fingerprint": "ab" * 32}
    if url.endswith("/default-hint"):
        return {"is_default": "y"}
    # A test against a port nothing allows: the account check refuses at once, without network.
    return {"address": "x@example.com", "smtp_host": "192.0.2.1", "smtp_port": "9", "smtp_security": "ssl"}


@pytest.fixture
def world(employee, other_employee, make_project, make_mailbox):
    project = make_project("Alpha")
    own = make_mailbox(employee, address="erik.own@example.com")
    company = make_mailbox(address="support@example.com", access_everyone=False, access_departments=["Support"])
    return {"owner": employee.id, "own": own.id, "company": company.id, "project": project.id, "missing": 987654}


@pytest.mark.parametrize("who", WHO)
def test_every_url_for_everyone(client, auth, admin, employee, other_employee, world, who):
    """One signed-in session per person walks the whole table, pages and fragments (HX-Request) alike."""
    if who != "anonymous":
        auth.login({"owner": employee, "other": other_employee, "admin": admin}[who])
    for method, url, owner_status, other_status, admin_status in URLS:
        path = url.format(**world)
        expected = {"anonymous": 302, "owner": owner_status, "other": other_status, "admin": admin_status}[who]
        for headers in ({"HX-Request": "true"}, {}):
            if method == "GET":
                response = client.get(path, headers=headers)
            else:
                response = client.post(path, data=_post_data(path), headers=headers)
            if who == "anonymous" and headers:
                # htmx is told to load the sign-in page (a 302 would be followed inside the fragment).
                assert response.status_code == 401 and "/sign-in" in response.headers["HX-Redirect"], path
                continue
            assert response.status_code == expected, (who, method, path, headers, response.status_code)
            if who == "anonymous":
                assert "/sign-in" in response.headers["Location"]
            if expected == 404:
                assert "There is nothing here, or you may not see it." in response.get_data(as_text=True)
            if path.endswith("/delete") and expected == 302:
                break  # it is gone now


def without_csrf_token(page: bytes) -> bytes:
    return re.sub(rb'("X-CSRFToken": "|name="csrf_token" value=")[^"]+', rb"\1", page)


def test_a_404_for_someone_elses_mailbox_reads_exactly_like_a_missing_one(client, auth, other_employee, world):
    auth.login(other_employee)

    theirs = client.get(f"/mailboxes/{world['own']}/edit")
    missing = client.get(f"/mailboxes/{world['missing']}/edit")

    assert theirs.status_code == missing.status_code == 404
    # Byte for byte, but for the CSRF token, which carries the second it was signed in (two pages a second apart
    # differ there whatever they are about).
    assert without_csrf_token(theirs.get_data()) == without_csrf_token(missing.get_data())
    assert Mailbox.get_by_id(world["own"]).active


def test_the_default_hint_does_not_reveal_another_employees_mailboxes(client, auth, other_employee, world):
    auth.login(other_employee)

    response = client.post("/mailboxes/default-hint", data={"mailbox_id": world["own"], "is_default": "y"})

    assert response.status_code == 404
