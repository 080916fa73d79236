"""/api/v1/mailboxes against real aiosmtpd and Dovecot: the account test before saving,
the pages' rules, no secrets out."""
import json
import os

import pytest

from portal import mailboxes as service
from portal.models import AuditEvent, Mailbox
from tests.fixtures.mailboxes import MAILBOX_PASSWORD
from tests.test_mailboxes import finish

pytestmark = pytest.mark.usefixtures("api_mail")


def mailbox_body(server, **overrides):
    """A new mailbox at the test SMTP server, as an API client sends it."""
    body = {
        "address": server.username,
        "display_name": "Sales team",
        "smtp": {"host": "localhost", "port": server.port, "security": server.security, "username": server.username,
                 "password": server.password},
    }
    body.update(overrides)
    return body


def fields_of(response):
    return response.get_json()["error"]["fields"]


# ---------------------------------------------------------------- creating: the test first

def test_an_admin_adds_a_company_mailbox_that_passes_its_test(api_admin, admin, smtp_server, dovecot, mail_user,
                                                              make_project):
    make_project("Alpha")
    body = mailbox_body(smtp_server, scope="company", projects=["Alpha"], receive_replies=True,
                        incoming={"protocol": "pop3", "host": "localhost", "port": dovecot.ports["pop3s"],
                                  "security": "ssl", "username": mail_user.address, "password": mail_user.password},
                        access={"everyone": False, "departments": ["Sales"]})
    response = api_admin.post("/mailboxes", json=body)
    assert response.status_code == 201, response.get_json()
    found = response.get_json()
    assert found["scope"] == "company" and found["owner"] is None and found["address"] == smtp_server.username
    assert found["smtp"]["password_set"] is True and found["incoming"]["password_set"] is True
    assert found["incoming"]["protocol"] == "pop3" and found["projects"] == ["Alpha"]
    assert found["access"] == {"everyone": False, "employees": [], "departments": ["Sales"]}
    assert found["last_passed_test_at"] and found["active"] is True and found["manageable"] is True
    text = response.get_data(as_text=True)
    assert smtp_server.password not in text and mail_user.password not in text
    assert response.headers["Location"].endswith(f"/api/v1/mailboxes/{found['id']}")
    stored = Mailbox.get_by_id(found["id"])
    assert stored.to_settings().smtp.password == smtp_server.password
    assert smtp_server.password not in stored.smtp_password  # encrypted at rest
    assert [e.action for e in AuditEvent.select().order_by(AuditEvent.id)] == ["tested", "created"]


def test_a_failing_test_answers_422_with_the_result_and_saves_nothing(api_admin, smtp_server):
    response = api_admin.post("/mailboxes", json=mailbox_body(
        smtp_server, scope="company", smtp={"host": "localhost", "port": smtp_server.port, "security": "starttls",
                                            "username": smtp_server.username, "password": "wrong-password"}))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "account_test_failed"
    assert error["test"]["ok"] is False and error["test"]["problem"]["code"] == "auth_failed"
    assert any(stage["name"] == "smtp.login" and not stage["ok"] for stage in error["test"]["stages"])
    assert "wrong-password" not in response.get_data(as_text=True)
    assert Mailbox.select().count() == 0


def test_the_failed_tests_advice_follows_accept_language(api_admin, smtp_server):
    body = mailbox_body(smtp_server, smtp={"host": "localhost", "port": smtp_server.port, "security": "starttls",
                                           "username": smtp_server.username, "password": "wrong"})
    response = api_admin.post("/mailboxes", json=body, headers={"Accept-Language": "ru"})
    problem = response.get_json()["error"]["test"]["problem"]
    assert any("а" <= ch <= "я" for ch in problem["title"])


def test_an_employee_adds_their_own_mailbox(api_employee, employee, smtp_server):
    response = api_employee.post("/mailboxes", json=mailbox_body(smtp_server, default=True))
    assert response.status_code == 201, response.get_json()
    found = response.get_json()
    assert found["scope"] == "employee" and found["owner"] == "erik@example.com" and found["default"] is True
    assert found["access"] is None


@pytest.mark.parametrize("extra", [{"scope": "company"}, {"owner": "olga@example.com"},
                                   {"owner": "nobody@example.com"}])
def test_an_employee_cannot_add_company_or_someone_elses_mailbox(api_employee, other_employee, smtp_server, extra):
    response = api_employee.post("/mailboxes", json=mailbox_body(smtp_server, **extra))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert Mailbox.select().count() == 0


