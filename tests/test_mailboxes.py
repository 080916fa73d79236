"""External addresses: the save gate, secrets at rest, bad input, Defaults, the audit log, and the pages around them."""
import logging
import re
import time

import pytest

from portal import mailboxes as service
from portal.models import AuditEvent, Mailbox
from portal.secret_box import SecretBox, SecretError, active_box, install
from tests.conftest import page_text
from tests.fixtures.mailboxes import MAILBOX_PASSWORD

pytestmark = pytest.mark.usefixtures("mail_reaches_localhost")


def form_for(smtp, **overrides):
    """Posted form values for a mailbox at the test SMTP server."""
    values = {
        "address": smtp.username,
        "display_name": "Sales team",
        "smtp_host": "localhost",
        "smtp_port": str(smtp.port),
        "smtp_security": smtp.security,
        "smtp_username": smtp.username,
        "smtp_password": smtp.password,
        "incoming_protocol": "",
    }
    values.update(overrides)
    return values


def proof_in(response):
    """The save proof a passing Test account put into the form, or None."""
    found = re.search(r'name="proof" value="([^"]+)"', response.get_data(as_text=True))
    return found.group(1) if found else None


def htmx(client, url, data):
    return client.post(url, data=data, headers={"HX-Request": "true"})


def run_test(client, url, data):
    """Test account as the form runs it: start it, then poll as htmx does until the result is there."""
    return finish(client, htmx(client, url, data))


def finish(client, started, seconds=30):
    """Follow a started test's polls to its result (the start's answer itself if no test was started)."""
    answer = started
    deadline = time.monotonic() + seconds
    while (poll := re.search(r'hx-get="(/mailboxes/tests/[0-9a-f]+)"', answer.get_data(as_text=True))):
        assert time.monotonic() < deadline, "the test never finished"
        time.sleep(0.05)
        answer = client.get(poll.group(1), headers={"HX-Request": "true"})
        assert answer.status_code == 200
    return answer


# ---------------------------------------------------------------- the save gate, against real servers

def test_a_passing_mailbox_saves_after_its_inline_test(as_admin, admin, smtp_server, dovecot, mail_user):
    values = form_for(smtp_server, scope="company", incoming_protocol="pop3", incoming_host="localhost",
                      incoming_port=str(dovecot.ports["pop3s"]), incoming_security="ssl",
                      incoming_username=mail_user.address, incoming_password=mail_user.password,
                      receive_replies="y")

    tested = run_test(as_admin, "/mailboxes/test", values)
    text = page_text(tested)

    assert tested.status_code == 200
    assert "Passed" in text and "Outgoing: sign in" in text and "POP3: sign in" in text
    proof = proof_in(tested)
    assert proof
    saved = as_admin.post("/mailboxes/new", data={**values, "proof": proof})
    assert saved.status_code == 302
    mailbox = Mailbox.get(Mailbox.address == smtp_server.username)
    assert mailbox.scope == "company" and mailbox.tested and mailbox.receive_replies
    assert mailbox.to_settings().smtp.password == smtp_server.password
    assert mailbox.to_settings().incoming.server.password == mail_user.password
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert actions == ["tested", "created"]


def test_a_failing_test_explains_itself_and_save_stays_refused(as_admin, smtp_server):
    values = form_for(smtp_server, scope="company", smtp_password="wrong-password", display_name="Keep me")

    started = htmx(as_admin, "/mailboxes/test", values)
    body = started.get_data(as_text=True)
    tested = finish(as_admin, started)
    text = page_text(tested)

    assert tested.status_code == 200
    assert "Failed" in text and "535" in text  # the server's own reply
    assert proof_in(tested) is None
    # Everything typed comes back, except the password.
    assert 'value="Keep me"' in body and "wrong-password" not in body
    refused = as_admin.post("/mailboxes/new", data={**values, "proof": ""})
    assert refused.status_code == 200 and "Run Test account first" in page_text(refused)
    assert Mailbox.select().count() == 0
    assert AuditEvent.get().action == "test_failed"


