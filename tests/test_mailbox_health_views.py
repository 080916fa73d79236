"""The Health page, the health badge wherever a mailbox is listed, a mailbox's health panel and Fetch now."""
import datetime
import re

import pytest

from portal.letters.worker import huey_for
from portal.models import Letter, Mailbox, MailboxInbox, Reply, utcnow
from portal.models.health import MailboxHealth
from tests.conftest import page_text
from tests.fixtures.letters import reply_to


@pytest.fixture
def dns_for_app(config, dns_server):
    """DNS questions go to the test DNS server only (PORTAL_MAIL_DNS_SERVERS); set before `app`."""
    config.update(PORTAL_MAIL_DNS_SERVERS=f"127.0.0.1:{dns_server.port}")
    return dns_server


@pytest.fixture
def boxes(make_mailbox, employee, other_employee):
    """A working, a warning, a portal-paused and a person-paused mailbox, and letters waiting on the pause."""
    working = make_mailbox(employee, address="erik@example.ru", smtp_host="smtp.yandex.ru")
    warning = make_mailbox(scope="company", address="sales@example.com")
    MailboxHealth.create(mailbox=warning, last_check_at=utcnow(), last_check_ok=False, failed_checks=1,
                         problem_code="auth_failed", problem_stage="smtp.login", server_reply="535 5.7.8 bad")
    portal_paused = make_mailbox(other_employee, address="olga@example.com", active=False,
                                 paused_problem="auth_failed", paused_reply="535 5.7.8 Authentication failed")
    person_paused = make_mailbox(other_employee, address="olga2@example.com", active=False)
    for n in range(2):
        Letter.create(author=other_employee, mailbox=portal_paused, from_address=portal_paused.address,
                      message_id=f"<w{n}@example.com>", raw_message="x", state="deferred",
                      problem_code="mailbox_paused")
    return working, warning, portal_paused, person_paused


def test_the_health_page_is_for_admins_only(as_employee):
    assert as_employee.get("/admin/mail/health").status_code == 404


def test_the_health_page_lists_every_mailbox_with_its_state_and_the_letters_waiting(as_admin, boxes):
    response = as_admin.get("/admin/mail/health")
    text = page_text(response)

    assert response.status_code == 200
    for address, state in (("erik@example.ru", "Working"), ("sales@example.com", "Warning"),
                           ("olga@example.com", "Paused by the portal"), ("olga2@example.com", "Paused by a person")):
        assert re.search(re.escape(address) + r" [A-Za-z ]*?" + state, text), address
    assert "Letters waiting 2 — The address is paused" in text
    assert "olga@example.com Olga Other Paused by the portal" in text
    assert 'href="/admin/mail/health"' in response.get_data(as_text=True)  # in Account management


@pytest.mark.parametrize("state, shown", [("attention", ["sales@", "olga@", "olga2@"]), ("working", ["erik@"]),
                                          ("paused_by_portal", ["olga@"])])