def test_an_admin_adds_a_mailbox_for_an_employee(api_admin, employee, smtp_server):
    response = api_admin.post("/mailboxes", json=mailbox_body(smtp_server, owner="ERIK@example.com"))
    assert response.status_code == 201
    assert Mailbox.get().owner_id == employee.id
    unknown = api_admin.post("/mailboxes", json=mailbox_body(smtp_server, owner="nobody@example.com"))
    assert unknown.status_code == 422 and fields_of(unknown) == {"owner": "No employee with this e-mail."}


def test_employees_cannot_add_when_admins_switched_it_off(api_employee, admin, smtp_server):
    service.set_employees_may_add(False, actor=admin)
    response = api_employee.post("/mailboxes", json=mailbox_body(smtp_server))
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "not_allowed"
    assert Mailbox.select().count() == 0


@pytest.mark.parametrize("changes, field, message", [
    ({"address": "not an address"}, "address", "Enter a valid e-mail address."),
    ({"projects": ["Nope"]}, "projects", "No project named: Nope."),
    ({"smtp": {"host": "bad host!", "port": 25}}, "smtp.host",
     "Enter a server name such as smtp.example.com, or an IP address."),
    ({"smtp": {"host": "localhost", "port": 70000}}, "smtp.port", "At most 65535."),
    ({"smtp": {"host": "localhost"}}, "smtp.port", "This field is required."),
    ({"smtp": {"host": "localhost", "port": 25, "security": "tls"}}, "smtp.security",
     "Must be one of: ssl, starttls, none."),
    ({"receive_replies": True}, "receive_replies",
     "Receiving replies needs the incoming server (POP3 or IMAP) below."),
    ({"access": {"everyone": True}}, "access", "Only company mailboxes have an access list."),
    ({"display_name": "Sales\r\nBcc: x@example.com"}, "display_name",
     "Use a single line without line breaks or control characters."),
    ({"smtp": {"host": "localhost", "port": 25, "password": "p\nw"}}, "smtp.password",
     "Use a single line without line breaks or control characters."),
    ({"incoming": {"protocol": "smtp", "host": "localhost", "port": 995}}, "incoming.protocol",
     "Must be one of: pop3, imap."),
])
def test_bad_values_get_a_message_beside_their_field_and_nothing_is_saved(api_employee, smtp_server, changes,
                                                                          field, message):
    response = api_employee.post("/mailboxes", json=mailbox_body(smtp_server, **changes))
    assert response.status_code == 422
    assert fields_of(response)[field] == message
    assert Mailbox.select().count() == 0
    assert AuditEvent.select().where(AuditEvent.action == "tested").count() == 0


# ---------------------------------------------------------------- seeing

def test_an_employee_sees_their_own_and_the_company_ones_they_may_use_without_settings(
        api_employee, employee, other_employee, make_mailbox):
    own = make_mailbox(employee, address="erik@work.example.com")
    shared = make_mailbox(address="sales@example.com", access_everyone=False, access_departments=["Sales"])
    make_mailbox(address="support@example.com", access_everyone=False, access_departments=["Support"])
    make_mailbox(other_employee, address="olga@work.example.com")
    listed = api_employee.get("/mailboxes").get_json()["mailboxes"]
    assert {m["address"] for m in listed} == {"erik@work.example.com", "sales@example.com"}
    company = next(m for m in listed if m["id"] == shared.id)
    assert company["smtp"] is None and company["access"] is None and company["manageable"] is False
    mine = next(m for m in listed if m["id"] == own.id)
    assert mine["smtp"]["host"] == "127.0.0.1" and mine["smtp"]["password_set"] is True
    assert MAILBOX_PASSWORD not in json.dumps(listed)
    assert api_employee.get(f"/mailboxes/{shared.id}").get_json()["smtp"] is None
    assert api_employee.get("/mailboxes?scope=company").get_json()["mailboxes"][0]["id"] == shared.id


def test_someone_elses_or_an_unshared_mailbox_is_404_like_a_missing_one(api_employee, other_employee,
                                                                        make_mailbox):
    theirs = make_mailbox(other_employee)
    closed = make_mailbox(access_everyone=False, access_departments=["Support"])
    paused = make_mailbox(active=False)
    missing = api_employee.get("/mailboxes/999999")
    for mailbox in (theirs, closed, paused):
        response = api_employee.get(f"/mailboxes/{mailbox.id}")
        assert response.status_code == 404 and response.get_json() == missing.get_json()