def test_failure_explanation_is_in_the_users_language(client, auth, make_employee, smtp_server):
    russian = make_employee(language="ru")
    auth.login(russian)

    tested = run_test(client, "/mailboxes/test", form_for(smtp_server, smtp_password="wrong"))

    from portal.mail.problems import catalogue_entry

    text = page_text(tested)
    assert "Исходящая: вход" in text  # the stage, in Russian
    assert (catalogue_entry("auth_failed").title["ru"] in text
            and catalogue_entry("auth_failed").advice["ru"][:40] in text)
    assert "535" in text  # and the server's own reply, as it said it


def test_account_tests_are_capped_per_employee(account_tests_limited, client, auth, employee, other_employee,
                                               smtp_server):
    values = form_for(smtp_server, smtp_password="wrong")
    auth.login(employee)
    for _ in range(3):  # values the form refuses reach no server, and use up none of the allowance
        mistaken = run_test(client, "/mailboxes/test", {**values, "smtp_port": "70000"})
        assert mistaken.status_code == 200 and "Fix the marked fields" in page_text(mistaken)
    statuses = [run_test(client, "/mailboxes/test", values).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = run_test(client, "/mailboxes/test", values)
    assert refused.headers["HX-Retarget"] == "#request-problem-text"  # said in the page's notice
    assert "Too many attempts." in page_text(refused) and 0 < int(refused.headers["Retry-After"]) <= 61
    assert AuditEvent.select().where(AuditEvent.action == "test_failed").count() == 2  # no server was reached
    # Another employee has their own allowance.
    auth.logout()
    auth.login(other_employee)
    assert "Failed" in page_text(run_test(client, "/mailboxes/test", values))


def test_save_refuses_a_proof_for_other_settings(as_admin, smtp_server):
    values = form_for(smtp_server, scope="company")
    proof = proof_in(run_test(as_admin, "/mailboxes/test", values))
    assert proof

    changed = as_admin.post("/mailboxes/new", data={**values, "smtp_port": "2526", "proof": proof})
    other_password = as_admin.post("/mailboxes/new", data={**values, "smtp_password": "another", "proof": proof})

    assert "settings changed after the test" in page_text(changed)
    assert "settings changed after the test" in page_text(other_password)
    assert Mailbox.select().count() == 0


def test_save_refuses_an_expired_proof_and_another_users_proof(app, admin, make_employee, monkeypatch):
    values = {"address": "team@example.com", "smtp_host": "127.0.0.1", "smtp_port": "2525",
              "smtp_security": "starttls", "smtp_username": "team@example.com", "smtp_password": "pw"}
    cleaned = service.clean_mailbox(values, is_admin=True)
    someone = make_employee(role="admin")
    import itsdangerous.timed

    real_time = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() - 16 * 60)
    stale = service.make_proof(cleaned.settings, admin, app.secret_key)
    monkeypatch.setattr(itsdangerous.timed.time, "time", real_time)
    theirs = service.make_proof(cleaned.settings, someone, app.secret_key)
    mine = service.make_proof(cleaned.settings, admin, app.secret_key)

    with pytest.raises(service.SaveRefused) as expired:
        service.save_mailbox(values, actor=admin, secret_key=app.secret_key, scope="company", proof=stale)
    with pytest.raises(service.SaveRefused) as other_user:
        service.save_mailbox(values, actor=admin, secret_key=app.secret_key, scope="company", proof=theirs)
    with pytest.raises(service.SaveRefused) as forged:
        service.save_mailbox(values, actor=admin, secret_key="another-secret", scope="company", proof=mine)
    assert (expired.value.reason, other_user.value.reason, forged.value.reason) == ("expired", "other_user", "untested")
    assert Mailbox.select().count() == 0
    saved = service.save_mailbox(values, actor=admin, secret_key=app.secret_key, scope="company", proof=mine)
    assert saved.created and saved.mailbox.tested


def test_a_crafted_post_cannot_skip_the_test(as_admin):
    crafted = as_admin.post("/mailboxes/new", data={
        "scope": "company", "address": "x@example.com", "smtp_host": "127.0.0.1", "smtp_port": "2525",
        "smtp_security": "ssl", "smtp_password": "pw", "proof": "eyJ1IjoxfQ.forged.signature"})

    assert crafted.status_code == 200 and "Run Test account first" in page_text(crafted)
    assert Mailbox.select().count() == 0


