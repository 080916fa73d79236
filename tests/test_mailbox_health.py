"""A mailbox's health against real servers: the background check warns, three refused sign-ins (checks and sends
together) pause it, a passing check resumes it, a certificate about to end warns, and the checks spread out."""
import dataclasses
import datetime
from collections import Counter

import pytest

from portal import events
from portal import mailbox_health as health
from portal.letters.worker import make_huey
from portal.models import AuditEvent, Letter, Mailbox, utcnow
from portal.models.health import MailboxHealth
from tests.fixtures.letters import passed_test
from tests.servers.certificates import make_certificate

PERIOD = datetime.timedelta(hours=6)


@pytest.fixture
def long_lived(mail_servers_root):
    """A server certificate valid for 90 days (the shared one ends tomorrow, which is itself a Warning)."""
    return make_certificate(mail_servers_root / "certs", label="health-90", valid_days=90)


@pytest.fixture
def server(make_smtp_server, long_lived):
    return make_smtp_server("starttls", certificate=long_lived)


@pytest.fixture
def config_for(mail_config):
    """The mail settings trusting ``certificate``'s CA."""
    return lambda certificate: dataclasses.replace(mail_config, ca_file=certificate.ca_file)


@pytest.fixture
def mailbox_on(make_mailbox, employee):
    """An employee's tested mailbox whose outgoing server is ``server``."""
    def make(server):
        return passed_test(make_mailbox(employee, address=server.username, smtp_host="localhost",
                                        smtp_port=server.port, smtp_security="starttls",
                                        smtp_username=server.username, password=server.password))
    return make


@pytest.fixture
def told():
    """The mailbox events sent while the test runs, as (event, address, problem)."""
    heard = []
    receivers = {}
    for name in ("mailbox_needs_attention", "mailbox_paused", "mailbox_recovered"):
        def receiver(mailbox, name=name, **details):
            heard.append((name, mailbox.address, details.get("problem")))
        receivers[name] = receiver
        getattr(events, name).connect(receiver)
    yield heard
    for name, receiver in receivers.items():
        getattr(events, name).disconnect(receiver)


def fresh(mailbox):
    return Mailbox.get_by_id(mailbox.id)


def test_a_password_changed_at_the_server_warns_three_failures_pause_and_a_pass_resumes(
        server, mailbox_on, config_for, long_lived, told):
    mailbox, config = mailbox_on(server), config_for(long_lived)
    assert health.check_mailbox(mailbox.id, config).state == health.WORKING
    assert told == []

    server.password = "changed-at-the-provider"
    found = health.check_mailbox(mailbox.id, config)
    assert found.state == health.WARNING and found.problem.code == "auth_failed"
    assert told == [("mailbox_needs_attention", mailbox.address, "auth_failed")]
    assert health.check_mailbox(mailbox.id, config).state == health.WARNING
    assert len(told) == 1  # the same problem again is not news

    found = health.check_mailbox(mailbox.id, config)
    assert found.state == health.PAUSED_BY_PORTAL and found.problem.code == "auth_failed"
    assert not fresh(mailbox).active and "535" in fresh(mailbox).paused_reply
    assert told[-1] == ("mailbox_paused", mailbox.address, "auth_failed")
    assert len(server.logins) == 4  # one sign-in a check: nothing extra for the provider's fail2ban to count

    server.password = mailbox.secret("smtp_password")  # the provider takes the old password again
    found = health.check_mailbox(mailbox.id, config)
    assert found.state == health.WORKING and found.problem is None
    assert fresh(mailbox).active and fresh(mailbox).sign_in_failures == 0
    assert told[-1] == ("mailbox_recovered", mailbox.address, None)
    assert [e.action for e in AuditEvent.select().where(AuditEvent.mailbox == mailbox.id).order_by(AuditEvent.id)
            ] == ["paused", "resumed"]


