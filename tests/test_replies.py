"""Replies fetched back from a real Dovecot over POP3 and IMAP: matched to our letters, never twice."""
import poplib

import pytest

from portal.letters.replies import fetch_problem, fetch_replies
from portal.models import Letter, MailboxInbox, Reply, SeenMessage
from tests.fixtures.letters import passed_test, reply_to, unrelated_message


@pytest.mark.parametrize("protocol", ["pop3", "imap"])
def test_a_reply_is_fetched_attached_to_its_letter_and_not_fetched_twice(protocol, replying_mailbox, write_letter,
                                                                         run_queue, dovecot, mail_user, mail_config):
    mailbox = replying_mailbox(protocol)
    first = write_letter(mailbox, subject="First")
    second = write_letter(mailbox, subject="Second")
    run_queue()
    dovecot.deliver(mail_user.address, unrelated_message(1))
    dovecot.deliver(mail_user.address, reply_to(Letter.get_by_id(second.id), text="Answer to the second",
                                                attachment=("offer.pdf", b"%PDF-1.4 " + b"x" * 1000)))

    [report] = fetch_replies(mail_config)

    assert report.ok and report.new_messages == 2 and report.bodies_downloaded == 1
    [reply] = Reply.select()
    assert reply.letter_id == second.id
    assert reply.sender == "Friend <friend@example.com>" and reply.subject == "Re: Second"
    assert reply.body_text == "Answer to the second"
    assert reply.date.isoformat() == "2024-01-02T07:00:00"
    assert reply.attachments == [{"name": "offer.pdf", "size": 1009, "type": "application/pdf"}]
    assert Letter.get_by_id(second.id).reply_count == 1 and Letter.get_by_id(first.id).reply_count == 0

    [again] = fetch_replies(mail_config)
    assert again.ok and again.new_messages == 0 and again.bodies_downloaded == 0
    assert Reply.select().count() == 1

    dovecot.deliver(mail_user.address, reply_to(Letter.get_by_id(first.id), text="Late answer", references=False))
    [third] = fetch_replies(mail_config)
    assert third.new_messages == 1 and Letter.get_by_id(first.id).reply_count == 1

    # The mail stays on the server: a plain POP3 client still sees all three messages.
    pop = poplib.POP3_SSL("127.0.0.1", dovecot.ports["pop3s"], context=_context(dovecot))
    pop.user(mail_user.address)
    pop.pass_(mail_user.password)
    assert pop.stat()[0] == 3
    pop.quit()


def _context(dovecot):
    import ssl

    context = ssl.create_default_context(cafile=dovecot.ca_file)
    context.check_hostname = False
    return context


def test_imap_starts_over_when_uidvalidity_changes_without_storing_replies_twice(replying_mailbox, write_letter,
                                                                                 run_queue, dovecot, mail_user,
                                                                                 mail_config):
    mailbox = replying_mailbox("imap")
    letter = write_letter(mailbox)
    run_queue()
    dovecot.deliver(mail_user.address, reply_to(Letter.get_by_id(letter.id)))
    fetch_replies(mail_config)
    inbox = MailboxInbox.get(MailboxInbox.mailbox == mailbox.id)
    assert inbox.last_uid >= 1 and inbox.uidvalidity
    MailboxInbox.update(uidvalidity=inbox.uidvalidity + 1).execute()  # as if the server rebuilt the folder

    [report] = fetch_replies(mail_config)

    assert report.new_messages == 1 and Reply.select().count() == 1


def test_a_fetch_failure_is_recorded_on_the_mailbox_with_the_catalogue_problem(replying_mailbox, mail_config,
                                                                               mail_user):
    mailbox = replying_mailbox("pop3")
    mailbox.set_secret("incoming_password", "wrong password")
    mailbox.save()

    [report] = fetch_replies(mail_config)

    assert not report.ok
    inbox = fetch_problem(mailbox)
    assert inbox is not None and inbox.problem().code in ("incoming_auth_failed", "auth_failed")
    assert "Authentication failed" in inbox.server_reply
    assert inbox.problem().title("ru")

    mailbox.set_secret("incoming_password", mail_user.password)
    mailbox.save()
    fetch_replies(mail_config)
    assert fetch_problem(mailbox) is None


def test_mailboxes_without_receive_replies_are_not_fetched(sending_mailbox, mail_config):
    assert fetch_replies(mail_config) == []
    assert SeenMessage.select().count() == 0


@pytest.mark.parametrize("protocol", ["pop3", "imap"])
def test_a_reply_in_one_mailbox_never_attaches_to_a_letter_sent_from_another(protocol, replying_mailbox, make_mailbox,
                                                                             employee, write_letter, run_queue,
                                                                             smtp_server, dovecot, mail_user,
                                                                             mail_config):
    inbox_owner = replying_mailbox(protocol)  # E: its inbox is the Dovecot box being fetched
    other = passed_test(make_mailbox(employee, address="other@example.com", smtp_host="localhost",
                                     smtp_port=smtp_server.port, smtp_username=smtp_server.username,
                                     password=smtp_server.password))  # F
    own_letter, foreign_letter = write_letter(inbox_owner, subject="From E"), write_letter(other, subject="From F")
    run_queue()
    dovecot.deliver(mail_user.address, reply_to(Letter.get_by_id(foreign_letter.id), text="Meant for F"))
    dovecot.deliver(mail_user.address, reply_to(Letter.get_by_id(own_letter.id), text="Meant for E"))

    [report] = fetch_replies(mail_config)

    assert report.ok and report.new_messages == 2 and report.bodies_downloaded == 1
    assert [(r.letter_id, r.body_text) for r in Reply.select()] == [(own_letter.id, "Meant for E")]
    assert Letter.get_by_id(foreign_letter.id).reply_count == 0
