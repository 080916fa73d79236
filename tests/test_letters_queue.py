"""The sending core against a real aiosmtpd: states, retries, faults, leases, limits, batching and the guard."""
import datetime
import email
import random
from email import policy as email_policy

import pytest

from portal.db import database
from portal.letters.claims import claim
from portal.letters.claims import claim_due_letters
from portal.letters.outcomes import cancel_letter, retry_letter
from portal.letters.queue import QueuePolicy
from portal.mail.problems import Problem
from portal.mail.settings import MailConfig
from portal.models import Letter, LetterAttempt, LetterRecipient, utcnow
from tests.conftest import page_text
from tests.fixtures.letters import passed_test
from tests.servers.smtp import DROP_AFTER_DATA, DROP_DURING_DATA


def fresh(letter):
    return Letter.get_by_id(letter.id)


def received(server):
    return [email.message_from_bytes(m.content, policy=email_policy.default) for m in server.messages]


def test_a_letter_arrives_with_its_from_display_name_message_id_and_body(sending_mailbox, write_letter, run_queue,
                                                                         smtp_server):
    letter = write_letter(sending_mailbox, to="Фёдор Friend <friend@example.com>", cc="boss@example.org",
                          subject="Отчёт за квартал", body="Добрый день!\n\n<b>not bold</b>\n")
    assert fresh(letter).state == "queued"

    report = run_queue()

    letter = fresh(letter)
    assert report.outcomes["sent"] == 1 and letter.state == "sent" and letter.attempts == 1
    [message] = received(smtp_server)
    assert smtp_server.messages[0].mail_from == "sender@example.com"
    assert sorted(smtp_server.messages[0].rcpt_tos) == ["boss@example.org", "friend@example.com"]
    assert message["From"].addresses[0].display_name == "Erik at Work"
    assert message["From"].addresses[0].addr_spec == "sender@example.com"
    assert message["Message-ID"] == letter.message_id
    assert message["Reply-To"].addresses[0].addr_spec == "sender@example.com"
    assert message["Subject"] == "Отчёт за квартал"
    assert "Фёдор Friend" in str(message["To"])
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Добрый день!\n\n<b>not bold</b>\n"
    html = message.get_body(("html",)).get_content()
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html and "<b>" not in html
    assert {r.status for r in letter.recipients} == {"accepted"}
    [attempt] = letter.history
    assert attempt.outcome == "sent" and attempt.server_reply.startswith("250")


def test_lines_starting_with_a_dot_arrive_as_written(sending_mailbox, write_letter, run_queue, smtp_server):
    # A lone "." would end the letter early; every line starting with a dot is sent doubled and the server
    # takes one back.
    body = ".\n.hidden\n..two dots\nlast line .\n"
    letter = write_letter(sending_mailbox, body=body)

    run_queue()

    assert fresh(letter).state == "sent"
    [message] = received(smtp_server)
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == body


@pytest.mark.parametrize("command", ["MAIL", "RCPT", "DATA"])
def test_421_is_deferred_then_sent_on_retry_with_the_same_message_id(command, sending_mailbox, write_letter,
                                                                     run_queue, smtp_server):
    letter = write_letter(sending_mailbox)
    smtp_server.fail(command, "421 4.7.0 Try again later")

    run_queue()
    deferred = fresh(letter)
    assert deferred.state == "deferred" and deferred.attempts == 1
    assert deferred.problem_code == "temporary_refusal" and deferred.smtp_code == 421
    assert deferred.next_attempt_at > utcnow() + datetime.timedelta(seconds=25)
    assert smtp_server.messages == []

    run_queue()  # not due yet: nothing happens
    assert fresh(letter).attempts == 1

    smtp_server.clear_script()
    run_queue.later(minutes=2)
    run_queue()
    sent = fresh(letter)
    assert sent.state == "sent" and sent.attempts == 2
    [message] = received(smtp_server)
    assert message["Message-ID"] == letter.message_id
    assert [a.outcome for a in sent.history.order_by(LetterAttempt.id)] == ["deferred", "sent"]