def test_checks_and_sends_share_one_count_of_refused_sign_ins(server, mailbox_on, config_for, long_lived,
                                                              write_letter, run_queue):
    mailbox, config = mailbox_on(server), config_for(long_lived)
    run_queue.mail_config = config
    server.password = "changed-at-the-provider"
    health.check_mailbox(mailbox.id, config)
    health.check_mailbox(mailbox.id, config)
    letter = write_letter(mailbox)

    run_queue()  # the third refusal in a row, this time by a send

    assert not fresh(mailbox).active and fresh(mailbox).paused_problem == "auth_failed"
    assert health.health(fresh(mailbox)).state == health.PAUSED_BY_PORTAL
    assert Letter.get_by_id(letter.id).state == "deferred"  # it waits for the mailbox, with that reason next time


def test_a_letter_sent_after_a_failed_check_shows_the_mailbox_works(server, mailbox_on, config_for, long_lived,
                                                                    write_letter, run_queue):
    mailbox, config = mailbox_on(server), config_for(long_lived)
    run_queue.mail_config = config
    server.fail("EHLO", "421 4.3.2 Service shutting down for maintenance")
    assert health.check_mailbox(mailbox.id, config).state == health.WARNING
    server.clear_script()
    write_letter(mailbox)
    run_queue.later(seconds=1)

    run_queue()

    assert health.health(fresh(mailbox)).state == health.WORKING


def test_a_certificate_that_ends_in_ten_days_warns(make_smtp_server, mail_servers_root, mailbox_on, config_for,
                                                   told):
    ending = make_certificate(mail_servers_root / "certs", label="health-10", valid_days=10)
    server = make_smtp_server("starttls", certificate=ending)
    mailbox = mailbox_on(server)

    found = health.check_mailbox(mailbox.id, config_for(ending))

    assert found.state == health.WARNING and found.problem.code == health.CERTIFICATE_EXPIRING
    assert found.certificate_expires_at.date() == (utcnow() + datetime.timedelta(days=10)).date()
    assert "ends" in found.problem.title("en") and "истекает" in found.problem.title("ru")
    assert told == [("mailbox_needs_attention", mailbox.address, health.CERTIFICATE_EXPIRING)]


def test_a_mailbox_paused_by_a_person_is_left_alone(server, mailbox_on, config_for, long_lived, employee):
    from portal.mailboxes import set_active

    mailbox = mailbox_on(server)
    set_active(mailbox, False, actor=employee)

    assert health.check_mailbox(mailbox.id, config_for(long_lived)) is None
    assert server.logins == []
    assert health.health(fresh(mailbox)).state == health.PAUSED_BY_PERSON
    assert mailbox.id not in health.due_for_check(utcnow() + PERIOD, PERIOD)


