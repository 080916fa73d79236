"""The real-provider fixture behaves like a provider: it delivers, refuses relaying and plaintext, bounces."""
from __future__ import annotations

import imaplib
import poplib
import secrets
import smtplib
import ssl
from email.message import EmailMessage

import pytest

from tests.servers.real_provider import (BOUNCING_DOMAIN, CLIENT_DOMAIN, CONTENT_REJECTED, MAILBOX_BUSY,
                                         PROVIDER_DOMAIN, SERVICE_NOT_AVAILABLE, TEMPORARY_SCANNER_FAILURE)


def _address(domain: str) -> str:
    return f"u{secrets.token_hex(4)}@{domain}"


def _letter(sender: str, recipient: str, subject: str = "Quarterly figures", body: str = "Hello from the test.\n"):
    letter = EmailMessage()
    letter["From"], letter["To"], letter["Subject"] = sender, recipient, subject
    letter.set_content(body)
    return letter


@pytest.fixture
def provider(real_provider):
    """The session's provider with every failure case switched off again after the test."""
    yield real_provider
    real_provider.clear_failures()


@pytest.fixture
def tls(provider) -> ssl.SSLContext:
    """A client TLS context that trusts the provider's certificate."""
    return ssl.create_default_context(cafile=provider.ca_file)


def _signed_in(provider, tls, address, password, port="submission") -> smtplib.SMTP:
    if port == "submissions":
        client = smtplib.SMTP_SSL(provider.host, provider.ports[port], timeout=10, context=tls)
    else:
        client = smtplib.SMTP(provider.host, provider.ports[port], timeout=10)
        client.starttls(context=tls)
    client.login(address, password)
    return client


@pytest.mark.parametrize("port", ["submission", "submissions"])
def test_a_signed_in_letter_is_delivered_to_the_client_domain(provider, tls, port):
    """A letter sent through submission (STARTTLS or implicit TLS) arrives in the recipient's maildir."""
    anna, recipient = _address(PROVIDER_DOMAIN), _address(CLIENT_DOMAIN)
    password = provider.add_user(anna)
    provider.add_user(recipient)
    with _signed_in(provider, tls, anna, password, port) as client:
        client.send_message(_letter(anna, recipient, subject="Счёт за ноябрь"))
    [delivered] = provider.wait_for_letters(recipient)
    assert delivered["Subject"] == "Счёт за ноябрь"
    assert delivered["From"] == anna
    assert delivered.get_content() == "Hello from the test.\n"


def test_the_letter_can_be_read_back_over_imaps_on_the_incoming_host(provider, tls):
    """The recipient's letter is there over IMAPS, at 127.0.0.2, with the recipient's password."""
    anna, recipient = _address(PROVIDER_DOMAIN), _address(CLIENT_DOMAIN)
    password = provider.add_user(anna)
    recipient_password = provider.add_user(recipient)
    with _signed_in(provider, tls, anna, password) as client:
        client.send_message(_letter(anna, recipient, subject="Read me back"))
    provider.wait_for_letters(recipient)
    imap = imaplib.IMAP4_SSL(provider.incoming_host, provider.ports["imaps"], ssl_context=tls, timeout=10)
    try:
        imap.login(recipient, recipient_password)
        imap.select("INBOX")
        _, found = imap.search(None, "SUBJECT", '"Read me back"')
        assert len(found[0].split()) == 1
    finally:
        imap.logout()


def test_the_mx_port_refuses_to_relay_to_the_outside_world(provider):
    """Without sign-in the MX port takes mail for its own domains only: 554 Relay access denied."""
    anna = _address(PROVIDER_DOMAIN)
    provider.add_user(anna)
    with smtplib.SMTP(provider.host, provider.ports["mx"], timeout=10) as client:
        client.ehlo("portal.example.com")
        assert "auth" not in client.esmtp_features
        client.mail(anna)
        code, reply = client.rcpt("someone@elsewhere.example.com")
    assert code == 554
    assert b"Relay access denied" in reply