def test_550_unknown_recipient_fails_at_once_with_an_explanation(sending_mailbox, write_letter, run_queue,
                                                                 smtp_server):
    letter = write_letter(sending_mailbox, to="nobody@example.com, also-nobody@example.com")
    smtp_server.fail("RCPT", "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown")

    run_queue()
    failed = fresh(letter)
    assert failed.state == "failed" and failed.attempts == 1
    problem = failed.problem()
    assert problem.code == "recipient_unknown" and not problem.temporary
    assert "does not exist" in problem.title("en")
    assert "5.1.1" in failed.server_reply
    refused = {r.address: r for r in failed.recipients}
    assert {r.status for r in refused.values()} == {"refused"}
    assert refused["nobody@example.com"].smtp_code == 550
    assert Letter.needing_attention(failed.author) == 1

    smtp_server.clear_script()
    run_queue.later(hours=2)
    run_queue()
    assert fresh(letter).attempts == 1 and smtp_server.messages == []


def test_a_connection_dropped_during_data_is_retried(sending_mailbox, write_letter, run_queue, smtp_server):
    letter = write_letter(sending_mailbox)
    smtp_server.fail("DATA", DROP_DURING_DATA)

    run_queue()
    deferred = fresh(letter)
    assert deferred.state == "deferred" and deferred.problem_code == "connection_dropped"
    assert deferred.phase == ""

    smtp_server.clear_script()
    run_queue.later(minutes=2)
    run_queue()
    assert fresh(letter).state == "sent" and len(smtp_server.messages) == 1


def test_a_connection_dropped_after_the_final_dot_is_uncertain_and_never_resent(sending_mailbox, write_letter,
                                                                                run_queue, smtp_server):
    letter = write_letter(sending_mailbox)
    smtp_server.fail("DATA", DROP_AFTER_DATA)

    run_queue()
    uncertain = fresh(letter)
    assert uncertain.state == "uncertain" and uncertain.problem_code == "delivery_uncertain"
    assert Letter.needing_attention(uncertain.author) == 1

    smtp_server.clear_script()
    run_queue.later(days=1)
    run_queue()
    assert fresh(letter).state == "uncertain" and fresh(letter).attempts == 1

    assert retry_letter(fresh(letter))  # a person decides to send it again
    run_queue.later(days=1, seconds=1)
    run_queue()
    assert fresh(letter).state == "sent" and len(smtp_server.messages) == 1


def test_a_server_that_never_answers_is_deferred_after_the_timeout(make_mailbox, employee, write_letter,
                                                                   silent_server, server_certificate):
    from portal.letters.queue import process_due_letters

    mailbox = passed_test(make_mailbox(employee, smtp_host="127.0.0.1", smtp_port=silent_server.port))
    letter = write_letter(mailbox)
    config = MailConfig(timeout=0.5, allowed_hosts=("127.0.0.1:*",), ca_file=server_certificate.ca_file)

    process_due_letters(config, QueuePolicy(mailbox_per_minute=0))

    deferred = fresh(letter)
    assert deferred.state == "deferred" and deferred.problem_code == "no_mail_server"
    assert deferred.problem().temporary


def test_a_mailbox_pointed_at_a_forbidden_host_does_not_send(sending_mailbox, write_letter, smtp_server,
                                                             server_certificate):
    from portal.letters.queue import process_due_letters

    letter = write_letter(sending_mailbox)
    guarded = MailConfig(timeout=2, ca_file=server_certificate.ca_file)  # 127.0.0.1 is not a public server

    process_due_letters(guarded, QueuePolicy(mailbox_per_minute=0))

    failed = fresh(letter)
    assert failed.state == "failed" and failed.problem_code == "connection_blocked"
    assert smtp_server.messages == [] and smtp_server.logins == []


def test_a_killed_worker_s_letter_is_sent_exactly_once_after_its_lease(sending_mailbox, write_letter, run_queue,
                                                                       smtp_server):
    letter = write_letter(sending_mailbox)
    # A worker claimed it and died before DATA's end: the row stays "sending" under its lease.
    token, claimed = claim_due_letters(QueuePolicy(lease=60), now=utcnow())
    assert [c.id for c in claimed] == [letter.id] and fresh(letter).state == "sending"

    run_queue()  # the lease still holds: another worker leaves it alone
    assert smtp_server.messages == [] and fresh(letter).state == "sending"

    run_queue.later(seconds=61)
    run_queue()
    run_queue.later(seconds=61)
    run_queue()
    assert fresh(letter).state == "sent" and len(smtp_server.messages) == 1


def test_a_worker_lost_after_the_final_dot_leaves_the_letter_uncertain(sending_mailbox, write_letter, run_queue,
                                                                       smtp_server):
    letter = write_letter(sending_mailbox)
    lease, _ = claim(60, 200, now=utcnow())
    assert lease.mark(letter.id)  # what a worker writes before the final dot
    Letter.update(attempts=1).where(Letter.id == letter.id).execute()

    run_queue.later(seconds=61)
    run_queue()

    lost = fresh(letter)
    assert lost.state == "uncertain" and lost.problem_code == "worker_lost"
    assert smtp_server.messages == []