def test_an_admin_sees_every_mailbox_and_filters_by_owner(api_admin, employee, other_employee, make_mailbox):
    make_mailbox(employee, address="erik@work.example.com")
    make_mailbox(other_employee, address="olga@work.example.com")
    make_mailbox(address="sales@example.com")
    assert len(api_admin.get("/mailboxes").get_json()["mailboxes"]) == 3
    owned = api_admin.get("/mailboxes?owner=olga@example.com").get_json()["mailboxes"]
    assert [m["address"] for m in owned] == ["olga@work.example.com"]
    assert all(m["smtp"] for m in api_admin.get("/mailboxes").get_json()["mailboxes"])


# ---------------------------------------------------------------- changing and deleting

def test_a_name_project_or_default_change_keeps_the_last_test_without_running_one(api_employee, employee,
                                                                                  make_mailbox, make_project):
    make_project("Alpha")
    mailbox = make_mailbox(employee)  # its server at 127.0.0.1:2525 is not running: no test can pass
    tested_at = Mailbox.get_by_id(mailbox.id).last_passed_test_at
    response = api_employee.patch(f"/mailboxes/{mailbox.id}", json={"display_name": "New name",
                                                                    "projects": ["Alpha"], "default": True})
    assert response.status_code == 200, response.get_json()
    found = response.get_json()
    assert found["display_name"] == "New name" and found["projects"] == ["Alpha"] and found["default"] is True
    assert Mailbox.get_by_id(mailbox.id).last_passed_test_at == tested_at
    assert Mailbox.get_by_id(mailbox.id).to_settings().smtp.password == MAILBOX_PASSWORD


def test_a_new_secret_is_tested_first_and_refused_when_it_fails(api_employee, employee, make_mailbox, smtp_server):
    mailbox = make_mailbox(employee, address=smtp_server.username, smtp_host="localhost", smtp_port=smtp_server.port,
                           smtp_username=smtp_server.username, password="old-password")
    refused = api_employee.patch(f"/mailboxes/{mailbox.id}", json={"smtp": {"password": "still-wrong"}})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "account_test_failed"
    assert Mailbox.get_by_id(mailbox.id).to_settings().smtp.password == "old-password"
    accepted = api_employee.patch(f"/mailboxes/{mailbox.id}", json={"smtp": {"password": smtp_server.password}})
    assert accepted.status_code == 200, accepted.get_json()
    assert Mailbox.get_by_id(mailbox.id).to_settings().smtp.password == smtp_server.password
    assert smtp_server.password not in accepted.get_data(as_text=True)


def test_a_changed_server_needs_the_password_typed_again(api_employee, employee, make_mailbox):
    mailbox = make_mailbox(employee)
    response = api_employee.patch(f"/mailboxes/{mailbox.id}", json={"smtp": {"host": "smtp.elsewhere.example"}})
    assert response.status_code == 422
    assert fields_of(response) == {"smtp.password": "The server changed: type the password again."}
    assert Mailbox.get_by_id(mailbox.id).smtp_host == "127.0.0.1"


def test_pausing_and_resuming_through_patch(api_employee, employee, make_mailbox):
    mailbox = make_mailbox(employee)
    assert api_employee.patch(f"/mailboxes/{mailbox.id}", json={"active": False}).get_json()["active"] is False
    assert Mailbox.get_by_id(mailbox.id).active is False
    assert api_employee.patch(f"/mailboxes/{mailbox.id}", json={"active": True}).get_json()["active"] is True


def test_scope_and_owner_cannot_be_patched(api_admin, employee, make_mailbox):
    mailbox = make_mailbox(employee)
    response = api_admin.patch(f"/mailboxes/{mailbox.id}", json={"scope": "company", "owner": None})
    assert response.status_code == 422
    assert fields_of(response) == {"scope": "Unknown field.", "owner": "Unknown field."}


def test_nobody_changes_or_deletes_what_they_may_not_manage(api_employee, other_employee, make_mailbox):
    theirs = make_mailbox(other_employee)
    shared = make_mailbox(address="sales@example.com")  # open to everyone: usable, not manageable
    for mailbox in (theirs, shared):
        assert api_employee.patch(f"/mailboxes/{mailbox.id}", json={"display_name": "Mine now"}).status_code == 404
        assert api_employee.delete(f"/mailboxes/{mailbox.id}").status_code == 404
    assert Mailbox.select().count() == 2
    assert {m.display_name for m in Mailbox.select()} == {"Box 1", "Box 2"}