def test_editing_names_projects_and_default_keeps_the_test_but_servers_and_secrets_need_a_new_one(
        app, admin, make_project, make_mailbox, smtp_server):
    mailbox = make_mailbox(address=smtp_server.username, smtp_host="localhost", smtp_port=smtp_server.port,
                           smtp_username=smtp_server.username, password=smtp_server.password)
    alpha = make_project("Alpha")
    same = form_for(smtp_server, smtp_password="", display_name="New name", projects=[str(alpha.id)], is_default="y",
                    access_everyone="y")

    saved = service.save_mailbox(same, actor=admin, secret_key=app.secret_key, mailbox=mailbox)

    assert saved.mailbox.display_name == "New name" and saved.mailbox.project_ids() == [alpha.id]
    assert sorted(saved.changed_fields) == ["display_name", "is_default", "projects"]
    for change in ({"smtp_port": "2526"}, {"smtp_password": "a-new-secret"}, {"smtp_security": "ssl"},
                   {"address": "other@example.com"}):
        # Refused either for want of a new test, or earlier: a stored password goes nowhere new untyped.
        with pytest.raises((service.SaveRefused, service.MailboxInvalid)):
            service.save_mailbox({**same, **change}, actor=admin, secret_key=app.secret_key, mailbox=mailbox)


def test_a_changed_server_needs_the_password_typed_again(app, admin, make_mailbox):
    mailbox = make_mailbox()
    values = {"address": mailbox.address, "smtp_host": "smtp.elsewhere.example", "smtp_port": "587",
              "smtp_security": "starttls", "smtp_username": mailbox.smtp_username, "smtp_password": ""}

    with pytest.raises(service.MailboxInvalid) as refused:
        service.clean_mailbox(values, existing=mailbox, is_admin=True)

    assert "type the password again" in str(refused.value.errors["smtp_password"])


@pytest.mark.parametrize("change", [
    {"smtp_port": "25", "smtp_security": "none", "allow_plaintext_auth": "y"},  # would go out unencrypted
    {"smtp_trusted_fingerprint": "ab" * 32},  # would trust another certificate with it
    {"smtp_username": "someone.else@example.com"},
    {"smtp_security": "starttls", "smtp_port": "587"},
])
def test_the_stored_password_goes_nowhere_new_without_being_typed_again(app, make_mailbox, change):
    mailbox = make_mailbox()
    values = {"address": mailbox.address, "smtp_host": mailbox.smtp_host, "smtp_port": str(mailbox.smtp_port),
              "smtp_security": mailbox.smtp_security, "smtp_username": mailbox.smtp_username, "smtp_password": ""}

    service.clean_mailbox(values, existing=mailbox, is_admin=True)  # unchanged: the stored one is kept
    with pytest.raises(service.MailboxInvalid) as refused:
        service.clean_mailbox({**values, **change}, existing=mailbox, is_admin=True)

    assert "type the password again" in str(refused.value.errors["smtp_password"])


# ---------------------------------------------------------------- secrets

def test_secrets_are_encrypted_per_row(app, make_mailbox):
    first, second = make_mailbox(password="same-password"), make_mailbox(password="same-password")
    raw = Mailbox.select(Mailbox.smtp_password).where(Mailbox.id == first.id).scalar()

    assert "same-password" not in raw
    assert first.smtp_password != second.smtp_password
    assert first.secret("smtp_password") == second.secret("smtp_password") == "same-password"
    second.smtp_password = first.smtp_password  # a ciphertext copied into another row
    with pytest.raises(SecretError):
        second.secret("smtp_password")


