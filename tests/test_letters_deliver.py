"""One SMTP transaction against a server that behaves like Postfix: RSET after a refusal, whose command a 5xx
answers, and a sign-in that fails once per pass."""
import email
from email import policy as email_policy

from portal.letters.queue import process_due_letters
from portal.models import AuditEvent, Letter, Mailbox
from tests.conftest import page_text
from tests.fixtures.letters import passed_test

QUEUE_FULL = "451 4.3.0 Error: queue file write error"


def fresh(letter):
    return Letter.get_by_id(letter.id)


def received(server):
    return [email.message_from_bytes(m.content, policy=email_policy.default) for m in server.messages]


def test_a_451_at_the_end_of_data_is_followed_by_rset_so_the_next_letter_is_not_harmed(
        sending_mailbox, write_letter, run_queue, smtp_server):
    # Postfix answers MAIL after its own 451 at the end of DATA with "503 nested MAIL command" unless the client
    # sends RSET first; without it the third letter, which did nothing wrong, failed for good.
    smtp_server.like_postfix = True
    smtp_server.answer_in_turn("DATA", [None, QUEUE_FULL, None, QUEUE_FULL])
    letters = [write_letter(sending_mailbox, to=f"friend{n}@example.com", subject=f"Letter {n}") for n in range(4)]

    report = run_queue()

    assert [fresh(letter).state for letter in letters] == ["sent", "deferred", "sent", "deferred"]
    assert report.connections == 1
    assert smtp_server.commands.count("RSET") == 2
    for letter in letters[1::2]:
        [recipient] = fresh(letter).recipients
        # The refusal at DATA is every recipient's answer: nobody is left "waiting".
        assert (recipient.status, recipient.smtp_code) == ("deferred", 451)
        assert "queue file write error" in recipient.server_reply

    run_queue.later(hours=2)
    run_queue()
    assert [fresh(letter).state for letter in letters] == ["sent"] * 4
    assert sorted(message["Subject"] for message in received(smtp_server)) == [f"Letter {n}" for n in range(4)]


def test_a_letter_refused_at_the_end_of_data_for_good_names_the_refusal_for_every_recipient(
        sending_mailbox, write_letter, run_queue, smtp_server):
    smtp_server.answer_in_turn("DATA", ["554 5.7.1 Message rejected as spam"])
    letter = write_letter(sending_mailbox, to="a@example.com", cc="b@example.com")

    run_queue()

    letter = fresh(letter)
    assert letter.state == "failed" and letter.smtp_code == 554
    assert {(r.address, r.status, r.smtp_code) for r in letter.recipients} == {
        ("a@example.com", "refused", 554), ("b@example.com", "refused", 554)}


def test_a_503_after_a_refused_recipient_is_the_connection_s_problem_not_the_next_recipient_s(
        sending_mailbox, write_letter, run_queue, smtp_server):
    # The server forgets the transaction with its 550: the next RCPT gets "503 need MAIL command". That 503 is
    # no answer about friend@, so friend@ must not be refused for good; the queue reconnects and tries again.
    smtp_server.forget_after_refusal = True
    smtp_server.refuse("nobody@example.com")
    letter = write_letter(sending_mailbox, to="nobody@example.com, friend@example.com")
    after = write_letter(sending_mailbox, to="other@example.com")

    report = run_queue()

    letter = fresh(letter)
    answers = {r.address: (r.status, r.smtp_code) for r in letter.recipients}
    assert answers["nobody@example.com"] == ("refused", 550)
    assert answers["friend@example.com"][0] == "deferred"
    assert letter.state == "deferred"
    assert fresh(after).state == "sent"
    assert report.connections == 2  # a fresh session after the server lost track

    run_queue.later(hours=2)
    run_queue()
    assert fresh(letter).state == "sent"
    assert [m.rcpt_tos for m in smtp_server.messages] == [["other@example.com"], ["friend@example.com"]]


def test_an_unknown_reply_to_mail_is_retried_on_a_new_connection(sending_mailbox, write_letter, run_queue,
                                                                 smtp_server):
    smtp_server.fail("MAIL", "354 what?")
    letter = write_letter(sending_mailbox)

    run_queue()

    assert fresh(letter).state == "deferred"
    smtp_server.clear_script()
    run_queue.later(hours=2)
    run_queue()
    assert fresh(letter).state == "sent" and len(smtp_server.messages) == 1


def test_a_refused_sign_in_is_tried_once_per_pass_and_three_in_a_row_pause_the_mailbox(
        sending_mailbox, write_letter, run_queue, smtp_server):
    smtp_server.password = "changed-at-the-provider"  # the owner changed it there, not here
    letters = [write_letter(sending_mailbox, subject=f"Letter {n}") for n in range(3)]

    for passes in (1, 2, 3):
        run_queue()
        # One attempt, one mechanism (no PLAIN then LOGIN): the provider's fail2ban counts one failure.
        assert len(smtp_server.logins) == passes
        run_queue.later(hours=1)

    mailbox = Mailbox.get_by_id(sending_mailbox.id)
    assert not mailbox.active
    assert mailbox.paused_problem == "auth_failed" and "535" in mailbox.paused_reply
    assert all(fresh(letter).state == "deferred" for letter in letters)
    run_queue()
    assert len(smtp_server.logins) == 3  # paused: nobody signs in until a person resumes it
    assert {fresh(letter).waiting_for for letter in letters} == {"mailbox_paused"}
    assert smtp_server.messages == []


def test_a_successful_sign_in_starts_the_count_of_failures_again(sending_mailbox, write_letter, run_queue,
                                                                 smtp_server):
    right = smtp_server.password
    for password in ("wrong", "wrong", right, "wrong", "wrong"):
        smtp_server.password = password
        write_letter(sending_mailbox)
        run_queue()
        run_queue.later(hours=1)

    assert Mailbox.get_by_id(sending_mailbox.id).active


def test_a_pass_over_all_mailboxes_stops_only_the_one_whose_sign_in_failed(
        sending_mailbox, make_mailbox, employee, write_letter, make_smtp_server, smtp_server, mail_config):
    other_server = make_smtp_server()
    other = passed_test(make_mailbox(employee, address=other_server.username, smtp_host="localhost",
                                     smtp_port=other_server.port, smtp_security="starttls",
                                     smtp_username=other_server.username, password=other_server.password))
    smtp_server.password = "changed-at-the-provider"
    write_letter(sending_mailbox)
    good = write_letter(other)

    process_due_letters(mail_config)

    assert fresh(good).state == "sent" and len(other_server.messages) == 1


def test_the_owner_and_the_admins_see_why_the_queue_paused_the_mailbox(
        client, auth, admin, employee, sending_mailbox, write_letter, run_queue, smtp_server):
    smtp_server.password = "changed-at-the-provider"
    write_letter(sending_mailbox)
    for _ in range(3):
        run_queue()
        run_queue.later(hours=1)

    auth.login(employee)
    mine = page_text(client.get("/my/addresses"))
    assert "refused the sign-in three times in a row" in mine and "535" in mine
    auth.logout()
    auth.login(admin)
    employees_page = page_text(client.get(f"/admin/mail/employees/{employee.id}"))
    assert "refused the sign-in three times in a row" in employees_page
    trail = AuditEvent.select().where((AuditEvent.mailbox == sending_mailbox.id) & (AuditEvent.action == "paused"))
    assert [event.actor_id for event in trail] == [None]