def test_submission_hides_auth_before_starttls_and_refuses_unsigned_mail(provider, tls):
    """smtpd_tls_auth_only: no AUTH on the plain connection; after TLS, mail without sign-in is refused."""
    anna, recipient = _address(PROVIDER_DOMAIN), _address(CLIENT_DOMAIN)
    provider.add_user(anna)
    with smtplib.SMTP(provider.host, provider.ports["submission"], timeout=10) as client:
        client.ehlo("portal.example.com")
        assert "auth" not in client.esmtp_features
        assert "starttls" in client.esmtp_features
        code, _ = client.mail(anna)
        assert code == 530  # "Must issue a STARTTLS command first"
    with smtplib.SMTP(provider.host, provider.ports["submission"], timeout=10) as client:
        client.starttls(context=tls)
        client.ehlo("portal.example.com")
        assert "auth" in client.esmtp_features
        client.mail(anna)
        code, reply = client.rcpt(recipient)
    assert code == 554
    assert b"Client host rejected" in reply or b"Access denied" in reply


def test_a_login_may_not_send_as_someone_else(provider, tls):
    """reject_sender_login_mismatch: 553 5.7.1 ... not owned by user, unless the address is shared with it."""
    anna, shared, recipient = _address(PROVIDER_DOMAIN), _address(PROVIDER_DOMAIN), _address(CLIENT_DOMAIN)
    password = provider.add_user(anna)
    provider.add_user(shared)
    provider.add_user(recipient)
    with _signed_in(provider, tls, anna, password) as client:
        client.mail(shared)
        code, reply = client.rcpt(recipient)
        assert code == 553
        assert b"5.7.1" in reply and b"not owned by user" in reply
    provider.allow_sender(shared, anna)
    with _signed_in(provider, tls, anna, password) as client:
        client.send_message(_letter(shared, recipient))
    assert provider.wait_for_letters(recipient)[0]["From"] == shared


def test_plaintext_imap_and_pop3_logins_are_refused_on_the_incoming_host(provider):
    """From 127.0.0.1 to 127.0.0.2 Dovecot treats the plain port as insecure: no password in clear."""
    anna = _address(PROVIDER_DOMAIN)
    password = provider.add_user(anna)
    imap = imaplib.IMAP4(provider.incoming_host, provider.ports["imap"], timeout=10)
    try:
        assert "LOGINDISABLED" in imap.capabilities
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(anna, password)
    finally:
        imap.shutdown()
    pop = poplib.POP3(provider.incoming_host, provider.ports["pop3"], timeout=10)
    try:
        with pytest.raises(poplib.error_proto, match="Plaintext authentication disallowed"):
            pop.user(anna)  # Dovecot refuses already at USER, before any password could be sent
    finally:
        pop.close()


def test_a_letter_to_a_gone_domain_comes_back_as_a_dsn(provider, tls):
    """Mail for gone.example is refused by the next hop; the sender gets a delivery status notification."""
    anna = _address(PROVIDER_DOMAIN)
    password = provider.add_user(anna)
    lost = f"nobody@{BOUNCING_DOMAIN}"
    with _signed_in(provider, tls, anna, password) as client:
        client.send_message(_letter(anna, lost, subject="Where did it go"))
    [dsn] = provider.wait_for_letters(anna)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    status = next(part for part in dsn.walk() if part.get_content_type() == "message/delivery-status")
    text = status.as_string()
    assert f"rfc822; {lost}" in text
    assert "Action: failed" in text
    assert "Relay access denied" in text


def test_a_temporary_failure_at_the_end_of_data_defers_until_lifted(provider, tls):
    """The 451 switch answers the end of DATA for one recipient; switched off, the same letter goes through."""
    anna, recipient = _address(PROVIDER_DOMAIN), _address(CLIENT_DOMAIN)
    password = provider.add_user(anna)
    provider.add_user(recipient)
    provider.fail_end_of_data(recipient)
    with _signed_in(provider, tls, anna, password) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.send_message(_letter(anna, recipient))
    assert refused.value.smtp_code == 451
    assert TEMPORARY_SCANNER_FAILURE.split(" ", 2)[2].encode() in refused.value.smtp_error
    assert provider.letters(recipient) == []
    provider.clear_failures()
    with _signed_in(provider, tls, anna, password) as client:
        client.send_message(_letter(anna, recipient))
    assert len(provider.wait_for_letters(recipient)) == 1


