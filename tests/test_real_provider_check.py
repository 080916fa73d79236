"""Test account against a real Postfix + Dovecot provider: no false pass, and the explanation its replies call for."""
from __future__ import annotations

import dataclasses
import secrets

import pytest

from portal.mail.check import check_account
from tests.servers.real_provider import PROVIDER_DOMAIN


@pytest.fixture
def provider(real_provider):
    """The session's provider with every failure case switched off again after the test."""
    yield real_provider
    real_provider.clear_failures()


def _mailbox(provider, *, smtp="submission", incoming=None, login=None, **smtp_overrides):
    address = f"u{secrets.token_hex(4)}@{PROVIDER_DOMAIN}"
    password = provider.add_user(address)
    return provider.mailbox_settings(address, password, smtp=smtp, incoming=incoming, login=login, **smtp_overrides)


def _incoming(settings, **overrides):
    server = dataclasses.replace(settings.incoming.server, **overrides)
    return dataclasses.replace(settings, incoming=dataclasses.replace(settings.incoming, server=server))


def test_the_mx_port_without_a_sign_in_never_passes(provider):
    """Port 25 takes a letter for the provider's own mailbox, but relays nothing: the envelope stage proves that."""
    with_login = _mailbox(provider, smtp="mx")
    settings = dataclasses.replace(with_login, smtp=dataclasses.replace(with_login.smtp, username="", password=""))

    result = check_account(settings, provider.mail_config())

    assert not result.ok
    assert result.problem.code == "relay_denied"
    assert result.problem.stage == "smtp.envelope"
    assert "Relay access denied" in result.problem.server_reply


def test_a_port_without_sign_in_where_the_mailbox_has_a_password_fails_with_its_own_reason(provider):
    """The MX port offers no AUTH even after STARTTLS: "the server does not accept a sign-in here"."""
    settings = _mailbox(provider, smtp="mx", security="starttls")

    result = check_account(settings, provider.mail_config())

    assert not result.ok
    assert (result.problem.code, result.problem.stage) == ("auth_not_offered", "smtp.login")


def test_a_signed_in_submission_passes_because_it_relays(provider):
    """After sign-in the outside recipient is accepted; the stage shows both RCPT answers and sends nothing."""
    settings = _mailbox(provider, smtp="submissions")

    result = check_account(settings, provider.mail_config())

    assert result.ok, result.to_dict()
    [envelope] = [stage for stage in result.stages if stage.name == "smtp.envelope"]
    assert envelope.detail.count("250") == 2
    assert provider.letters(settings.address) == []


@pytest.mark.parametrize("allow_plaintext_auth", [False, True])
def test_port_587_without_encryption_is_told_to_choose_starttls(provider, allow_plaintext_auth):
    """The submission port offers STARTTLS; the advice is "choose STARTTLS", not "use 587 instead of 25"."""
    settings = _mailbox(provider, smtp="submission", security="none", allow_plaintext_auth=allow_plaintext_auth)

    result = check_account(settings, provider.mail_config())

    assert (result.problem.code, result.problem.stage) == ("choose_starttls", "smtp.login")
    assert "STARTTLS" in result.problem.title("en") and "STARTTLS" in result.problem.title("ru")
    assert "25" not in result.problem.advice("en")
    assert result.problem.server_reply == ""


def test_a_login_that_does_not_own_the_address_is_a_sender_mismatch_not_a_missing_sign_in(provider):
    """Postfix's "553 5.7.1 Sender address rejected: not owned by user" is a sender/login mismatch."""
    bob = _mailbox(provider, smtp="submissions")
    anna = f"u{secrets.token_hex(4)}@{PROVIDER_DOMAIN}"
    provider.add_user(anna)
    settings = dataclasses.replace(bob, address=anna)

    result = check_account(settings, provider.mail_config())

    assert (result.problem.code, result.problem.stage) == ("sender_not_owned", "smtp.envelope")
    assert result.problem.server_reply.startswith("553 5.7.1")


@pytest.mark.parametrize("incoming", ["pop3", "imap"])
def test_incoming_without_encryption_sends_no_password_and_says_turn_encryption_on(provider, incoming):
    """Dovecot refuses plaintext passwords on 127.0.0.2 and offers STARTTLS: the portal does not send one."""
    settings = _incoming(_mailbox(provider, smtp="submissions", incoming=incoming), security="none",
                         allow_plaintext_auth=True)
    dovecot_log = provider.root / "dovecot.log"
    seen = dovecot_log.stat().st_size if dovecot_log.exists() else 0

    result = check_account(settings, provider.mail_config())

    assert (result.problem.code, result.problem.stage) == ("choose_starttls", f"{incoming}.login")
    with open(dovecot_log, "rb") as log:
        log.seek(seen)
        assert b"plaintext auth" not in log.read()  # no password attempt in clear reached Dovecot