def test_saving_with_a_blank_password_keeps_the_stored_ciphertext(app, admin, make_mailbox):
    mailbox = make_mailbox()
    stored = Mailbox.select(Mailbox.smtp_password).where(Mailbox.id == mailbox.id).scalar()
    values = {"address": mailbox.address, "display_name": "Renamed", "smtp_host": mailbox.smtp_host,
              "smtp_port": str(mailbox.smtp_port), "smtp_security": mailbox.smtp_security,
              "smtp_username": mailbox.smtp_username, "smtp_password": "", "incoming_protocol": "",
              "access_everyone": "y"}

    saved = service.save_mailbox(values, actor=admin, secret_key=app.secret_key, mailbox=mailbox)

    assert saved.changed_fields == ["display_name"]
    # Byte for byte: the secret was not encrypted again (a new ciphertext would say "changed" to anyone
    # comparing rows, and rewrites a secret nobody touched).
    assert Mailbox.select(Mailbox.smtp_password).where(Mailbox.id == mailbox.id).scalar() == stored


def test_rotation_keeps_every_row_readable(app, make_mailbox, runner):
    rows = [make_mailbox(password=f"password-{n}") for n in range(3)]
    old_box = active_box()
    old_key = app.extensions["portal_secret_box"]
    assert old_key is old_box

    new_box = install(SecretBox(["brand-new-key", *_keys_of(app)]))
    app.extensions["portal_secret_box"] = new_box
    result = runner.invoke(args=["rotate-secrets"])

    assert result.exit_code == 0 and "3 mailbox" in result.output
    only_new = SecretBox(["brand-new-key"])
    for row in rows:
        fresh = Mailbox.get_by_id(row.id)
        assert fresh.secret("smtp_password", only_new) == row.secret("smtp_password", old_box)
        with pytest.raises(SecretError):
            fresh.secret("smtp_password", old_box)
        assert fresh.tested


def test_rotation_leaves_a_mailbox_changed_after_its_test_untested(app, make_mailbox, runner):
    from portal.letters.queue import tested_for
    from tests.fixtures.letters import passed_test

    kept = passed_test(make_mailbox(password="tested-password"))
    changed = passed_test(make_mailbox(password="tested-password"))
    changed.set_secret("smtp_password", "typed-but-never-tested")
    changed.save()
    app.extensions["portal_secret_box"] = install(SecretBox(["brand-new-key", *_keys_of(app)]))
    assert tested_for(Mailbox.get_by_id(kept.id), Mailbox.get_by_id(kept.id).to_settings())

    assert runner.invoke(args=["rotate-secrets"]).exit_code == 0

    only_new = install(SecretBox(["brand-new-key"]))
    app.extensions["portal_secret_box"] = only_new
    kept, changed = Mailbox.get_by_id(kept.id), Mailbox.get_by_id(changed.id)
    assert tested_for(kept, kept.to_settings(only_new))
    assert not tested_for(changed, changed.to_settings(only_new))


def _keys_of(app):
    from portal.secret_box import configured_keys

    return configured_keys(app.config.get("PORTAL_SECRET_KEYS"), app.instance_path)


def test_the_instance_key_is_made_once_with_mode_0600(app):
    from pathlib import Path

    key_file = Path(app.instance_path) / "mailbox_secret_key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_no_page_fragment_or_log_line_shows_a_secret(as_admin, admin, employee, make_project, make_mailbox,
                                                     smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    alpha = make_project("Alpha")
    company = make_mailbox(password=MAILBOX_PASSWORD, projects=[alpha])
    personal = make_mailbox(employee, password=MAILBOX_PASSWORD)
    signed_in = _signed_in_mailbox(make_mailbox, employee)  # issue 12: tokens and client secrets too
    values = form_for(smtp_server, scope="company")
    bodies = [run_test(as_admin, "/mailboxes/test", values)]
    bodies.append(as_admin.post("/mailboxes/new", data={**values, "proof": proof_in(bodies[0])}))
    bodies.append(run_test(as_admin, "/mailboxes/test", {**values, "smtp_password": "wrong-" + smtp_server.password}))
    for url in ("/admin/mail/outgoing", f"/admin/mail/employees/{employee.id}", f"/mailboxes/{company.id}/edit",
                f"/mailboxes/{personal.id}/edit", "/admin/mail/senders", "/admin/mail/audit", "/my/addresses",
                f"/admin/mail/senders/{employee.id}/{alpha.id}", f"/mailboxes/{signed_in.id}/edit",
                "/admin/sign-in-providers", "/outbox"):
        bodies.append(as_admin.get(url))
        bodies.append(as_admin.get(url, headers={"HX-Request": "true"}))
    bodies.append(run_test(as_admin, f"/mailboxes/{company.id}/test", {**values, "smtp_password": ""}))
    bodies.append(htmx(as_admin, f"/mailboxes/{company.id}/edit", {**values, "smtp_password": "", "smtp_port": "x"}))

    secrets = (MAILBOX_PASSWORD, smtp_server.password, *OAUTH_SECRETS)
    for response in bodies:
        body = response.get_data(as_text=True)
        assert not any(secret in body for secret in secrets), response.request.path
    assert "A password is stored" in page_text(as_admin.get(f"/mailboxes/{company.id}/edit"))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not any(secret in logged for secret in secrets)
    assert not any(secret in event.changed_fields + event.detail for event in AuditEvent.select() for secret in secrets)