@pytest.mark.parametrize("reply", [MAILBOX_BUSY, SERVICE_NOT_AVAILABLE])
def test_a_recipient_can_be_refused_at_rcpt(provider, tls, reply):
    """The RCPT switch answers 450 (and the session goes on) or 421 (and the server hangs up)."""
    anna, recipient = _address(PROVIDER_DOMAIN), _address(CLIENT_DOMAIN)
    password = provider.add_user(anna)
    provider.add_user(recipient)
    provider.refuse_recipient(recipient, reply)
    client = _signed_in(provider, tls, anna, password)
    try:
        client.mail(anna)
        code, text = client.rcpt(recipient)
        assert code == int(reply[:3])
        assert reply.split(" ", 2)[2].encode() in text
        if code == 421:
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
    finally:
        client.close()


def test_content_can_be_rejected(provider, tls):
    """The content switch refuses a letter whose body has the word, with a 5xx at the end of DATA."""
    anna, recipient = _address(PROVIDER_DOMAIN), _address(CLIENT_DOMAIN)
    password = provider.add_user(anna)
    provider.add_user(recipient)
    provider.reject_content("casino-bonus")
    with _signed_in(provider, tls, anna, password) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.send_message(_letter(anna, recipient, body="Your casino-bonus is waiting\n"))
        client.send_message(_letter(anna, recipient, body="Minutes of the meeting\n"))
    assert refused.value.smtp_code == 550
    assert CONTENT_REJECTED.encode() in refused.value.smtp_error
    [delivered] = provider.wait_for_letters(recipient)
    assert delivered.get_content() == "Minutes of the meeting\n"


def test_the_smtp_server_can_be_stopped_and_started(provider):
    """While stopped the submission port refuses connections; started again it greets."""
    provider.stop_postfix()
    try:
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP(provider.host, provider.ports["submission"], timeout=5)
    finally:
        provider.start_postfix()
    with smtplib.SMTP(provider.host, provider.ports["submission"], timeout=10) as client:
        assert client.noop()[0] == 250


# ---------------------------------------------------------------- the portal's own engine against it


@pytest.mark.parametrize("smtp_port, incoming", [("submission", "imaps"), ("submissions", "pop3")])
def test_the_account_check_passes_and_its_test_letter_arrives(provider, smtp_port, incoming):
    """check_account signs in over STARTTLS or implicit TLS and to IMAPS or POP3+STLS; the test letter is delivered."""
    from portal.mail.check import check_account

    anna = _address(PROVIDER_DOMAIN)
    password = provider.add_user(anna)
    settings = provider.mailbox_settings(anna, password, smtp=smtp_port, incoming=incoming)
    result = check_account(settings, provider.mail_config(), send_test_letter=True)
    assert result.ok, result.to_dict()
    [letter] = provider.wait_for_letters(anna)
    assert letter["To"] == anna or anna in str(letter["To"])


def test_a_letter_sent_through_the_engine_is_delivered_and_parsed(provider):
    """open_smtp (the queue's path) sends a Russian letter; it arrives intact at the client domain."""
    from portal.mail.connection import open_smtp

    anna, recipient = _address(PROVIDER_DOMAIN), _address(CLIENT_DOMAIN)
    password = provider.add_user(anna)
    provider.add_user(recipient)
    settings = provider.mailbox_settings(anna, password, smtp="submissions", incoming=None)
    with open_smtp(settings, provider.mail_config()) as smtp:
        smtp.send_message(_letter(anna, recipient, subject="Договор № 15", body="Добрый день!\n"))
    [delivered] = provider.wait_for_letters(recipient)
    assert delivered["Subject"] == "Договор № 15"
    assert delivered.get_content() == "Добрый день!\n"
