"""The hourly warning tells whoever hears about a mailbox (its owner, or the admins for a company one), once each,
that its provider stops taking its password within 30 days (or already refuses it), in the notification centre and
by e-mail. Judged on a given day, never the real one; the mailboxes' own servers are never contacted."""
from __future__ import annotations

import datetime
import email
import email.policy

import pytest

from portal.models import Notification
from portal.notifications import describe, link_of, preferences
from portal.oauth import grants
from portal.oauth.client import Tokens
from portal.password_ending import warn_owners
from portal.portal_mail import set_system_mailbox
from tests.fixtures.letters import passed_test

M365_ENDS = datetime.date(2026, 12, 31)


@pytest.fixture
def at_m365(make_mailbox):
    """at_m365(owner, address): a mailbox sending through Microsoft 365 with a password."""
    def make(owner, address, **more):
        return make_mailbox(owner, address=address, smtp_host="smtp.office365.com", smtp_port=587, **more)
    return make


def told():
    return [(n.recipient_id, n.kind, n.target) for n in
            Notification.select().where(Notification.kind == "password_ending").order_by(Notification.id)]


def test_the_owner_is_told_once_when_30_days_are_left(at_m365, employee, admin):
    mailbox = at_m365(employee, "erik@acme.example")
    warn_owners(M365_ENDS - datetime.timedelta(days=31))
    assert told() == []

    warn_owners(M365_ENDS - datetime.timedelta(days=30))
    assert told() == [(employee.id, "password_ending", f"mailbox:{mailbox.id}")]  # admins see it on their home
    entry = Notification.get(Notification.recipient == employee.id)
    assert link_of(entry.target) == ("mailboxes.edit", {"mailbox_id": mailbox.id})
    assert describe(entry, lambda text: text) == (
        "Microsoft 365 (Exchange Online) stops accepting the password of erik@acme.example on 31 December 2026: "
        "sign it in with the provider on its form before then.")

    for days in (10, 0, -40):  # every later hour, before, on and after the date: nobody is told twice
        warn_owners(M365_ENDS - datetime.timedelta(days=days))
    assert len(told()) == 1


def test_a_company_mailbox_reaches_the_admins_and_a_passed_date_is_said_so(at_m365, admin, make_employee):
    other_admin = make_employee(role="admin", email="boss@example.com")
    at_m365(None, "info@acme.example", scope="company")
    warn_owners(datetime.date(2027, 1, 5))
    assert {person for person, _, _ in told()} == {admin.id, other_admin.id}
    entry = Notification.get(Notification.recipient == admin.id)
    assert describe(entry, lambda text: text, "ru").startswith(
        "Microsoft 365 (Exchange Online) turned password sign-in off on 31 декабря 2026, and info@acme.example")


def test_a_new_owner_is_told_too(at_m365, employee, make_employee):
    mailbox = at_m365(employee, "shared@acme.example")
    warn_owners(M365_ENDS)
    successor = make_employee(email="successor@example.com")
    mailbox.owner = successor.id
    mailbox.save()
    warn_owners(M365_ENDS + datetime.timedelta(days=1))
    assert [person for person, _, _ in told()] == [employee.id, successor.id]


def test_a_paused_mailbox_is_told_about_like_any_other(at_m365, employee):
    """A person paused it: whoever resumes it later must already know its password is ending."""
    at_m365(employee, "paused@acme.example", active=False)
    warn_owners(M365_ENDS - datetime.timedelta(days=3))
    assert [person for person, _, _ in told()] == [employee.id]


def test_a_mailbox_signed_in_with_the_provider_or_elsewhere_is_never_told(at_m365, make_mailbox, employee):
    signed_in = at_m365(employee, "anna@acme.example", password="")
    grants.new_grant("microsoft", signed_in.address, "XOAUTH2", Tokens("at", "rt", 3600), mailbox=signed_in)
    make_mailbox(employee, address="anna@hotmail.com", smtp_host="relay.acme.example")  # not through Microsoft
    make_mailbox(employee, address="anna@gmail.com", smtp_host="smtp.gmail.com")
    warn_owners(datetime.date(2027, 1, 5))
    assert told() == []


def test_the_warning_reaches_the_owner_by_e_mail_in_their_language(make_mailbox, at_m365, employee, admin,
                                                                   smtp_server, run_queue):
    assert preferences(employee)["password_ending"]  # by e-mail unless the person chooses otherwise
    portal = passed_test(make_mailbox(None, address="portal@example.com", scope="company", smtp_host="localhost",
                                      smtp_port=smtp_server.port, smtp_security="starttls",
                                      smtp_username=smtp_server.username, password=smtp_server.password))
    set_system_mailbox(portal, actor=admin)
    employee.language = "ru"
    employee.save()
    at_m365(employee, "erik@acme.example")
    warn_owners(M365_ENDS - datetime.timedelta(days=7))
    run_queue()

    entry = Notification.get((Notification.recipient == employee.id) & (Notification.kind == "password_ending"))
    assert entry.mail_state == "mailed"
    texts = [email.message_from_bytes(m.content, policy=email.policy.default).get_body(("plain",)).get_content()
             for m in smtp_server.messages if employee.email in m.rcpt_tos]
    [text] = [text for text in texts if "Microsoft 365" in text]
    assert "Microsoft 365 (Exchange Online) перестанет принимать пароль адреса erik@acme.example" in text


def test_the_hourly_task_runs_on_one_worker_at_a_time(config, at_m365, employee, monkeypatch):
    """Every worker runs the periodic tasks: while one is telling people, another's run does nothing."""
    from portal import password_ending
    from portal.letters.worker import make_huey

    monkeypatch.setattr(password_ending, "today", lambda: M365_ENDS - datetime.timedelta(days=7))
    huey = make_huey({}, config["INSTANCE_PATH"])
    mailbox = at_m365(employee, "erik@acme.example")
    with huey.lock_task(password_ending.WARN_LOCK):  # another worker's run, under way
        assert huey.portal_tasks.warn_password_endings.call_local() is None
    assert told() == []
    assert huey.portal_tasks.warn_password_endings.call_local() == 1
    assert told() == [(employee.id, "password_ending", f"mailbox:{mailbox.id}")]