def test_letters_through_one_mailbox_share_one_connection(sending_mailbox, write_letter, run_queue, smtp_server):
    letters = [write_letter(sending_mailbox, to=f"friend{n}@example.com") for n in range(6)]

    report = run_queue()

    assert report.connections == 1 and report.outcomes["sent"] == 6
    assert len(smtp_server.logins) == 1 and len(smtp_server.messages) == 6
    assert {fresh(letter).state for letter in letters} == {"sent"}


class RoundTrips:
    """The statements, BEGINs and COMMITs the bound database runs while in use (each a round trip on PostgreSQL)."""

    def __init__(self, monkeypatch):
        self.counts = {"statements": 0, "begins": 0, "commits": 0}
        db = database.obj
        for method, name in (("execute_sql", "statements"), ("begin", "begins"), ("commit", "commits")):
            monkeypatch.setattr(db, method, self._counting(getattr(db, method), name))

    def _counting(self, original, name):
        def counted(*args, **kwargs):
            self.counts[name] += 1
            return original(*args, **kwargs)
        return counted

    def during(self, action):
        """(what ``action()`` returned, the counts it added)."""
        before = dict(self.counts)
        result = action()
        return result, {name: self.counts[name] - before[name] for name in self.counts}


def test_each_letter_of_a_run_costs_the_mark_and_one_outcome_transaction(sending_mailbox, write_letter, run_queue,
                                                                         smtp_server, monkeypatch):
    # Per letter the queue must write its "data" mark and then its outcome in one transaction: the row, the history
    # line, and one statement for all the recipients the server accepted. A read per letter (its mailbox, its
    # limits, its recipients again) or a statement per recipient shows up here. The fifth is the webhooks' look for
    # endpoints that want "letter.sent" (portal/webhooks.py), the price of telling the systems around the portal.
    counter = RoundTrips(monkeypatch)

    def run_of(count):
        for n in range(count):
            write_letter(sending_mailbox, to=f"friend{n}@example.com", cc=f"boss{n}@example.org")
        report, counts = counter.during(run_queue)
        assert report.outcomes["sent"] == count and report.connections == 1
        return counts

    few, many = run_of(4), run_of(24)

    per_letter = {name: (many[name] - few[name]) / 20 for name in many}
    assert per_letter == {"statements": 5, "begins": 1, "commits": 1}
    assert len(smtp_server.messages) == 28
    assert {(r.status, r.smtp_code) for r in LetterRecipient.select()} == {("accepted", 250)}
    assert sorted((a.letter_id, a.outcome, a.number) for a in LetterAttempt.select()) == sorted(
        (letter.id, "sent", 1) for letter in Letter.select())


@pytest.mark.parametrize("next_mail", ["421 4.7.0 Closing connection", "550 5.7.1 Sender refused"])
def test_a_sent_letter_is_recorded_whatever_the_server_says_to_the_next_one(next_mail, sending_mailbox, write_letter,
                                                                            smtp_server, mail_config):
    # A letter's outcome is written before the next letter's MAIL FROM; that command's answer being a refusal or
    # a hang-up must not lose it.
    from portal.letters.queue import process_due_letters

    first, second = write_letter(sending_mailbox), write_letter(sending_mailbox, to="second@example.com")

    def clock():
        if smtp_server.messages:
            smtp_server.fail("MAIL", next_mail)
        return utcnow()

    report = process_due_letters(mail_config, QueuePolicy(mailbox_per_minute=0), clock=clock)

    assert fresh(first).state == "sent" and len(smtp_server.messages) == 1
    assert [a.outcome for a in fresh(first).history] == ["sent"]
    assert fresh(second).state == ("deferred" if next_mail.startswith("4") else "failed")
    assert report.outcomes["sent"] == 1


def test_the_mailbox_limit_defers_without_spending_attempts(sending_mailbox, write_letter, run_queue, smtp_server):
    letters = [write_letter(sending_mailbox, to=f"friend{n}@example.com") for n in range(3)]
    run_queue.policy = QueuePolicy(mailbox_per_minute=2)

    run_queue()
    states = [fresh(letter) for letter in letters]
    assert [s.state for s in states] == ["sent", "sent", "deferred"]
    held = states[2]
    assert held.waiting_for == "mailbox_limit" and held.attempts == 0
    assert held.next_attempt_at <= utcnow() + datetime.timedelta(seconds=61)

    run_queue.later(seconds=61)
    run_queue()
    assert fresh(letters[2]).state == "sent" and len(smtp_server.messages) == 3


