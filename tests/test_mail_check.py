"""The account check against real aiosmtpd and Dovecot servers."""
from __future__ import annotations

import dataclasses
import time

import pytest

from portal.mail.check import check_account, stage_label
from portal.mail.settings import MailConfig
from tests.servers.smtp import DROP_AFTER_DATA, DROP_DURING_DATA


def stage_names(result):
    return [stage.name for stage in result.stages]


def assert_explained(problem):
    """A problem a user can act on: a title and advice in both languages, and the server's words."""
    for lang in ("en", "ru"):
        assert problem.title(lang).strip()
        assert problem.advice(lang).strip()
    assert problem.title("ru") != problem.title("en")


def test_healthy_starttls_mailbox_with_pop3_passes(smtp_server, dovecot, mail_user, mail_config):
    dovecot.deliver(mail_user.address, b"Subject: hi\r\n\r\nhello\r\n")
    mailbox = smtp_server.mailbox(incoming=dovecot.incoming_settings(mail_user.address, mail_user.password))

    result = check_account(mailbox, mail_config)

    assert result.ok, result.to_dict()
    assert result.problem is None
    assert stage_names(result) == [
        "smtp.resolve", "smtp.connect", "smtp.greeting", "smtp.tls", "smtp.login", "smtp.envelope",
        "pop3.resolve", "pop3.connect", "pop3.tls", "pop3.greeting", "pop3.login", "pop3.mailbox"]
    assert all(stage.ok and stage.ms >= 0 for stage in result.stages)
    assert result.stages[-1].detail.startswith("1 messages")
    assert smtp_server.messages == [], "the check itself sends nothing"
    tls = next(s for s in result.stages if s.name == "smtp.tls")
    assert tls.fingerprint == smtp_server.fingerprint


def test_healthy_ssl_mailbox_with_imap_starttls_passes(smtps_server, dovecot, mail_user, mail_config):
    mailbox = smtps_server.mailbox(
        incoming=dovecot.incoming_settings(mail_user.address, mail_user.password, "imap", "starttls"))

    result = check_account(mailbox, mail_config)

    assert result.ok, result.to_dict()
    assert stage_names(result)[:3] == ["smtp.resolve", "smtp.connect", "smtp.tls"]
    assert "imap.mailbox" in stage_names(result)
    assert result.stages[-1].detail == "0 messages in INBOX"


@pytest.mark.parametrize("protocol,security", [("pop3", "starttls"), ("imap", "ssl")])
def test_other_incoming_modes_pass(smtp_server, dovecot, mail_user, mail_config, protocol, security):
    mailbox = smtp_server.mailbox(
        incoming=dovecot.incoming_settings(mail_user.address, mail_user.password, protocol, security))
    assert check_account(mailbox, mail_config).ok


def test_test_letter_arrives_when_asked(smtp_server, mail_config):
    mailbox = smtp_server.mailbox(display_name="Отдел продаж")

    result = check_account(mailbox, mail_config, send_test_letter=True)

    assert result.ok, result.to_dict()
    assert stage_names(result)[-1] == "smtp.test_letter"
    [letter] = smtp_server.messages
    assert letter.rcpt_tos == [smtp_server.username]
    assert letter.login == smtp_server.username
    assert b"Message-ID: <" in letter.content


@pytest.mark.parametrize("server_fixture", ["smtp_server", "smtps_server"])
def test_wrong_smtp_password_is_sign_in_refused(request, server_fixture, mail_config):
    server = request.getfixturevalue(server_fixture)
    result = check_account(server.mailbox(password="wrong"), mail_config)

    assert not result.ok
    assert result.problem.code == "auth_failed"
    assert result.problem.stage == "smtp.login"
    assert "535" in result.problem.server_reply
    assert_explained(result.problem)
    assert result.stages[-1].name == "smtp.login" and not result.stages[-1].ok


