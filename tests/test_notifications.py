"""The notification centre's core: the domain events become entries for the right people, linking to the place
to act; preferences per kind; read marks."""
import pytest

from portal import events
from portal.mailboxes import save_mailbox, set_active
from portal.models import Letter, Notification, Reply
from portal.notifications import (BY_EMAIL_DEFAULT, KINDS, describe, link_of, mark_read, notify, preferences,
                                  set_preferences, unread_count)
from tests.fixtures.letters import reply_to


def entries(person=None):
    query = Notification.select().order_by(Notification.id)
    if person is not None:
        query = query.where(Notification.recipient == person.id)
    return [(n.recipient_id, n.kind, n.target) for n in query]


def test_a_refused_letter_tells_its_author_and_links_to_the_letter(
        sending_mailbox, write_letter, run_queue, smtp_server, employee, other_employee):
    letter = write_letter(sending_mailbox, to="nobody@example.com", subject="Offer for ACME")
    smtp_server.fail("RCPT", "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown")
    run_queue()

    assert Letter.get_by_id(letter.id).state == "failed"
    assert entries() == [(employee.id, "letter_failed", f"letter:{letter.id}")]
    [entry] = Notification.select()
    assert entry.about == "Offer for ACME" and entry.detail == "recipient_unknown" and entry.unread
    assert link_of(entry.target) == ("letters.letter", {"letter_id": letter.id})
    assert describe(entry, lambda text: text) == (
        "Your letter “Offer for ACME” could not be sent: The recipient address does not exist.")
    assert unread_count(employee.id) == 1 and unread_count(other_employee.id) == 0


def test_a_sent_letter_tells_nobody(sending_mailbox, write_letter, run_queue):
    write_letter(sending_mailbox)
    run_queue()
    assert entries() == []


def test_a_bounce_tells_the_author_naming_the_recipients(sending_mailbox, write_letter, run_queue, employee):
    letter = write_letter(sending_mailbox, subject="Invoice")
    run_queue()
    events.letter_bounced.send(Letter.get_by_id(letter.id), recipients=["friend@example.com"])
    [entry] = Notification.select()
    assert (entry.recipient_id, entry.kind, entry.detail) == (employee.id, "letter_bounced", "friend@example.com")


@pytest.mark.parametrize("protocol", ["imap"])
def test_a_reply_fetched_from_dovecot_tells_the_author_and_links_to_the_reply(
        protocol, replying_mailbox, write_letter, run_queue, dovecot, mail_user, mail_config, employee):
    from portal.letters.replies import fetch_replies

    mailbox = replying_mailbox(protocol)
    letter = write_letter(mailbox, subject="Proposal")
    run_queue()
    dovecot.deliver(mail_user.address, reply_to(Letter.get_by_id(letter.id), text="Yes, please."))
    fetch_replies(mail_config)

    [reply] = Reply.select()
    [entry] = Notification.select()
    assert (entry.recipient_id, entry.kind, entry.target) == (employee.id, "reply_received", f"reply:{reply.id}")
    assert describe(entry, lambda text: text) == "Friend <friend@example.com> replied to your letter “Proposal”."


def test_pausing_a_company_mailbox_tells_the_other_admins_and_the_authors_of_its_waiting_letters(
        make_employee, make_mailbox, write_letter, employee, other_employee):
    first_admin, second_admin = make_employee(role="admin"), make_employee(role="admin")
    make_employee(role="admin", active=False)
    company = make_mailbox(address="sales@example.com")
    write_letter(company, check_sender=False)
    write_letter(company, check_sender=False)
    lone = write_letter(company, author=other_employee, check_sender=False)

    set_active(company, False, actor=first_admin)

    assert sorted(entries()) == sorted([
        (second_admin.id, "mailbox_paused", f"mailbox:{company.id}"),
        (employee.id, "letter_waiting", "outbox"),
        (other_employee.id, "letter_waiting", f"letter:{lone.id}"),
    ])
    waiting = Notification.get(Notification.recipient == employee.id)
    assert describe(waiting, lambda text: text) == (
        "2 of your letters wait: the address sales@example.com they leave from is paused.")
    paused = Notification.get(Notification.recipient == second_admin.id)
    assert describe(paused, lambda text: text) == f"The address sales@example.com was paused by {first_admin.name}."


def test_the_portal_pausing_an_employee_mailbox_tells_its_owner_with_the_problem(make_mailbox, employee, admin):
    mailbox = make_mailbox(employee)
    events.mailbox_paused.send(mailbox, problem="auth_failed", by=None)
    events.mailbox_needs_attention.send(mailbox, problem="auth_failed")
    assert entries() == [(employee.id, "mailbox_paused", f"mailbox:{mailbox.id}"),
                         (employee.id, "mailbox_needs_attention", f"mailbox:{mailbox.id}")]
    sentence = describe(Notification.get(Notification.kind == "mailbox_paused"), lambda text: text)
    assert sentence.startswith(f"The portal paused the address {mailbox.address}: ")


def test_an_admin_giving_an_employee_an_address_tells_the_employee(app, admin, employee):
    from portal.mailboxes import clean_mailbox, make_proof

    values = {"address": "erik@example.com", "display_name": "Erik", "smtp_host": "smtp.example.com",
              "smtp_port": "587", "smtp_security": "starttls", "smtp_username": "erik@example.com",
              "smtp_password": "pw-1234"}
    cleaned = clean_mailbox(values)
    proof = make_proof(cleaned.settings, admin, app.secret_key)
    saved = save_mailbox(values, actor=admin, secret_key=app.secret_key, owner=employee, proof=proof)
    assert entries() == [(employee.id, "mailbox_assigned", f"mailbox:{saved.mailbox.id}")]
    # An employee adding their own address is not told about it.
    values["address"] = values["smtp_username"] = "erik2@example.com"
    cleaned = clean_mailbox(values)
    save_mailbox(values, actor=employee, secret_key=app.secret_key,
                 proof=make_proof(cleaned.settings, employee, app.secret_key))
    assert len(entries()) == 1


def test_marking_read_one_entry_or_all_touches_only_the_persons_own(employee, other_employee):
    mine = [notify(employee, "mailbox_assigned", about=f"box{n}@example.com") for n in range(3)]
    theirs = notify(other_employee, "mailbox_assigned", about="x@example.com")
    assert mark_read(employee, [mine[0].id, theirs.id]) == 1
    assert unread_count(employee.id) == 2 and unread_count(other_employee.id) == 1
    assert mark_read(employee) == 2
    assert unread_count(employee.id) == 0 and unread_count(other_employee.id) == 1


def test_preferences_default_to_e_mail_for_problems_and_are_stored_per_kind(employee, other_employee):
    assert {kind for kind, by_email in preferences(employee).items() if by_email} == BY_EMAIL_DEFAULT
    set_preferences(employee, {"reply_received"})
    assert preferences(employee) == {kind: kind == "reply_received" for kind in KINDS}
    assert {kind for kind, by_email in preferences(other_employee).items() if by_email} == BY_EMAIL_DEFAULT
    with pytest.raises(ValueError):
        set_preferences(employee, {"everything"})


def test_a_failing_receiver_never_breaks_the_sender(make_mailbox, employee, monkeypatch):
    import portal.notifications as notifications

    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(notifications, "notify", broken)
    mailbox = make_mailbox(employee)
    events.mailbox_needs_attention.send(mailbox, problem="auth_failed")  # logged, not raised
    assert entries() == []