def test_the_per_recipient_limit_defers_the_letter_past_the_window(sending_mailbox, write_letter, run_queue,
                                                                   smtp_server):
    letters = [write_letter(sending_mailbox, to="busy@example.com") for _ in range(3)]
    run_queue.policy = QueuePolicy(mailbox_per_minute=0, recipient_limit=2, recipient_window=600)

    run_queue()
    assert [fresh(letter).state for letter in letters] == ["sent", "sent", "deferred"]
    assert fresh(letters[2]).waiting_for == "recipient_limit"

    run_queue.later(minutes=5)
    run_queue()
    assert fresh(letters[2]).state == "deferred"

    run_queue.later(minutes=6)
    run_queue()
    assert fresh(letters[2]).state == "sent"


def test_temporary_failures_stop_after_the_attempt_budget(sending_mailbox, write_letter, run_queue, smtp_server):
    letter = write_letter(sending_mailbox)
    run_queue.policy = QueuePolicy(mailbox_per_minute=0, max_attempts=3)
    smtp_server.fail("MAIL", "451 4.3.0 Local error")

    for _ in range(4):
        run_queue()
        run_queue.later(hours=2)

    failed = fresh(letter)
    assert failed.state == "failed" and failed.attempts == 3 and failed.problem_stage == "gave_up"


def test_a_letter_older_than_the_age_budget_fails_on_its_next_temporary_failure(sending_mailbox, write_letter,
                                                                                run_queue, smtp_server):
    letter = write_letter(sending_mailbox)
    smtp_server.fail("MAIL", "421 4.7.0 Busy")
    run_queue.later(hours=25)

    run_queue()

    assert fresh(letter).state == "failed" and fresh(letter).attempts == 1


