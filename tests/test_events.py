"""The domain events are sent where things happen: a receiver connected here hears them."""
from portal import events
from portal.mailboxes import set_active
from tests.fixtures.events import heard


def test_a_person_pausing_and_resuming_a_mailbox_is_heard(admin, make_mailbox):
    mailbox = make_mailbox()
    with heard(events.mailbox_paused) as paused, heard(events.mailbox_recovered) as recovered:
        set_active(mailbox, False, actor=admin)
        set_active(mailbox, True, actor=admin)
    assert [(m.id, kw) for m, kw in paused] == [(mailbox.id, {"problem": "", "by": admin})]
    assert [m.id for m, _ in recovered] == [mailbox.id]


def test_a_sent_letter_and_a_refused_one_are_heard(sending_mailbox, write_letter, run_queue, smtp_server):
    good = write_letter(sending_mailbox, to="client@example.com")
    with heard(events.letter_sent) as sent, heard(events.letter_failed) as failed:
        run_queue()
        bad = write_letter(sending_mailbox, to="nobody@example.com")
        smtp_server.fail("RCPT", "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown")
        run_queue()
    assert [letter.id for letter, _ in sent] == [good.id]
    assert [(letter.id, kw["problem"]) for letter, kw in failed] == [(bad.id, "recipient_unknown")]