def test_deleting_a_mailbox_keeps_its_audit_trail(api_employee, employee, make_mailbox):
    mailbox = make_mailbox(employee, address="gone@example.com")
    response = api_employee.delete(f"/mailboxes/{mailbox.id}")
    assert response.status_code == 204 and response.get_data() == b""
    assert Mailbox.get_or_none(Mailbox.id == mailbox.id) is None
    assert AuditEvent.get(AuditEvent.action == "deleted").address == "gone@example.com"
    assert api_employee.get(f"/mailboxes/{mailbox.id}").status_code == 404


# ---------------------------------------------------------------- the account test on its own

def test_the_test_endpoint_answers_what_check_account_json_prints(api_employee, runner, smtp_server):
    body = {"address": smtp_server.username, "smtp": {"host": "localhost", "port": smtp_server.port,
                                                      "security": "starttls", "username": smtp_server.username,
                                                      "password": smtp_server.password}}
    response = api_employee.post("/mailboxes/test", json=body)
    assert response.status_code == 200
    api = response.get_json()
    os.environ["API_TEST_PASSWORD"] = smtp_server.password
    try:
        result = runner.invoke(args=["check-account", "--address", smtp_server.username, "--smtp-host", "localhost",
                                     "--smtp-port", str(smtp_server.port), "--smtp-security", "starttls",
                                     "--password-env", "API_TEST_PASSWORD", "--json", "--lang", "en"])
    finally:
        del os.environ["API_TEST_PASSWORD"]
    cli = json.loads(result.stdout)
    assert set(api) == set(cli) == {"ok", "problem", "stages"}
    assert api["ok"] is cli["ok"] is True
    assert [(s["name"], s["ok"]) for s in api["stages"]] == [(s["name"], s["ok"]) for s in cli["stages"]]
    assert [set(s) for s in api["stages"]] == [set(s) for s in cli["stages"]]
    assert Mailbox.select().count() == 0


def test_the_test_endpoint_reports_a_failure_as_a_result_not_an_error(api_employee, smtp_server):
    response = api_employee.post("/mailboxes/test", json={
        "address": smtp_server.username,
        "smtp": {"host": "localhost", "port": smtp_server.port, "security": "starttls",
                 "username": smtp_server.username, "password": "wrong"}})
    assert response.status_code == 200
    assert response.get_json()["ok"] is False and response.get_json()["problem"]["code"] == "auth_failed"


def test_account_tests_share_one_allowance_per_employee_with_the_pages(
        account_tests_limited, client, auth, employee, api_employee, smtp_server):
    wrong = mailbox_body(smtp_server, smtp={**mailbox_body(smtp_server)["smtp"], "password": "wrong"})
    auth.login(employee)
    page = client.post("/mailboxes/test", headers={"HX-Request": "true"}, data={
        "address": smtp_server.username, "display_name": "Sales", "smtp_host": "localhost",
        "smtp_port": str(smtp_server.port), "smtp_security": smtp_server.security,
        "smtp_username": smtp_server.username, "smtp_password": "wrong", "incoming_protocol": ""})
    assert page.status_code == 200
    finish(client, page)  # one test per person at a time: the page's is over before the API's starts
    assert api_employee.post("/mailboxes/test", json=wrong).status_code == 200
    limited = api_employee.post("/mailboxes/test", json=wrong)
    assert limited.status_code == 429 and limited.get_json()["error"]["code"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 61
    # Adding a mailbox runs a test too: refused the same way, and nothing is saved.
    created = api_employee.post("/mailboxes", json=mailbox_body(smtp_server))
    assert created.status_code == 429 and Mailbox.select().count() == 0
    # The two refused ones reached no server.
    assert AuditEvent.select().where(AuditEvent.action.in_(["tested", "test_failed"])).count() == 2


def test_a_stored_mailbox_is_tested_with_its_stored_password(api_employee, employee, other_employee, make_mailbox,
                                                             smtp_server, dovecot, mail_user):
    mailbox = make_mailbox(employee, address=smtp_server.username, smtp_host="localhost", smtp_port=smtp_server.port,
                           smtp_username=smtp_server.username, password=smtp_server.password)
    response = api_employee.post("/mailboxes/test", json={"mailbox_id": mailbox.id})
    assert response.get_json()["ok"] is True
    imap = api_employee.post("/mailboxes/test", json={"mailbox_id": mailbox.id, "incoming": {
        "protocol": "imap", "host": "localhost", "port": dovecot.ports["imaps"], "security": "ssl",
        "username": mail_user.address, "password": mail_user.password}})
    assert imap.get_json()["ok"] is True
    assert any(stage["name"] == "imap.mailbox" for stage in imap.get_json()["stages"])
    theirs = make_mailbox(other_employee)
    assert api_employee.post("/mailboxes/test", json={"mailbox_id": theirs.id}).status_code == 404