OAUTH_SECRETS = ("client-secret-4711", "access-token-4711", "refresh-token-4711")


def _signed_in_mailbox(make_mailbox, owner):
    """A mailbox that signs in with Google (its app registered), whose tokens must never show."""
    from portal.oauth import grants
    from portal.oauth.apps import save_app
    from portal.oauth.client import Tokens

    save_app("google", client_id="google-client-id", client_secret=OAUTH_SECRETS[0])
    mailbox = make_mailbox(owner, address="token@example.com", password="")
    grants.new_grant("google", "token@example.com", "XOAUTH2", Tokens(*OAUTH_SECRETS[1:], 3600), mailbox=mailbox)
    return mailbox


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("field, value, message", [
    ("address", "not-an-address", "Enter a valid e-mail address."),
    ("smtp_port", "70000", "Enter a port from 1 to 65535."),
    ("smtp_port", "0", "Enter a port from 1 to 65535."),
    ("display_name", "Sales\r\nBcc: victim@example.com", "Use a single line without control characters."),
    ("smtp_username", "user\x00name", "Use a single line without control characters."),
    ("smtp_host", "smtp.example.com\nX", "Use a single line without control characters."),
    ("smtp_host", "smtp example com", "Enter a server name"),
    ("projects", "999999", "This project does not exist."),
    ("projects", "9" * 30, "This project does not exist."),  # past the largest id: not sent to the database
    ("access_employees", "9" * 30, "This employee does not exist."),
    ("receive_replies", "y", "Receiving replies needs the incoming server"),
])
def test_bad_input_gets_a_message_beside_its_field_and_nothing_is_saved(as_admin, field, value, message):
    values = {"scope": "company", "address": "team@example.com", "smtp_host": "127.0.0.1", "smtp_port": "2525",
              "smtp_security": "starttls", "smtp_username": "team", "smtp_password": "pw", field: value}

    answer = htmx(as_admin, "/mailboxes/new", values)
    body = answer.get_data(as_text=True)

    assert answer.status_code == 200
    slot = re.search(rf'<div id="slot-{field}".*?</div>\s*</div>', body, re.S)
    assert slot and message in slot.group(0)
    assert "Nothing was saved" in page_text(answer)
    assert Mailbox.select().count() == 0


# ---------------------------------------------------------------- defaults, permissions and audit

def test_the_form_says_which_default_it_replaces_and_saving_replaces_it(
        app, as_employee, employee, make_project, make_mailbox):
    alpha = make_project("Alpha")
    old = make_mailbox(employee, address="old@example.com", is_default=True)
    new = make_mailbox(employee, address="new@example.com")

    hint = htmx(as_employee, "/mailboxes/default-hint",
                {"mailbox_id": new.id, "is_default": "y", "projects": [alpha.id]})
    assert "replaces: old@example.com" in page_text(hint)

    values = {"address": new.address, "smtp_host": new.smtp_host, "smtp_port": str(new.smtp_port),
              "smtp_security": new.smtp_security, "smtp_username": new.smtp_username, "is_default": "y"}
    saved = as_employee.post(f"/mailboxes/{new.id}/edit", data=values)
    assert saved.status_code == 302
    assert not Mailbox.get_by_id(old.id).is_default and Mailbox.get_by_id(new.id).is_default
    assert "old@example.com is no longer Default" in page_text(as_employee.get("/my/addresses"))


