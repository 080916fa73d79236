"""open_smtp/open_incoming: the shared path the letters queue sends and fetches through."""
from __future__ import annotations

import dataclasses
import logging
import smtplib
import time

import pytest

from portal.mail.connection import Deadline, MailError, open_incoming, open_smtp
from portal.mail.problems import classify
from portal.mail.stages import StageLog
from tests.servers.smtp import DROP_AFTER_DATA


def test_open_smtp_yields_a_signed_in_session_that_sends(smtp_server, mail_config):
    with open_smtp(smtp_server.mailbox(), mail_config) as smtp:
        refused = smtp.sendmail(smtp_server.username, ["friend@example.com"], b"Subject: hi\r\n\r\nhello\r\n")
    assert refused == {}
    [letter] = smtp_server.messages
    assert letter.login == smtp_server.username and letter.rcpt_tos == ["friend@example.com"]


def test_open_smtp_raises_mail_error_with_the_problem(smtps_server, mail_config):
    with pytest.raises(MailError) as failed:
        with open_smtp(smtps_server.mailbox(password="wrong"), mail_config):
            pytest.fail("must not get a session")
    assert failed.value.problem.code == "auth_failed"
    assert failed.value.problem.stage == "smtp.login"


def test_stages_are_reported_when_a_log_is_given(smtp_server, mail_config):
    log = StageLog("outgoing")
    with open_smtp(smtp_server.mailbox(), mail_config, stages=log):
        pass
    assert [s.name for s in log.stages] == ["smtp.resolve", "smtp.connect", "smtp.greeting", "smtp.tls",
                                            "smtp.login"]


@pytest.mark.parametrize("reply,code,temporary", [
    ("451 4.7.1 Greylisted, come back later", "temporary_refusal", True),
    ("554 5.7.1 Rejected as spam", "message_rejected", False),
])
def test_send_failures_classify_as_temporary_or_permanent(smtp_server, mail_config, reply, code, temporary):
    smtp_server.fail("DATA", reply)
    with open_smtp(smtp_server.mailbox(), mail_config) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            smtp.sendmail(smtp_server.username, ["friend@example.com"], b"Subject: x\r\n\r\nx\r\n")
    problem = classify(failed.value, stage="smtp.send")
    assert (problem.code, problem.temporary) == (code, temporary)


def test_hang_up_after_the_final_dot_is_connection_dropped(smtp_server, mail_config):
    smtp_server.fail("DATA", DROP_AFTER_DATA)
    with pytest.raises(smtplib.SMTPServerDisconnected) as failed:
        with open_smtp(smtp_server.mailbox(), mail_config) as smtp:
            smtp.sendmail(smtp_server.username, ["friend@example.com"], b"Subject: x\r\n\r\nx\r\n")
    problem = classify(failed.value, stage="smtp.send")
    assert problem.code == "connection_dropped" and problem.temporary


@pytest.mark.parametrize("protocol", ["pop3", "imap"])
def test_open_incoming_yields_a_signed_in_client_that_reads_mail(smtp_server, dovecot, mail_user, mail_config,
                                                                 protocol):
    dovecot.deliver(mail_user.address, b"Subject: Re: offer\r\n\r\nyes\r\n")
    mailbox = smtp_server.mailbox(incoming=dovecot.incoming_settings(mail_user.address, mail_user.password,
                                                                     protocol))
    with open_incoming(mailbox, mail_config) as client:
        if protocol == "pop3":
            assert b"Subject: Re: offer" in b"\r\n".join(client.retr(1)[1])
        else:
            client.select("INBOX", readonly=True)
            typ, data = client.fetch("1", "(RFC822)")
            assert b"Subject: Re: offer" in data[0][1]


def test_open_incoming_needs_an_incoming_server(smtp_server, mail_config):
    with pytest.raises(ValueError):
        with open_incoming(smtp_server.mailbox(), mail_config):
            pass


def test_no_secret_reaches_the_log(smtp_server, dovecot, mail_user, mail_config, caplog):
    caplog.set_level(logging.DEBUG)
    mailbox = smtp_server.mailbox(incoming=dovecot.incoming_settings(mail_user.address, mail_user.password))
    with open_smtp(mailbox, mail_config):
        pass
    with open_incoming(mailbox, mail_config):
        pass
    assert "portal.mail" in {record.name for record in caplog.records}
    assert smtp_server.password not in caplog.text
    assert mail_user.password not in caplog.text


def test_a_stalled_session_is_cut_at_the_deadline_while_in_use(smtp_server, mail_config):
    # Signed in fine, then the server holds its reply to DATA: the deadline shuts the socket, the
    # read blocked in smtplib wakes at once, and the caller learns the session is gone.
    smtp_server.stall("DATA", 30)
    started = time.monotonic()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        with open_smtp(smtp_server.mailbox(), dataclasses.replace(mail_config, timeout=20.0), deadline=1.5) as smtp:
            smtp.sendmail(smtp_server.username, ["friend@example.com"], b"Subject: x\r\n\r\nx\r\n")
    assert time.monotonic() - started < 3


def test_the_configured_deadline_bounds_a_reply_fetch_session(mail_config):
    from portal.mail.settings import IncomingSettings, MailboxSettings, ServerSettings
    from tests.servers.slow import TarpitServer

    tarpit = TarpitServer(interval=0.5, greeting=b"+OK Dovecot ready.\r\n")
    incoming = IncomingSettings("pop3", ServerSettings("127.0.0.1", tarpit.port, "none", "", ""))
    mailbox = MailboxSettings("sender@example.com", "Sender", ServerSettings("127.0.0.1", 1, "none", "", ""),
                              incoming)
    started = time.monotonic()
    try:
        with pytest.raises(MailError) as failed:
            with open_incoming(mailbox, dataclasses.replace(mail_config, timeout=5.0, deadline=1.5)):
                pytest.fail("must not get a session")
    finally:
        tarpit.stop()
    assert time.monotonic() - started < 3
    assert failed.value.problem.code == "too_slow"
    assert failed.value.problem.stage == "pop3.greeting"


def test_one_deadline_shared_by_two_sessions_ends_both(smtp_server, mail_config):
    deadline = Deadline(1.0)
    with open_smtp(smtp_server.mailbox(), mail_config, deadline=deadline) as first:
        with open_smtp(smtp_server.mailbox(), mail_config, deadline=deadline) as second:
            time.sleep(1.3)
            for session in (first, second):
                with pytest.raises(smtplib.SMTPServerDisconnected):
                    session.noop()
    assert deadline.expired


def test_a_renewed_deadline_keeps_a_healthy_session_and_still_cuts_a_stalled_one(smtp_server, mail_config):
    # A send pass renews the deadline before each letter: four letters over 2.4 s on a 1 s deadline.
    deadline = Deadline(1.0)
    with open_smtp(smtp_server.mailbox(), mail_config, deadline=deadline) as smtp:
        for _ in range(4):
            deadline.renew()
            time.sleep(0.6)
            smtp.sendmail(smtp_server.username, ["friend@example.com"], b"Subject: x\r\n\r\nx\r\n")
        smtp_server.stall("DATA", 30)
        deadline.renew()
        started = time.monotonic()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.sendmail(smtp_server.username, ["friend@example.com"], b"Subject: x\r\n\r\nx\r\n")
    assert len(smtp_server.messages) == 5 and time.monotonic() - started < 2
    assert deadline.expired