@pytest.mark.parametrize("protocol,security", [("pop3", "ssl"), ("imap", "ssl")])
def test_wrong_incoming_password_is_incoming_sign_in_refused(smtp_server, dovecot, mail_user, mail_config,
                                                             protocol, security):
    incoming = dovecot.incoming_settings(mail_user.address, "wrong", protocol, security)

    result = check_account(smtp_server.mailbox(incoming=incoming), mail_config)

    assert not result.ok
    assert result.problem.code == "incoming_auth_failed"
    assert result.problem.stage == f"{protocol}.login"
    assert "Authentication failed" in result.problem.server_reply
    assert_explained(result.problem)
    assert all(s.ok for s in result.stages if s.side == "outgoing"), "outgoing still checked and fine"


def test_ssl_against_a_starttls_port_is_named(smtp_server, mail_config):
    result = check_account(smtp_server.mailbox(security="ssl"), mail_config)

    assert result.problem.code == "security_mode_mismatch"
    assert result.problem.stage == "smtp.tls"
    assert_explained(result.problem)


def test_starttls_against_an_ssl_port_is_named_within_the_timeout(smtps_server, mail_config):
    config = dataclasses.replace(mail_config, timeout=1.0)
    started = time.monotonic()

    result = check_account(smtps_server.mailbox(security="starttls"), config)

    assert time.monotonic() - started < config.timeout + 1
    assert result.problem.code == "security_mode_mismatch"
    assert result.problem.stage == "smtp.greeting"


def test_ssl_against_a_pop3_starttls_port_is_named(smtp_server, dovecot, mail_user, mail_config):
    incoming = dovecot.incoming_settings(mail_user.address, mail_user.password, "pop3", "ssl",
                                         port=dovecot.ports["pop3"])
    result = check_account(smtp_server.mailbox(incoming=incoming), mail_config)
    assert result.problem.code == "security_mode_mismatch"
    assert result.problem.stage == "pop3.tls"


def test_untrusted_certificate_is_refused_then_accepted_by_its_pin(make_smtp_server, untrusted_certificate,
                                                                   mail_config):
    server = make_smtp_server("ssl", certificate=untrusted_certificate)

    refused = check_account(server.mailbox(), mail_config)

    assert refused.problem.code == "certificate_untrusted"
    assert refused.certificate_fingerprint == untrusted_certificate.fingerprint
    tls = refused.stages[-1]
    assert tls.name == "smtp.tls" and not tls.ok
    assert untrusted_certificate.fingerprint[:6].upper() in tls.detail.replace(":", "")
    assert server.logins == [], "no password was sent to an untrusted server"

    pinned = check_account(server.mailbox(trusted_fingerprint=refused.certificate_fingerprint), mail_config)

    assert pinned.ok, pinned.to_dict()


def test_untrusted_starttls_certificate_shows_its_fingerprint(make_smtp_server, untrusted_certificate,
                                                              mail_config):
    server = make_smtp_server("starttls", certificate=untrusted_certificate)
    result = check_account(server.mailbox(), mail_config)
    assert result.problem.code == "certificate_untrusted"
    assert result.certificate_fingerprint == untrusted_certificate.fingerprint


def test_a_pin_for_another_certificate_is_refused_before_the_password(smtp_server, mail_config):
    result = check_account(smtp_server.mailbox(trusted_fingerprint="ab" * 32), mail_config)

    assert result.problem.code == "certificate_changed"
    assert smtp_server.logins == []
    assert_explained(result.problem)


def test_certificate_for_another_name_is_named(make_smtp_server, tmp_path, mail_config):
    from tests.servers.certificates import make_certificate

    certificate = make_certificate(tmp_path, label="other-name", names=("mail.example.com",))
    server = make_smtp_server("ssl", certificate=certificate)
    config = dataclasses.replace(mail_config, ca_file=certificate.ca_file)

    result = check_account(server.mailbox(), config)

    assert result.problem.code == "certificate_wrong_name"
    assert server.logins == []