def test_an_employee_cannot_post_their_way_to_company_level_or_another_owner(
        as_employee, employee, other_employee, smtp_server):
    values = form_for(smtp_server, scope="company", owner_id=str(other_employee.id), access_everyone="")
    proof = proof_in(run_test(as_employee, "/mailboxes/test", values))

    saved = as_employee.post("/mailboxes/new", data={**values, "proof": proof})

    assert saved.status_code == 302
    mailbox = Mailbox.get()
    assert mailbox.scope == "employee" and mailbox.owner_id == employee.id and mailbox.access_everyone


def test_employees_may_add_their_own_until_an_admin_switches_it_off(client, auth, admin, employee, smtp_server):
    auth.login(admin)
    switched = client.post("/admin/mail/outgoing/employees-may-add", data={})
    assert switched.status_code == 302
    auth.logout()
    auth.login(employee)

    mine = page_text(client.get("/my/addresses"))
    form = page_text(client.get("/mailboxes/new"))
    values = form_for(smtp_server)
    proof = proof_in(run_test(client, "/mailboxes/test", values))
    refused = client.post("/mailboxes/new", data={**values, "proof": proof})

    assert "Ask an admin" in mine and "Add external address" not in mine.replace("My addresses", "")
    assert "switched off" in form
    assert "switched off" in page_text(refused) and Mailbox.select().count() == 0


@pytest.fixture
def employees_may_not_add_at_first(config):
    config["PORTAL_EMPLOYEES_MAY_ADD_MAILBOXES"] = False
    return config


def test_the_configured_default_holds_until_an_admin_decides(employees_may_not_add_at_first, client, auth, admin,
                                                             employee, smtp_server):
    auth.login(employee)
    values = form_for(smtp_server)
    proof = proof_in(run_test(client, "/mailboxes/test", values))
    assert proof  # the test passed: only the save gate stands in the way
    refused = client.post("/mailboxes/new", data={**values, "proof": proof})
    assert refused.status_code == 200 and Mailbox.select().count() == 0
    auth.logout()
    auth.login(admin)
    client.post("/admin/mail/outgoing/employees-may-add", data={"allowed": "y"})  # the admin allows it
    auth.logout()
    auth.login(employee)
    proof = proof_in(run_test(client, "/mailboxes/test", values))
    saved = client.post("/mailboxes/new", data={**values, "proof": proof})
    assert saved.status_code == 302 and Mailbox.get().owner_id == employee.id


def test_pause_resume_delete_are_audited_with_ip_and_fields(as_admin, admin, employee, make_mailbox):
    mailbox = make_mailbox(employee, address="erik.sales@example.com")

    as_admin.post(f"/mailboxes/{mailbox.id}/pause")
    assert not Mailbox.get_by_id(mailbox.id).active
    as_admin.post(f"/mailboxes/{mailbox.id}/resume")
    as_admin.post(f"/mailboxes/{mailbox.id}/delete")

    assert Mailbox.select().count() == 0
    events = list(AuditEvent.select().order_by(AuditEvent.id))
    assert [e.action for e in events] == ["paused", "resumed", "deleted"]
    assert all(e.address == "erik.sales@example.com" and e.ip == "127.0.0.1" and e.actor_id == admin.id
               and e.owner_id == employee.id for e in events)
    assert events[0].fields == ["active"]
    log = page_text(as_admin.get("/admin/mail/audit?address=erik.sales"))
    assert "paused" in log and "deleted" in log and "Anna Admin" in log and "Erik Employee" in log
    assert "No events match" in page_text(as_admin.get("/admin/mail/audit?employee=nobody-like-this"))


