"""The bilingual problem catalogue and classify()."""
from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl

import pytest

from portal.mail.deadline import DeadlineExceeded
from portal.mail.errors import GuardRefused, HostNotFound, NoMailServer, PresetHostNotFound
from portal.mail.problems import Problem, catalogue, catalogue_entry, classify, classify_reply

REQUIRED_CODES = {
    "host_not_found", "connection_refused", "timeout", "tls_failed", "security_mode_mismatch",
    "certificate_untrusted", "certificate_wrong_name", "starttls_not_offered", "auth_failed",
    "app_password_required", "smtp_auth_disabled", "mail_client_access_off", "encryption_required",
    "sender_not_owned", "relay_denied", "message_rejected", "recipient_unknown", "temporary_refusal",
    "connection_dropped", "incoming_auth_failed", "incoming_locked", "incoming_disabled",
    "connection_blocked", "unknown", "too_slow", "no_mail_server",
}


def test_catalogue_has_every_problem_the_issue_names_in_both_languages():
    entries = catalogue()
    assert REQUIRED_CODES <= {entry.code for entry in entries}
    assert len({entry.code for entry in entries}) == len(entries)
    for entry in entries:
        for lang in ("en", "ru"):
            assert entry.title[lang].strip() and entry.advice[lang].strip(), (entry.code, lang)
        assert entry.title["ru"] != entry.title["en"]


@pytest.mark.parametrize("error,stage,code", [
    (smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid"), "smtp.login", "auth_failed"),
    (smtplib.SMTPAuthenticationError(
        534, b"5.7.9 Application-specific password required. Learn more at "
             b"https://support.google.com/mail/?p=InvalidSecondFactor"),
     "smtp.login", "app_password_required"),
    (smtplib.SMTPAuthenticationError(
        535, b"5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."),
     "smtp.login", "smtp_auth_disabled"),
    (smtplib.SMTPAuthenticationError(
        535, b"5.7.8 Error: authentication failed: This user does not have access rights to this service"),
     "smtp.login", "mail_client_access_off"),
    (smtplib.SMTPAuthenticationError(535, b"5.7.0 NEOBHODIM parol prilozheniya / Application password is REQUIRED"),
     "smtp.login", "mail_client_access_off"),
    (smtplib.SMTPSenderRefused(530, b"5.7.0 Must issue a STARTTLS command first.", "a@b"), "smtp.envelope",
     "encryption_required"),
    (smtplib.SMTPSenderRefused(553, b"5.7.1 Sender address rejected: not owned by user", "a@b"), "smtp.envelope",
     "sender_not_owned"),
    (smtplib.SMTPDataError(550, b"5.7.60 SMTP; Client does not have permissions to send as this sender"),
     "smtp.send", "sender_not_owned"),
    (smtplib.SMTPRecipientsRefused({"x@y": (550, b"5.7.1 Unable to relay")}), "smtp.envelope", "relay_denied"),
    (smtplib.SMTPRecipientsRefused({"x@y": (550, b"5.1.1 The email account does not exist")}), "smtp.send",
     "recipient_unknown"),
    (smtplib.SMTPDataError(554, b"5.7.1 Message rejected under suspicion of SPAM"), "smtp.send", "message_rejected"),
    (smtplib.SMTPDataError(451, b"4.7.1 Greylisting in action, please come back later"), "smtp.send",
     "temporary_refusal"),
    (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), "smtp.send", "connection_dropped"),
    (smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."), "smtp.tls",
     "starttls_not_offered"),
    (socket.gaierror(-2, "Name or service not known"), "smtp.resolve", "host_not_found"),
    (ConnectionRefusedError(111, "Connection refused"), "smtp.connect", "connection_refused"),
    (TimeoutError("timed out"), "smtp.greeting", "timeout"),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"), "smtp.tls",
     "security_mode_mismatch"),
    (ssl.SSLError(1, "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure"), "smtp.tls", "tls_failed"),
    (poplib.error_proto(b"-ERR [AUTH] Authentication failed."), "pop3.login", "incoming_auth_failed"),
    (imaplib.IMAP4.error(b"[AUTHENTICATIONFAILED] Authentication failed."), "imap.login", "incoming_auth_failed"),
    (poplib.error_proto(b"-ERR [IN-USE] Mailbox is locked by another POP3 session"), "pop3.login", "incoming_locked"),
    (poplib.error_proto(b"-ERR [SYS/PERM] Your account is not enabled for POP access. Please visit your Gmail "
                        b"settings page and enable your account for POP access."), "pop3.login", "incoming_disabled"),
    (imaplib.IMAP4.error(b"[ALERT] Your account is not enabled for IMAP use."), "imap.login", "incoming_disabled"),
    (imaplib.IMAP4.error(b"[ALERT] Application-specific password required"), "imap.login", "app_password_required"),
    (GuardRefused(), "smtp.resolve", "connection_blocked"),
    (smtplib.SMTPResponseException(599, b"5.9.9 Something nobody has seen"), "smtp.send", "unknown"),
])
def test_errors_map_to_their_problem(error, stage, code):
    problem = classify(error, stage=stage)
    assert problem.code == code
    assert problem.stage == stage
    if isinstance(error, (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused, poplib.error_proto,
                          imaplib.IMAP4.error)) and not isinstance(error, imaplib.IMAP4.abort):
        assert problem.server_reply  # the server's own words are kept
    else:
        # A local finding (no name, refused, timed out, TLS) is the portal's, never "The server replied:".
        assert problem.server_reply == ""


def test_unknown_errors_keep_the_server_text_prominent():
    problem = classify_reply(550, b"5.9.9 Frobnication limit exceeded", stage="smtp.send", command="DATA")
    assert problem.server_reply == "550 5.9.9 Frobnication limit exceeded"
    assert problem.to_dict("en")["server_reply"] == problem.server_reply