def test_server_that_never_greets_is_no_mail_server_within_the_timeout(silent_server, mail_config):
    config = dataclasses.replace(mail_config, timeout=1.0)
    mailbox = dataclasses.replace(
        _any_mailbox(), smtp=dataclasses.replace(_any_mailbox().smtp, host="127.0.0.1", port=silent_server.port))
    started = time.monotonic()

    result = check_account(mailbox, config)

    assert time.monotonic() - started < config.timeout + 1
    assert result.problem.code == "no_mail_server"
    assert result.problem.stage == "smtp.connect"
    assert_explained(result.problem)


def _port_where(kind, request):
    """A port where ``kind`` listens: nothing (closed), a dropping firewall, a silent socket, SSH or HTTP."""
    from tests.servers.smtp import free_port

    return {"closed": free_port, "filtered": lambda: request.getfixturevalue("filtered_port").port,
            "silent": lambda: request.getfixturevalue("silent_server").port,
            "ssh": lambda: request.getfixturevalue("make_banner_server")("ssh").port,
            "http": lambda: request.getfixturevalue("make_banner_server")("http").port,
            "https": lambda: request.getfixturevalue("make_banner_server")("https").port}[kind]()


@pytest.mark.parametrize("security", ["starttls", "ssl"])
@pytest.mark.parametrize("kind", ["closed", "filtered", "silent", "ssh", "http", "https"])
def test_a_port_without_a_mail_server_gets_one_answer_whatever_listens(request, mail_config, caplog, kind, security):
    config = dataclasses.replace(mail_config, timeout=1.0)
    port = _port_where(kind, request)
    mailbox = _any_mailbox(port=port, security=security)

    with caplog.at_level("WARNING", logger="portal.mail"):
        result = check_account(mailbox, config)

    assert result.problem.code == "no_mail_server", kind
    assert result.problem.title("en") == "No mail server answered on this port"
    assert result.problem.server_reply == ""
    assert [(s.name, s.ok, s.detail) for s in result.stages] == [
        ("smtp.resolve", True, "127.0.0.1"), ("smtp.connect", False, "")]
    assert "SSH" not in str(result.to_dict()) and "nginx" not in str(result.to_dict())
    assert_explained(result.problem)
    assert f"127.0.0.1 port {port}" in caplog.text, "the administrator's log says what was found"
    if kind == "ssh":
        assert "OpenSSH" in caplog.text


@pytest.mark.parametrize("protocol,security", [("pop3", "starttls"), ("imap", "starttls"), ("imap", "ssl")])
def test_incoming_port_with_another_service_is_no_mail_server(smtp_server, dovecot, mail_user, mail_config,
                                                              make_banner_server, protocol, security):
    ssh = make_banner_server("ssh")
    incoming = dovecot.incoming_settings(mail_user.address, mail_user.password, protocol, security,
                                         host="127.0.0.1", port=ssh.port)
    result = check_account(smtp_server.mailbox(incoming=incoming), dataclasses.replace(mail_config, timeout=1.0))
    assert result.problem.code == "no_mail_server"
    assert result.problem.stage == f"{protocol}.connect"
    assert "SSH" not in str(result.to_dict())


def test_a_mail_server_refusing_at_its_greeting_is_quoted(make_smtp_server, mail_config):
    # Once a server greets as SMTP, its own words are shown, even a refusal.
    from tests.servers.slow import TarpitServer

    refusing = TarpitServer(interval=0, greeting=b"554 5.3.2 mx.example.com: service unavailable\r\n")
    try:
        result = check_account(_any_mailbox(port=refusing.port, security="none"), mail_config)
    finally:
        refusing.stop()
    assert result.problem.code != "no_mail_server"
    assert "554 5.3.2 mx.example.com: service unavailable" in result.problem.server_reply