def test_my_addresses_lists_own_and_usable_company_mailboxes_without_settings(
        as_employee, employee, other_employee, make_project, make_mailbox):
    alpha = make_project("Alpha")
    make_mailbox(employee, address="erik.own@example.com")
    make_mailbox(address="sales@example.com", projects=[alpha], access_everyone=False, access_departments=["Sales"],
                 smtp_host="smtp.secret-host.example")
    make_mailbox(address="support@example.com", access_everyone=False, access_departments=["Support"])
    make_mailbox(other_employee, address="olga.own@example.com")

    text = page_text(as_employee.get("/my/addresses"))

    assert "erik.own@example.com" in text and "sales@example.com" in text and "Alpha" in text
    assert "support@example.com" not in text and "olga.own@example.com" not in text
    assert "smtp.secret-host.example" not in text


def test_who_sends_from_what_marks_ties_and_nobody_and_explains_a_cell(
        as_admin, employee, other_employee, make_project, make_mailbox):
    alpha, beta = make_project("Alpha"), make_project("Beta")
    make_mailbox(address="sales@example.com", projects=[alpha], access_everyone=False, access_departments=["Sales"])
    make_mailbox(employee, address="erik.1@example.com", projects=[beta])
    make_mailbox(employee, address="erik.2@example.com", projects=[beta])

    grid = as_admin.get("/admin/mail/senders")
    text = page_text(grid)
    nobody = page_text(as_admin.get("/admin/mail/senders?problem=nobody&project=%d" % alpha.id))
    ties = page_text(as_admin.get("/admin/mail/senders?problem=conflict"))
    cell = as_admin.get(f"/admin/mail/senders/{employee.id}/{beta.id}", headers={"HX-Request": "true"})

    assert "sales@example.com" in text and "erik.1@example.com" in text and "Tie" in text and "Nobody" in text
    assert "Olga Other" in nobody and "Erik Employee" not in nobody
    assert "Erik Employee" in ties and "Olga Other" not in ties
    assert cell.status_code == 200 and "<html" not in cell.get_data(as_text=True)
    assert "Conflict" in page_text(cell) and "erik.2@example.com" in page_text(cell)


def test_provider_picker_fills_servers_and_address_picks_the_provider(as_employee):
    picked = htmx(as_employee, "/mailboxes/provider", {"trigger": "provider", "provider": "google",
                                                       "address": "erik@gmail.com", "incoming_protocol": "imap"})
    body = picked.get_data(as_text=True)
    assert 'value="smtp.gmail.com"' in body and 'value="imap.gmail.com"' in body and 'value="erik@gmail.com"' in body
    assert "app password" in page_text(picked)

    left = htmx(as_employee, "/mailboxes/provider",
                {"trigger": "address", "provider": "other", "address": "erik@yandex.ru"})
    body = left.get_data(as_text=True)
    assert 'value="smtp.yandex.ru"' in body
    assert re.search(r'<option selected value="yandex"|<option value="yandex" selected', body)
    assert 'name="smtp_password"' not in body  # the browser keeps what was typed


def test_trusting_a_certificate_puts_its_fingerprint_into_the_form(as_employee):
    fingerprint = "ab" * 32

    answer = htmx(as_employee, "/mailboxes/trust", {"side": "smtp", "fingerprint": fingerprint})

    assert ("AB:AB:AB" in answer.get_data(as_text=True)
            and 'id="slot-smtp_trusted_fingerprint"' in answer.get_data(as_text=True))


def test_a_self_signed_server_offers_its_fingerprint_and_trusting_it_passes(
        as_admin, make_smtp_server, untrusted_certificate):
    server = make_smtp_server("ssl", certificate=untrusted_certificate)
    values = form_for(server, scope="company")

    failed = run_test(as_admin, "/mailboxes/test", values)
    assert "Trust this certificate" in page_text(failed) and proof_in(failed) is None

    pinned = run_test(as_admin, "/mailboxes/test",
                      {**values, "smtp_trusted_fingerprint": untrusted_certificate.fingerprint})
    assert "Passed" in page_text(pinned) and proof_in(pinned)
    assert as_admin.post("/mailboxes/new", data={**values,
                                                 "smtp_trusted_fingerprint": untrusted_certificate.fingerprint,
                                                 "proof": proof_in(pinned)}).status_code == 302
    assert Mailbox.get().smtp_trusted_fingerprint == untrusted_certificate.fingerprint


