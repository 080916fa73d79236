"""The health checks' schedule tells the owner and the admins, once per mailbox, that its provider stops taking its
password within 30 days (or already refuses it), in the notification centre and by e-mail. The checks run against
the local SMTP server with a pinned ``now``: a hotmail.com address there counts as Outlook.com by its domain."""
from __future__ import annotations

import datetime
import email
import email.policy

import pytest

from portal import mailbox_health as health
from portal.models import Notification
from portal.notifications import describe, link_of, preferences
from portal.oauth import grants
from portal.oauth.client import Tokens
from portal.portal_mail import set_system_mailbox
from tests.fixtures.letters import passed_test

OUTLOOK_ENDS = datetime.datetime(2024, 9, 16, 9, 0)


@pytest.fixture
def at_local_server(make_mailbox, smtp_server):
    """at_local_server(owner, address): a mailbox on the local SMTP server, with a password."""
    def make(owner, address, **more):
        values = {"smtp_host": "localhost", "smtp_port": smtp_server.port, "smtp_security": "starttls",
                  "smtp_username": smtp_server.username, "password": smtp_server.password, **more}
        return passed_test(make_mailbox(owner, address=address, **values))
    return make


def told():
    return [(n.recipient_id, n.kind, n.target) for n in
            Notification.select().where(Notification.kind == "password_ending").order_by(Notification.id)]


def test_the_owner_and_the_admins_are_told_once_when_30_days_are_left(at_local_server, employee, admin, mail_config):
    mailbox = at_local_server(employee, "anna@hotmail.com")
    health.check_mailbox(mailbox.id, mail_config, now=OUTLOOK_ENDS - datetime.timedelta(days=31))
    assert told() == []

    health.check_mailbox(mailbox.id, mail_config, now=OUTLOOK_ENDS - datetime.timedelta(days=30))
    assert told() == [(employee.id, "password_ending", f"mailbox:{mailbox.id}"),
                      (admin.id, "password_ending", f"mailbox:{mailbox.id}")]
    entry = Notification.get(Notification.recipient == employee.id)
    assert link_of(entry.target) == ("mailboxes.edit", {"mailbox_id": mailbox.id})
    assert describe(entry, lambda text: text) == (
        "Outlook.com (Hotmail, Live) stops accepting the password of anna@hotmail.com on 16 September 2024: sign it "
        "in with the provider on its form before then.")

    for days in (10, 0, -40):  # later checks, before, on and after the date: nobody is told twice
        health.check_mailbox(mailbox.id, mail_config, now=OUTLOOK_ENDS - datetime.timedelta(days=days))
    assert len(told()) == 2


def test_a_mailbox_past_the_date_is_told_as_refused_and_a_company_one_reaches_the_admins(
        at_local_server, admin, make_employee, mail_config):
    other_admin = make_employee(role="admin", email="boss@example.com")
    mailbox = at_local_server(None, "info@live.com", scope="company")
    health.check_mailbox(mailbox.id, mail_config, now=datetime.datetime(2026, 12, 7))
    assert {person for person, _, _ in told()} == {admin.id, other_admin.id}
    entry = Notification.get((Notification.recipient == admin.id) & (Notification.kind == "password_ending"))
    assert describe(entry, lambda text: text, "ru").startswith(
        "Outlook.com (Hotmail, Live) no longer accepts the password of info@live.com (since 16 сентября 2024)")


def test_a_mailbox_signed_in_with_the_provider_or_elsewhere_is_never_told(at_local_server, employee, mail_config):
    signed_in = at_local_server(employee, "anna@outlook.com", password="")
    grants.new_grant("microsoft", signed_in.address, "XOAUTH2", Tokens("at", "rt", 3600), mailbox=signed_in)
    elsewhere = at_local_server(employee, "anna@acme.example")
    for mailbox in (signed_in, elsewhere):
        health.check_mailbox(mailbox.id, mail_config, now=datetime.datetime(2026, 12, 7))
    assert told() == []


def test_the_warning_reaches_the_owner_by_e_mail_in_their_language(at_local_server, employee, admin, smtp_server,
                                                                   mail_config, run_queue):
    assert preferences(employee)["password_ending"]  # by e-mail unless the person chooses otherwise
    portal = at_local_server(None, "portal@example.com", scope="company")
    set_system_mailbox(portal, actor=admin)
    employee.language = "ru"
    employee.save()
    mailbox = at_local_server(employee, "anna@hotmail.com")
    health.check_mailbox(mailbox.id, mail_config, now=datetime.datetime(2026, 12, 7))
    run_queue()

    entry = Notification.get((Notification.recipient == employee.id) & (Notification.kind == "password_ending"))
    assert entry.mail_state == "mailed"
    texts = [email.message_from_bytes(m.content, policy=email.policy.default).get_body(("plain",)).get_content()
             for m in smtp_server.messages if employee.email in m.rcpt_tos]
    # (the shared test certificate ends tomorrow: that warning comes in a letter of its own)
    [text] = [text for text in texts if "Outlook.com" in text]
    assert "Outlook.com (Hotmail, Live) больше не принимает пароль адреса anna@hotmail.com" in text