def test_a_trickling_server_fails_within_the_deadline_with_its_own_explanation(tarpit_server, mail_config):
    # One byte a second never trips the 3 s read timeout; only the deadline for the whole test ends it.
    config = dataclasses.replace(mail_config, timeout=3.0, deadline=2.5)
    started = time.monotonic()

    result = check_account(_any_mailbox(port=tarpit_server.port, security="none"), config)

    assert time.monotonic() - started < config.deadline + 1
    assert result.problem.code == "too_slow"
    assert result.problem.stage == "smtp.greeting"
    assert result.problem.temporary
    assert result.problem.server_reply == "", "the portal's own finding is not quoted as the server's words"
    assert_explained(result.problem)


def test_the_deadline_covers_both_sides_of_a_test(tarpit_server, dovecot, mail_user, mail_config):
    from tests.servers.slow import TarpitServer

    incoming_tarpit = TarpitServer(interval=1.0, greeting=b"+OK Dovecot ready.\r\n")
    try:
        incoming = dovecot.incoming_settings(mail_user.address, mail_user.password, "pop3", "none",
                                             host="127.0.0.1", port=incoming_tarpit.port)
        mailbox = dataclasses.replace(_any_mailbox(port=tarpit_server.port, security="none"), incoming=incoming)
        started = time.monotonic()
        result = check_account(mailbox, dataclasses.replace(mail_config, deadline=2.0))
        elapsed = time.monotonic() - started
    finally:
        incoming_tarpit.stop()
    assert elapsed < 3
    assert {(s.name, s.ok) for s in result.stages if not s.ok} == {("smtp.greeting", False), ("pop3.greeting", False)}
    assert result.problem.code == "too_slow"


def test_stages_are_told_as_they_finish(smtp_server, mail_config):
    heard = []
    result = check_account(smtp_server.mailbox(), mail_config, on_stage=heard.append)
    assert result.ok
    assert heard == result.stages


def test_unknown_host_is_host_not_found(mail_config):
    result = check_account(_any_mailbox(host="no-such-host.invalid"), mail_config)
    assert result.problem.code == "host_not_found"
    assert result.problem.stage == "smtp.resolve"


@pytest.mark.parametrize("command,reply,code", [
    ("MAIL", "553 5.7.1 <sender@example.com>: Sender address rejected: not owned by user", "sender_not_owned"),
    ("MAIL", "550 5.7.60 SMTP; Client does not have permissions to send as this sender", "sender_not_owned"),
    ("RCPT", "554 5.7.1 <sender@example.com>: Relay access denied", "relay_denied"),
    ("RCPT", "550 5.1.1 <sender@example.com>: Recipient address rejected: User unknown", "recipient_unknown"),
    ("MAIL", "421 4.7.0 Too many connections, try again later", "temporary_refusal"),
    ("RCPT", "450 4.2.0 Greylisted, please try again", "temporary_refusal"),
])
def test_envelope_refusals_are_explained(smtp_server, mail_config, command, reply, code):
    smtp_server.fail(command, reply)

    result = check_account(smtp_server.mailbox(), mail_config)

    assert result.problem.code == code
    assert result.problem.stage == "smtp.envelope"
    assert result.problem.server_reply == reply
    assert result.problem.temporary == reply.startswith("4")
    assert_explained(result.problem)
    assert smtp_server.messages == []


@pytest.mark.parametrize("action,code", [
    ("554 5.7.1 Message rejected as spam", "message_rejected"),
    (DROP_DURING_DATA, "connection_dropped"),
    (DROP_AFTER_DATA, "connection_dropped"),
])
def test_test_letter_failures_are_explained(smtp_server, mail_config, action, code):
    smtp_server.fail("DATA", action)

    result = check_account(smtp_server.mailbox(), mail_config, send_test_letter=True)

    assert result.problem.code == code
    assert result.problem.stage == "smtp.test_letter"
    assert_explained(result.problem)


def test_password_is_not_sent_over_plain_text_unless_allowed(make_smtp_server, mail_config):
    server = make_smtp_server("none")

    refused = check_account(server.mailbox(), mail_config)

    assert refused.problem.code == "plaintext_auth_refused"
    assert server.logins == []
    assert check_account(server.mailbox(allow_plaintext_auth=True), mail_config).ok