def test_choosing_other_server_clears_the_previous_presets_servers(as_employee):
    """Switching from Gmail to "Other server" empties the servers Gmail filled in; what was typed stays."""
    answer = htmx(as_employee, "/mailboxes/provider", {
        "trigger": "provider", "provider": "other", "address": "erik@gmail.com",
        "smtp_host": "smtp.gmail.com", "smtp_port": "465", "smtp_security": "ssl", "smtp_username": "erik@gmail.com",
        "incoming_protocol": "imap", "incoming_host": "imap.gmail.com", "incoming_port": "993",
        "incoming_security": "ssl", "scope": "employee"}, )
    body = answer.get_data(as_text=True)
    smtp_slot = re.search(r'<div id="slot-smtp_host".*?</div>', body, re.S).group(0)
    assert 'value="smtp.gmail.com"' not in smtp_slot
    assert re.search(r'<div id="slot-incoming_host".*?</div>', body, re.S)
    assert 'value="imap.gmail.com"' not in body
    assert 'id="slot-smtp_username"' not in body  # the login is the user's, not the preset's

    typed = htmx(as_employee, "/mailboxes/provider", {
        "trigger": "provider", "provider": "other", "address": "erik@gmail.com",
        "smtp_host": "relay.firma.example.com", "smtp_port": "587", "smtp_security": "starttls"})
    assert 'id="slot-smtp_host"' not in typed.get_data(as_text=True)  # not a preset's: left alone


def test_a_personal_address_form_speaks_to_its_owner(as_employee, employee):
    text = page_text(as_employee.get("/mailboxes/new"))
    assert "Your own address" in text
    assert "Letters you write in these projects leave from this address" in text
    assert "Chosen automatically for the letters you write in these projects" in text
    assert "everyone who may use it" not in text


def test_a_company_address_form_still_speaks_of_everyone(as_admin):
    text = page_text(as_admin.get("/mailboxes/new?scope=company"))
    assert "for everyone who may use it" in text and "Letters you write" not in text


def _submit_token(client, url):
    return re.search(r'id="submit_token" name="submit_token" type="hidden" value="([^"]+)"',
                     client.get(url).get_data(as_text=True)).group(1)


def test_a_double_click_on_save_makes_one_mailbox(as_admin, smtp_server):
    values = form_for(smtp_server, scope="company", is_default="y")
    values["submit_token"] = _submit_token(as_admin, "/mailboxes/new?scope=company")
    proof = proof_in(run_test(as_admin, "/mailboxes/test", values))
    first = htmx(as_admin, "/mailboxes/new", {**values, "proof": proof})
    second = htmx(as_admin, "/mailboxes/new", {**values, "proof": proof})  # the second click
    assert first.status_code == second.status_code == 204
    assert first.headers["HX-Redirect"] == second.headers["HX-Redirect"]
    assert Mailbox.select().count() == 1 and Mailbox.get().is_default


def test_an_address_at_the_same_level_is_refused_beside_the_field_with_a_link(as_admin, smtp_server, make_mailbox):
    existing = make_mailbox(address=smtp_server.username)  # a company mailbox with this address
    values = form_for(smtp_server, scope="company")
    values["submit_token"] = _submit_token(as_admin, "/mailboxes/new?scope=company")
    proof = proof_in(run_test(as_admin, "/mailboxes/test", values))
    answer = htmx(as_admin, "/mailboxes/new", {**values, "proof": proof})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and Mailbox.select().count() == 1
    assert "This address exists already at this level" in page_text(answer)
    assert f'href="/mailboxes/{existing.id}/edit"' in html


@pytest.mark.parametrize("owner_id", ["999999", "9" * 30, "x"])
def test_a_new_mailbox_for_an_owner_who_does_not_exist_answers_404(as_admin, owner_id):
    answer = as_admin.get(f"/mailboxes/new?scope=employee&owner_id={owner_id}")

    assert answer.status_code == 404