@pytest.mark.parametrize("code,temporary", [(421, True), (450, True), (452, True), (550, False), (554, False)])
def test_temporary_follows_the_reply_class(code, temporary):
    assert classify_reply(code, "whatever", stage="smtp.send").temporary is temporary


def test_temporary_without_a_reply_code_comes_from_the_catalogue():
    assert classify(TimeoutError("timed out"), stage="smtp.connect").temporary
    assert not classify(socket.gaierror(-2, "no"), stage="smtp.resolve").temporary


def test_provider_help_page_is_added_to_the_advice():
    problem = classify(poplib.error_proto(b"-ERR [SYS/PERM] Your account is not enabled for POP access."),
                       stage="pop3.login", provider="google")
    assert "https://support.google.com/" in problem.advice("en")
    assert "https://support.google.com/" in problem.advice("ru")
    assert "https://" not in Problem("incoming_disabled", "pop3.login", "x").advice("en")


def test_an_unknown_code_falls_back_to_the_unknown_entry():
    assert catalogue_entry("no-such-code").code == "unknown"


@pytest.mark.parametrize("error,code", [
    (DeadlineExceeded(30), "too_slow"),
    (NoMailServer("SSH-2.0-OpenSSH_9.2p1"), "no_mail_server"),
])
def test_the_engines_own_findings_have_their_entries(error, code):
    problem = classify(error, stage="smtp.greeting")
    assert problem.code == code and problem.temporary
    assert "OpenSSH" not in problem.title("en") + problem.advice("en")


# Replies as Postfix 3.7, Exim 4 and Exchange Online word them, at the command that draws them.
@pytest.mark.parametrize("command, code, text, expected", [
    # Postfix
    ("MAIL", 553, "5.7.1 <anna@mail.example>: Sender address rejected: not owned by auth user bob@mail.example",
     "sender_not_owned"),
    ("MAIL", 553, "5.7.1 <anna@mail.example>: Sender address rejected: not owned by user bob@mail.example",
     "sender_not_owned"),
    ("MAIL", 530, "5.7.0 Must issue a STARTTLS command first", "encryption_required"),
    ("MAIL", 553, "5.7.1 <anna@mail.example>: Sender address rejected: not logged in", "sender_not_owned"),
    ("RCPT", 554, "5.7.1 <x@client.example>: Relay access denied", "relay_denied"),
    ("RCPT", 550, "5.1.1 <nobody@mail.example>: Recipient address rejected: User unknown in virtual mailbox table",
     "recipient_unknown"),
    ("RCPT", 450, "4.2.0 <x@mail.example>: Recipient address rejected: Mailbox busy, try again later",
     "temporary_refusal"),
    ("DATA", 554, "5.7.1 Message content rejected", "message_rejected"),
    ("DATA", 552, "5.3.4 Message size exceeds fixed limit", "message_too_large"),
    ("AUTH", 535, "5.7.8 Error: authentication failed: authentication failure", "auth_failed"),
    # Exim
    ("MAIL", 550, "Submission must be authenticated", "auth_required"),
    ("RCPT", 550, "relay not permitted", "relay_denied"),
    ("RCPT", 550, "Unrouteable address", "unknown"),
    ("MAIL", 530, "Authentication required", "auth_required"),
    ("AUTH", 535, "Incorrect authentication data", "auth_failed"),
    ("MAIL", 550, "Sender verify failed: sender not authorised for this login", "sender_not_owned"),
    # Exchange Online
    ("MAIL", 530, "5.7.57 Client not authenticated to send mail during MAIL FROM", "auth_required"),
    ("AUTH", 535, "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
     "smtp_auth_disabled"),
    ("AUTH", 535, "5.7.139 Authentication unsuccessful, the user credentials were incorrect.", "auth_failed"),
    ("DATA", 554, "5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to "
     "process message due to a permanent exception", "sender_not_owned"),
    ("AUTH", 535, "5.7.3 Authentication unsuccessful", "microsoft_auth_unsuccessful"),  # issue 12: its own advice
    ("RCPT", 550, "5.7.54 SMTP; Unable to relay recipient in non-accepted domain", "relay_denied"),
    ("RCPT", 550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
     "recipient_unknown"),
    ("DATA", 451, "4.7.500 Server busy. Please try again later", "temporary_refusal"),
])
def test_real_server_replies_are_explained_by_their_most_specific_entry(command, code, text, expected):
    """The specific words win over a code many refusals share: "not owned by auth user" is not "wants a sign-in"."""
    assert classify_reply(code, text, stage="smtp.envelope", command=command).code == expected


@pytest.mark.parametrize("error, stage", [
    (poplib.error_proto(b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."),
     "pop3.login"),
    (imaplib.IMAP4.error(b"[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) "
                         b"connections."), "imap.login"),
])
def test_dovecots_plaintext_refusal_says_turn_encryption_on_not_wrong_password(error, stage):
    problem = classify(error, stage=stage)
    assert problem.code == "encryption_required"
    assert "993" in problem.advice("en") and "995" in problem.advice("ru")


@pytest.mark.parametrize("error, code", [
    (HostNotFound("[Errno -2] Name or service not known"), "host_not_found"),
    (PresetHostNotFound("[Errno -3] Temporary failure in name resolution"), "host_not_resolved_here"),
    (GuardRefused(), "connection_blocked"),
    (TimeoutError("timed out"), "timeout"),
])
def test_local_findings_are_the_portals_words_not_a_server_reply(error, code):
    problem = classify(error, stage="smtp.resolve")
    assert problem.code == code
    assert problem.server_reply == ""
    assert "Errno" not in problem.title("ru") + problem.advice("ru")