@pytest.mark.parametrize("smtp, security", [("submissions", "starttls"), ("submission", "ssl")])
def test_swapped_ssl_and_starttls_is_found_well_under_the_timeout(provider, smtp, security):
    """Silent for 2 s in plain text (then greeting over TLS), or plain text where TLS was expected: said at once."""
    import time

    settings = _mailbox(provider, smtp=smtp, security=security)
    started = time.monotonic()

    result = check_account(settings, provider.mail_config(timeout=10.0))

    assert result.problem.code == "security_mode_mismatch"
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------- one-click fixes, applied and tested again


@pytest.mark.parametrize("overrides, fix, at_fault", [
    (dict(smtp="submissions", security="starttls"), "use_ssl", "smtp.security"),
    (dict(smtp="submission", security="ssl"), "use_starttls", "smtp.security"),
    (dict(smtp="submission", security="none"), "use_starttls", "smtp.security"),
])
def test_a_fixable_cause_offers_a_fix_that_makes_the_test_pass(provider, overrides, fix, at_fault):
    from portal.mail.remedies import apply_fix

    settings = _mailbox(provider, **overrides)
    failed = check_account(settings, provider.mail_config())
    assert (failed.problem.fix, failed.problem.at_fault) == (fix, at_fault)

    fixed = check_account(apply_fix(settings, failed.problem.changes), provider.mail_config())

    assert fixed.ok, fixed.to_dict()


@pytest.mark.parametrize("incoming", ["pop3", "imaps"])
def test_a_login_without_the_domain_is_fixed_by_signing_in_with_the_whole_address(provider, incoming):
    from portal.mail.remedies import apply_fix

    settings = _mailbox(provider, smtp="submissions", incoming=incoming)
    local_part = settings.address.partition("@")[0]
    settings = dataclasses.replace(_incoming(settings, username=local_part),
                                   smtp=dataclasses.replace(settings.smtp, username=local_part))
    failed = check_account(settings, provider.mail_config())
    assert (failed.problem.fix, failed.problem.at_fault) == ("whole_address_login", "smtp.username")
    # Both sides used the short login: one click fixes both.
    assert failed.problem.changes == {"smtp.username": settings.address, "incoming.username": settings.address}

    fixed = check_account(apply_fix(settings, failed.problem.changes), provider.mail_config())

    assert fixed.ok, fixed.to_dict()


# ---------------------------------------------------------------- ownership proof: the test letter's round trip


@pytest.mark.parametrize("incoming", ["pop3s", "imaps"])
def test_the_test_letter_makes_a_round_trip_and_reports_its_delivery_time(provider, incoming):
    settings = _mailbox(provider, smtp="submissions", incoming=incoming)
    heard = []

    result = check_account(settings, provider.mail_config(), send_test_letter=True, on_stage=heard.append)

    assert result.ok, result.to_dict()
    protocol = incoming.rstrip("s")
    [trip] = [stage for stage in result.stages if stage.name == f"{protocol}.round_trip"]
    assert trip.side == "incoming" and "s after sending" in trip.detail
    assert trip.label("ru") == ("POP3" if protocol == "pop3" else "IMAP") + ": тестовое письмо пришло"
    [letter] = provider.letters(settings.address)
    code = letter["X-Portal-Check"]
    assert code and code in letter["Subject"] and code in trip.detail
    # The progress line heard of the letter being sent before the round trip finished.
    names = [stage.name for stage in heard]
    assert names.index("smtp.test_letter") < names.index(f"{protocol}.round_trip")


def test_a_letter_that_never_reaches_the_inbox_fails_the_round_trip(provider):
    """Incoming settings of another mailbox: the letter is delivered, but not where the test looks."""
    settings = _mailbox(provider, smtp="submissions", incoming="imaps")
    other = _mailbox(provider, smtp="submissions", incoming="imaps")
    settings = dataclasses.replace(settings, incoming=other.incoming)

    result = check_account(settings, provider.mail_config(), send_test_letter=True, round_trip_seconds=3)

    assert (result.problem.code, result.problem.stage) == ("test_letter_not_arrived", "imap.round_trip")
    assert result.problem.server_reply == ""
    assert len(provider.wait_for_letters(settings.address)) == 1


def test_without_incoming_settings_the_letter_is_only_handed_over(provider):
    settings = _mailbox(provider, smtp="submissions")

    result = check_account(settings, provider.mail_config(), send_test_letter=True)

    assert result.ok
    assert [stage.name for stage in result.stages][-1] == "smtp.test_letter"
    [letter] = provider.wait_for_letters(settings.address)
    assert letter["X-Portal-Check"] is None