def test_starttls_not_offered_is_named(make_smtp_server, mail_config):
    server = make_smtp_server("none")
    result = check_account(server.mailbox(security="starttls"), mail_config)
    assert result.problem.code == "starttls_not_offered"
    assert result.problem.stage == "smtp.tls"


def test_guard_refusal_is_the_first_problem(mail_config):
    result = check_account(_any_mailbox(host="10.0.0.1"), MailConfig(timeout=1.0))
    assert result.problem.code == "connection_blocked"
    assert [s.name for s in result.stages] == ["smtp.resolve"]
    assert "10.0.0.1" not in result.stages[0].detail


def test_outgoing_and_incoming_run_at_the_same_time(silent_server, dovecot, mail_user, mail_config):
    # Both sides wait for a silent server: one timeout in total, not two.
    # (A silent port is "no mail server", failed at the connect stage of each side.)
    config = dataclasses.replace(mail_config, timeout=1.0)
    incoming = dovecot.incoming_settings(mail_user.address, mail_user.password, "imap", "starttls",
                                         host="127.0.0.1", port=silent_server.port)
    mailbox = dataclasses.replace(_any_mailbox(port=silent_server.port), incoming=incoming)
    started = time.monotonic()

    result = check_account(mailbox, config)

    assert time.monotonic() - started < 2 * config.timeout
    assert {s.name for s in result.stages if not s.ok} == {"smtp.connect", "imap.connect"}
    assert result.problem.stage == "smtp.connect", "the outgoing problem is named first"


def test_result_dict_has_the_documented_shape(smtp_server, mail_config):
    smtp_server.fail("MAIL", "421 4.7.0 Try again later")
    data = check_account(smtp_server.mailbox(), mail_config).to_dict("ru")

    assert set(data) == {"ok", "problem", "stages"}
    assert data["ok"] is False
    assert set(data["problem"]) == {"code", "title", "advice", "server_reply"}
    assert data["problem"]["title"] == "Сервер временно отказал (повторите позже)"
    assert all(set(stage) == {"name", "ok", "ms", "detail"} for stage in data["stages"])
    assert all(isinstance(stage["ms"], int) for stage in data["stages"])


def test_every_stage_has_a_label_in_both_languages():
    from portal.mail.stages import STAGE_LABELS

    for name in STAGE_LABELS:
        assert stage_label(name, "ru") != stage_label(name, "en") != name


def _any_mailbox(host="127.0.0.1", port=2525, security="starttls"):
    from portal.mail.settings import MailboxSettings, ServerSettings

    return MailboxSettings("sender@example.com", "Sender",
                           ServerSettings(host, port, security, "sender@example.com", "s3cret"))


def _resolves(host):
    import socket

    try:
        socket.getaddrinfo(host, 465)
    except OSError:
        return False
    return True


def test_a_presets_name_that_does_not_resolve_is_the_portals_dns_not_a_typo(mail_config):
    """Offline, smtp.gmail.com does not resolve: the page blames the portal's machine, while a typed name is a typo."""
    if _resolves("smtp.gmail.com"):
        pytest.skip("this machine resolves public names; the offline intranet case cannot be shown here")
    preset = check_account(_any_mailbox(host="smtp.gmail.com", port=465, security="ssl"), mail_config)
    typed = check_account(_any_mailbox(host="smtp.no-such-provider.invalid", port=465, security="ssl"), mail_config)

    assert (preset.problem.code, preset.problem.stage) == ("host_not_resolved_here", "smtp.resolve")
    assert "not a typo" in preset.problem.advice("en") and "не опечатка" in preset.problem.advice("ru")
    assert (typed.problem.code, typed.problem.stage) == ("host_not_found", "smtp.resolve")
    assert preset.problem.server_reply == typed.problem.server_reply == ""  # never "The server replied:"