def test_the_health_page_filters_by_state(as_admin, boxes, state, shown):
    response = as_admin.get(f"/admin/mail/health?state={state}", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert "<html" not in body and "HX-Request" in response.headers["Vary"]
    listed = [a for a in ("erik@", "sales@", "olga@", "olga2@") if f"<strong>{a}" in body]
    assert listed == shown


def test_the_health_page_speaks_russian(client, auth, make_employee, boxes):
    auth.login(make_employee(role="admin", language="ru", email="ru-admin@example.com"))
    text = page_text(client.get("/admin/mail/health"))
    assert "Приостановлен порталом" in text and "Приостановлен человеком" in text and "Работает" in text


def test_the_badge_shows_the_state_in_the_company_list_and_an_employees_addresses(as_admin, boxes,
                                                                                  other_employee):
    company = page_text(as_admin.get("/admin/mail/outgoing"))
    assert ("sales@example.com Box 2 Every project — Everyone Warning Sign-in refused: wrong login or password"
            in company)
    theirs = page_text(as_admin.get(f"/admin/mail/employees/{other_employee.id}"))
    assert ("Paused by the portal The provider refused the sign-in three times in a row. Fix the password, run Test "
            "account, then resume. 535 5.7.8 Authentication failed") in theirs
    assert "Paused by a person" in theirs


def test_the_badge_shows_the_state_in_my_addresses(as_employee, boxes):
    mine = page_text(as_employee.get("/my/addresses"))
    assert "erik@example.ru Box 1 Every project — Working" in mine
    assert "sales@example.com Box 2 Every project — Warning" in mine  # a company address shared with me


def test_the_panel_shows_incoming_health_and_the_domains_deliverability(dns_for_app, as_employee, boxes):
    working = boxes[0]
    dns_for_app.add_txt("example.ru", "v=spf1 include:_spf.google.com ~all")
    dns_for_app.add_mx("example.ru", "mx.yandex.net")
    Mailbox.update(receive_replies=True, incoming_protocol="imap", incoming_host="imap.yandex.ru",
                   incoming_port=993).where(Mailbox.id == working.id).execute()
    read_at = utcnow() - datetime.timedelta(minutes=3)
    MailboxInbox.create(mailbox=working, last_fetch_at=read_at, last_success_at=read_at)
    letter = Letter.create(author=working.owner, mailbox=working, from_address=working.address,
                           message_id="<sent@example.ru>", raw_message="x", state="sent", sent_at=read_at)
    for n in range(2):
        Reply.create(letter=letter, mailbox=working, message_id=f"<r{n}@example.ru>",
                     fetched_at=read_at + datetime.timedelta(seconds=1))

    response = as_employee.get(f"/mailboxes/{working.id}/health", headers={"HX-Request": "true"})
    text = page_text(response)

    assert response.status_code == 200
    assert "Replies that read brought 2" in text and "Fetch now" in text
    assert "were not looked at yet" in text and dns_for_app.questions == []  # a page never waits on DNS
    response = as_employee.post(f"/mailboxes/{working.id}/check-dns", headers={"HX-Request": "true"})
    text = page_text(response)
    assert ("Letters from this address may land in spam: the SPF record of example.ru does not include "
            "smtp.yandex.ru.") in text
    assert "The domain example.ru receives mail (MX)." in text and "no DMARC record" in text
    assert 'hx-get="/mailboxes/%d/health"' % working.id in as_employee.get(f"/mailboxes/{working.id}/edit").get_data(
        as_text=True)


def test_nobody_else_sees_a_mailboxs_health(as_employee, boxes):
    assert as_employee.get(f"/mailboxes/{boxes[2].id}/health").status_code == 404
    assert as_employee.post(f"/mailboxes/{boxes[2].id}/check-dns").status_code == 404
    assert as_employee.post(f"/mailboxes/{boxes[2].id}/fetch-now").status_code == 404


def test_fetch_now_asks_a_worker_once_a_minute(dns_for_app, app, as_employee, boxes):
    working = boxes[0]
    Mailbox.update(receive_replies=True, incoming_protocol="imap", incoming_host="imap.yandex.ru",
                   incoming_port=993).where(Mailbox.id == working.id).execute()
    queue = huey_for(app)
    queue.flush()

    first = page_text(as_employee.post(f"/mailboxes/{working.id}/fetch-now", headers={"HX-Request": "true"}))
    second = page_text(as_employee.post(f"/mailboxes/{working.id}/fetch-now", headers={"HX-Request": "true"}))

    assert "Fetching replies now." in first
    assert "Replies were fetched a moment ago. Try again after" in second
    assert queue.pending_count() == 1
    assert queue.dequeue().name == "portal.fetch_replies_now"


def test_fetch_now_reads_the_real_incoming_server_and_the_panel_tells_what_it_brought(
        mail_reaches_localhost, replying_mailbox, write_letter, run_queue, dovecot, mail_user, app, as_employee):
    mailbox = replying_mailbox("imap")
    letter = write_letter(mailbox)
    run_queue()
    dovecot.deliver(mail_user.address, reply_to(Letter.get_by_id(letter.id)))
    queue = huey_for(app)
    queue.flush()

    def fetch_now():
        as_employee.post(f"/mailboxes/{mailbox.id}/fetch-now", headers={"HX-Request": "true"})
        queue.execute(queue.dequeue())  # what a worker does with it
        return page_text(as_employee.get(f"/mailboxes/{mailbox.id}/health", headers={"HX-Request": "true"}))

    assert "Replies that read brought 1" in fetch_now()
    assert Reply.select().where(Reply.letter == letter.id).count() == 1

    MailboxHealth.update(fetch_asked_at=utcnow() - datetime.timedelta(minutes=2)).execute()  # a minute later
    mailbox.set_secret("incoming_password", "changed at the provider")
    mailbox.save()
    text = fetch_now()

    assert "Replies that read brought 1" in text  # the last good read's, beside the failed one's problem
    assert re.search(r"Last problem [0-9: -]+: Incoming mail sign-in refused \[AUTHENTICATIONFAILED\]", text)


def test_a_mailbox_the_portal_paused_leaves_a_gap_in_who_sends_from_what(as_admin, make_mailbox, employee,
                                                                         make_project):
    project = make_project("Alpha")
    make_mailbox(employee, address="erik@example.com", active=False, paused_problem="auth_failed")

    text = page_text(as_admin.get("/admin/mail/senders"))
    why = page_text(as_admin.get(f"/admin/mail/senders/{employee.id}/{project.id}"))

    assert "Erik Employee Sales Nobody nobody can send" in text
    assert "paused: erik@example.com" in why