def test_each_mailbox_is_due_once_a_period_at_its_own_moment(make_mailbox, employee):
    start = utcnow().replace(second=0, microsecond=0)
    boxes = [make_mailbox(employee) for _ in range(60)]
    Mailbox.update(last_passed_test_at=start - PERIOD).execute()

    def checks_at(now):
        due = health.due_for_check(now, PERIOD)
        for mailbox_id in due:
            MailboxHealth.insert(mailbox=mailbox_id, last_check_at=now).on_conflict(
                conflict_target=[MailboxHealth.mailbox], update={MailboxHealth.last_check_at: now}).execute()
        return due

    assert len(checks_at(start)) == 60  # all overdue (the worker was off): caught up at once
    due_at = Counter()
    for minute in range(10, 6 * 60 + 10, 10):
        for mailbox_id in checks_at(start + datetime.timedelta(minutes=minute)):
            due_at[mailbox_id] += 1

    assert sorted(due_at) == sorted(box.id for box in boxes) and set(due_at.values()) == {1}  # each once
    per_hour = Counter(health.slot_of(box.id, PERIOD) // datetime.timedelta(hours=1) for box in boxes)
    assert max(per_hour.values()) <= 2 * 60 / 6  # spread over the period, not all at once


def test_a_letter_sent_since_the_last_check_counts_as_one(server, mailbox_on, write_letter):
    mailbox = mailbox_on(server)
    Mailbox.update(last_passed_test_at=utcnow() - 2 * PERIOD).where(Mailbox.id == mailbox.id).execute()
    assert mailbox.id in health.due_for_check(utcnow(), PERIOD)

    letter = write_letter(mailbox)
    Letter.update(state="sent", sent_at=utcnow()).where(Letter.id == letter.id).execute()

    assert mailbox.id not in health.due_for_check(utcnow(), PERIOD)
    assert mailbox.id in health.due_for_check(utcnow() + PERIOD, PERIOD)


def test_two_workers_never_check_the_same_mailbox(mail_reaches_localhost, long_lived, dns_server, app, server,
                                                  mailbox_on, tmp_path):
    from portal import deliverability

    app.config.update(PORTAL_MAIL_CA_FILE=long_lived.ca_file, PORTAL_MAIL_DNS_SERVERS=f"127.0.0.1:{dns_server.port}")
    mailbox = mailbox_on(server)
    Mailbox.update(last_passed_test_at=utcnow() - 2 * PERIOD).where(Mailbox.id == mailbox.id).execute()
    huey = make_huey(app.config, str(tmp_path / "queue"))
    task = huey.portal_tasks.check_mailbox

    with huey.lock_task(f"portal.check_mailbox.{mailbox.id}"):  # another worker is checking it
        assert task.call_local(mailbox.id) is None
    assert server.logins == []
    assert huey.portal_tasks.recheck_mailboxes.call_local() == 1  # the minute's look enqueues its check
    assert huey.pending_count() == 1

    assert task.call_local(mailbox.id) == health.WORKING  # as the worker runs it: checked, DNS renewed
    assert server.logins == [server.username] and deliverability.kept_checklist(mailbox) is not None
    assert task.call_local(mailbox.id) is None  # checked just now: not due again this period
    assert huey.portal_tasks.recheck_mailboxes.call_local() == 0


def test_a_passing_test_account_resumes_a_mailbox_the_portal_paused(app, server, mailbox_on, config_for, long_lived,
                                                                    employee, told):
    from portal.mailboxes import test_mailbox

    mailbox, config = mailbox_on(server), config_for(long_lived)
    Mailbox.update(active=False, paused_problem="auth_failed", paused_reply="535 5.7.8 no",
                   sign_in_failures=3).where(Mailbox.id == mailbox.id).execute()
    values = {"address": mailbox.address, "display_name": mailbox.display_name, "smtp_host": mailbox.smtp_host,
              "smtp_port": str(mailbox.smtp_port), "smtp_security": mailbox.smtp_security,
              "smtp_username": mailbox.smtp_username}

    outcome = test_mailbox(values, actor=employee, mail_config=config, secret_key=app.secret_key,
                           mailbox=fresh(mailbox))

    assert outcome.result.ok
    assert fresh(mailbox).active and fresh(mailbox).paused_problem == ""
    assert health.health(fresh(mailbox)).state == health.WORKING
    assert told == [("mailbox_recovered", mailbox.address, None)]


def test_the_background_check_renews_the_domains_deliverability(server, mailbox_on, config_for, long_lived,
                                                                dns_server):
    from portal import deliverability

    mailbox = mailbox_on(server)  # sender@example.com at a server "localhost"
    dns_server.add_txt("example.com", "v=spf1 a:localhost -all")
    assert deliverability.kept_checklist(mailbox) is None

    health.check_mailbox(mailbox.id, config_for(long_lived), resolver=dns_server.resolver())

    assert deliverability.kept_checklist(mailbox).findings[0].code == "spf_pass"


def test_refused_sends_tell_the_first_warning_and_the_pause(server, mailbox_on, config_for, long_lived, write_letter,
                                                            run_queue, told):
    mailbox = mailbox_on(server)
    run_queue.mail_config = config_for(long_lived)
    server.password = "changed-at-the-provider"
    write_letter(mailbox)

    for _ in range(3):
        run_queue()
        run_queue.later(hours=1)

    assert told == [("mailbox_needs_attention", mailbox.address, "auth_failed"),
                    ("mailbox_paused", mailbox.address, "auth_failed")]
    assert health.health(fresh(mailbox)).state == health.PAUSED_BY_PORTAL