def test_back_off_doubles_with_jitter_and_is_capped():
    policy = QueuePolicy(retry_base=60, retry_max=3600)
    rng = random.Random(5)
    for attempt, ceiling in [(1, 60), (2, 120), (3, 240), (7, 3600), (12, 3600)]:
        delays = [policy.retry_delay(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len({round(d, 3) for d in delays}) > 40  # jittered, so workers do not retry in lock-step


def test_cancel_stops_a_queued_letter_and_retry_queues_it_again(sending_mailbox, write_letter, run_queue,
                                                                smtp_server):
    letter = write_letter(sending_mailbox)
    assert cancel_letter(letter)
    run_queue()
    assert fresh(letter).state == "cancelled" and smtp_server.messages == []

    assert retry_letter(fresh(letter))
    run_queue()
    assert fresh(letter).state == "sent"
    assert not cancel_letter(fresh(letter))  # gone out: nothing to cancel


def test_problems_for_letters_come_back_with_the_catalogue_words(sending_mailbox, write_letter, run_queue,
                                                                 smtp_server):
    letter = write_letter(sending_mailbox)
    smtp_server.fail("DATA", "554 5.7.1 Message rejected as spam")
    run_queue()
    problem = fresh(letter).problem()
    assert isinstance(problem, Problem) and problem.code == "message_rejected"
    assert problem.title("ru") and problem.advice("ru") != problem.advice("en")
    assert LetterRecipient.select().where(LetterRecipient.status == "accepted").count() == 0


def test_one_refused_recipient_is_recorded_while_the_others_receive_the_letter(sending_mailbox, write_letter,
                                                                               run_queue, smtp_server):
    letter = write_letter(sending_mailbox, to="ann@example.com, nobody@example.com", cc="bob@example.org")
    smtp_server.refuse("nobody@example.com", "550 5.1.1 <nobody@example.com>: Recipient address rejected")

    run_queue()

    sent = fresh(letter)
    assert sent.state == "sent" and sent.attempts == 1
    [message] = smtp_server.messages
    assert sorted(message.rcpt_tos) == ["ann@example.com", "bob@example.org"]
    rows = {r.address: r for r in sent.recipients}
    refused = rows["nobody@example.com"]
    assert refused.status == "refused" and refused.smtp_code == 550 and refused.problem_code == "recipient_unknown"
    assert "5.1.1" in refused.server_reply
    assert {rows[a].status for a in ("ann@example.com", "bob@example.org")} == {"accepted"}

    run_queue.later(hours=2)
    run_queue()
    assert len(smtp_server.messages) == 1 and fresh(letter).attempts == 1


def test_a_recipient_refused_for_now_gets_the_letter_on_the_retry_and_no_one_gets_it_twice(sending_mailbox,
                                                                                           write_letter, run_queue,
                                                                                           smtp_server):
    letter = write_letter(sending_mailbox, to="ann@example.com, busy@example.com")
    smtp_server.refuse("busy@example.com", "450 4.2.1 Mailbox busy, try again later")

    run_queue()
    deferred = fresh(letter)
    assert deferred.state == "deferred" and deferred.smtp_code == 450
    assert {r.address: r.status for r in deferred.recipients} == {"ann@example.com": "accepted",
                                                                  "busy@example.com": "deferred"}

    smtp_server.clear_script()
    run_queue.later(minutes=5)
    run_queue()

    assert fresh(letter).state == "sent"
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ann@example.com"], ["busy@example.com"]]
    assert {r.status for r in fresh(letter).recipients} == {"accepted"}


@pytest.fixture
def two_mailboxes(sending_mailbox, make_mailbox, employee, smtp_server):
    """The sending mailbox and a second one of the same person on the same server: one claim, two groups."""
    second = passed_test(make_mailbox(employee, address="second@example.com", smtp_host="localhost",
                                      smtp_port=smtp_server.port, smtp_security="starttls",
                                      smtp_username=smtp_server.username, password=smtp_server.password))
    return sending_mailbox, second


def copies(server, letter):
    """How many copies of this letter the server received."""
    return sum(1 for message in received(server) if message["Message-ID"] == letter.message_id)


def test_a_worker_slower_than_its_lease_leaves_the_letters_another_worker_claimed(two_mailboxes, write_letter,
                                                                                  smtp_server, mail_config):
    from portal.letters.queue import process_due_letters

    first, second = [write_letter(mailbox) for mailbox in two_mailboxes]
    policy = QueuePolicy(lease=60, mailbox_per_minute=0)
    start = utcnow()
    other_worker = []

    def clock():
        if smtp_server.messages and not other_worker:
            # The first letter took longer than the lease (a slow server): meanwhile another worker claimed
            # everything the lease held, and now holds it under its own lease.
            other_worker.append(claim_due_letters(policy, now=start + datetime.timedelta(seconds=61)))
        return start + datetime.timedelta(seconds=61 if other_worker else 0)

    report = process_due_letters(mail_config, policy, clock=clock)

    assert [letter.id for letter in other_worker[0][1]] == [first.id, second.id]
    assert report.outcomes["lease_lost"] == 2 and report.outcomes["sent"] == 0
    assert copies(smtp_server, first) == 1 and copies(smtp_server, second) == 0  # the second was left alone
    assert {fresh(letter).lease_token for letter in (first, second)} == {other_worker[0][0]}

    # The other worker died too; after its lease the next pass finishes the job, sending nothing twice.
    process_due_letters(mail_config, policy, clock=lambda: start + datetime.timedelta(seconds=122))
    assert copies(smtp_server, first) == 1 and copies(smtp_server, second) == 1
    assert fresh(first).state == "uncertain" and fresh(second).state == "sent"


def test_a_slow_pass_renews_its_lease_before_it_runs_out(two_mailboxes, write_letter, smtp_server, mail_config):
    from portal.letters.queue import process_due_letters

    first, second = [write_letter(mailbox) for mailbox in two_mailboxes]
    policy = QueuePolicy(lease=60, mailbox_per_minute=0)
    start = utcnow()
    taken_over = []

    def clock():
        # Each letter takes 45 s (a slow server). Once the second is accepted, 61 s after the claim, another
        # worker looks for letters whose lease ran out: there must be none.
        if len(smtp_server.messages) == 2 and not taken_over:
            taken_over.append(claim_due_letters(policy, now=start + datetime.timedelta(seconds=61))[1])
        return start + datetime.timedelta(seconds=45 * len(smtp_server.messages))

    report = process_due_letters(mail_config, policy, clock=clock)

    assert taken_over == [[]]
    assert report.outcomes["sent"] == 2 and "lease_lost" not in report.outcomes
    assert copies(smtp_server, first) == 1 and copies(smtp_server, second) == 1
    assert {fresh(letter).state for letter in (first, second)} == {"sent"}


def test_a_letter_to_an_international_domain_reaches_the_server_with_its_idna_form(sending_mailbox, write_letter,
                                                                                   run_queue, smtp_server):
    letter = write_letter(sending_mailbox, to="Пример <user@пример.рф>", cc="boss@ПРИМЕР.рф")
    assert letter.to_header == "Пример <user@пример.рф>"  # shown in its own letters

    run_queue()

    assert fresh(letter).state == "sent"
    [server_copy] = smtp_server.messages
    assert sorted(server_copy.rcpt_tos) == ["boss@xn--e1afmkfd.xn--p1ai", "user@xn--e1afmkfd.xn--p1ai"]
    [message] = received(smtp_server)
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [
        ("Пример", "user@xn--e1afmkfd.xn--p1ai")]
    assert message["Cc"].addresses[0].addr_spec == "boss@xn--e1afmkfd.xn--p1ai"


@pytest.mark.parametrize("change", ["paused", "port changed", "password changed"])
def test_a_mailbox_paused_or_changed_without_a_new_test_holds_its_letters(change, sending_mailbox, write_letter,
                                                                          run_queue, smtp_server, as_employee):
    letter = write_letter(sending_mailbox)
    if change == "paused":
        sending_mailbox.active = False
    elif change == "port changed":
        sending_mailbox.smtp_port = smtp_server.port + 1 if smtp_server.port < 65535 else smtp_server.port - 1
    else:
        sending_mailbox.set_secret("smtp_password", "typed-but-never-tested")
    sending_mailbox.save()
    reason = "mailbox_paused" if change == "paused" else "mailbox_untested"

    run_queue()

    waiting = fresh(letter)
    assert waiting.state == "deferred" and waiting.waiting_for == reason and waiting.attempts == 0
    assert smtp_server.messages == [] and smtp_server.logins == []
    outbox = as_employee.get("/outbox").get_data(as_text=True)
    assert ("The address is paused" if change == "paused" else "settings changed after its last passed test") in outbox
    history = page_text(as_employee.get(f"/letters/{letter.id}"))
    assert "Held back" in history and "sending limit" not in history  # the reason is the mailbox, not a limit

    # Resumed, or the changed settings put right and tested again: the letter goes out by itself.
    if change == "paused":
        sending_mailbox.active = True
    elif change == "port changed":
        sending_mailbox.smtp_port = smtp_server.port
    else:
        sending_mailbox.set_secret("smtp_password", smtp_server.password)
    passed_test(sending_mailbox)
    run_queue.later(minutes=2)
    run_queue()
    assert fresh(letter).state == "sent" and len(smtp_server.messages) == 1


def test_a_letter_whose_author_lost_the_mailbox_fails_with_the_reason_and_is_not_sent(
        sending_mailbox, write_letter, run_queue, smtp_server, other_employee, employee, as_employee):
    from portal.models import Mailbox

    letter = write_letter(sending_mailbox)
    Mailbox.update(owner=other_employee.id).where(Mailbox.id == sending_mailbox.id).execute()  # handed over

    run_queue()

    failed = fresh(letter)
    assert failed.state == "failed" and failed.problem_code == "sender_not_allowed" and failed.attempts == 0
    assert smtp_server.messages == [] and Letter.needing_attention(employee) == 1
    assert "You may no longer send from this address in this project" in as_employee.get("/outbox").get_data(
        as_text=True)


def test_a_new_first_secret_key_keeps_a_tested_mailbox_sending_before_and_after_rotation(
        sending_mailbox, write_letter, run_queue, smtp_server, app, runner):
    from portal.secret_box import SecretBox, configured_keys, install

    old_keys = configured_keys(app.config.get("PORTAL_SECRET_KEYS"), app.instance_path)
    # The deploy step: a new first key, the old one kept for reading, rotate-secrets not run yet.
    app.extensions["portal_secret_box"] = install(SecretBox(["a-brand-new-key", *old_keys]))
    first = write_letter(sending_mailbox)

    run_queue()

    assert fresh(first).state == "sent" and fresh(first).waiting_for in ("", None)

    assert runner.invoke(args=["rotate-secrets"]).exit_code == 0
    # The old key gone for good: the re-keyed digest and secrets still stand on the new key alone.
    app.extensions["portal_secret_box"] = install(SecretBox(["a-brand-new-key"]))
    second = write_letter(sending_mailbox)
    run_queue.later(minutes=2)
    run_queue()

    assert fresh(second).state == "sent" and len(smtp_server.messages) == 2
