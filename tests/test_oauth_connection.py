"""Signing in with a provider's token through the one connection path: SMTP, IMAP and POP3, both mechanisms."""
from __future__ import annotations

import logging
import secrets

import pytest

from portal.mail.check import check_account
from portal.mail.connection import open_incoming, open_smtp
from portal.mail.errors import MailError
from portal.mail.settings import MailboxSettings, ServerSettings
from portal.mail.stages import StageLog


def _address() -> str:
    return f"t{secrets.token_hex(4)}@mail.example"


def _smtp(server, address: str, token: str, sasl: str = "XOAUTH2") -> ServerSettings:
    return ServerSettings(host="localhost", port=server.port, security=server.security, username=address,
                          password=token, sasl=sasl)


@pytest.mark.parametrize("sasl", ["XOAUTH2", "OAUTHBEARER"])
def test_a_letter_leaves_through_smtp_signed_in_with_a_token(oauth_provider, oauth_smtp_server, mail_config, sasl,
                                                             caplog):
    """open_smtp signs in with the token by the chosen mechanism; the sign-in stage names it; the letter arrives;
    the token reaches no log line."""
    caplog.set_level(logging.DEBUG)
    anna = _address()
    token = oauth_provider.get_tokens(anna)["access_token"]
    settings = MailboxSettings(anna, "Anna", _smtp(oauth_smtp_server, anna, token, sasl))
    stages = StageLog("outgoing")
    with open_smtp(settings, mail_config, stages=stages) as smtp:
        smtp.sendmail(anna, ["client@client.example"], b"Subject: hi\r\n\r\nHello.\r\n")
    login = next(stage for stage in stages.stages if stage.name == "smtp.login")
    assert login.ok and login.detail.startswith(f"{sasl}: 235")
    assert token not in login.detail
    assert [(m.mail_from, m.login) for m in oauth_smtp_server.messages] == [(anna, anna)]
    assert token not in caplog.text


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
@pytest.mark.parametrize("sasl", ["XOAUTH2", "OAUTHBEARER"])
def test_incoming_signs_in_with_a_token(oauth_provider, oauth_dovecot, mail_config, protocol, sasl):
    """IMAP AUTHENTICATE and POP3 AUTH take the token with either mechanism, and the mailbox opens."""
    anna = _address()
    token = oauth_provider.get_tokens(anna)["access_token"]
    incoming = oauth_dovecot.incoming_settings(anna, token, protocol=protocol, sasl=sasl)
    settings = MailboxSettings(anna, "Anna", incoming.server, incoming)
    stages = StageLog("incoming")
    with open_incoming(settings, mail_config, stages=stages) as client:
        if protocol == "imap":
            assert client.select("INBOX")[0] == "OK"
        else:
            assert client.stat() == (0, 0)
    login = next(stage for stage in stages.stages if stage.name == f"{protocol}.login")
    assert login.detail.startswith(f"{sasl}: ")


def test_a_revoked_token_is_refused_at_sign_in_and_the_check_says_so(oauth_provider, oauth_smtp_server,
                                                                     oauth_dovecot, mail_config):
    """After revocation, SMTP answers 535 and IMAP AUTHENTICATIONFAILED at the sign-in stage, in one attempt."""
    anna = _address()
    token = oauth_provider.get_tokens(anna)["access_token"]
    oauth_provider.revoke(token)
    incoming = oauth_dovecot.incoming_settings(anna, token, protocol="imap", sasl="XOAUTH2")
    settings = MailboxSettings(anna, "Anna", _smtp(oauth_smtp_server, anna, token), incoming)
    with pytest.raises(MailError) as refused:
        with open_smtp(settings, mail_config):
            pass
    assert refused.value.problem.stage == "smtp.login" and refused.value.problem.smtp_code == 535
    result = check_account(settings, mail_config)
    assert not result.ok
    assert {s.name for s in result.stages if not s.ok} >= {"smtp.login"}
    assert token not in repr(result.to_dict())


def test_a_server_without_token_sign_in_gets_no_password_instead(smtp_server, mail_config):
    """Where the server offers only PLAIN/LOGIN, the token is not sent by a password mechanism: no sign-in."""
    anna = _address()
    settings = MailboxSettings(anna, "Anna", ServerSettings(host="localhost", port=smtp_server.port,
                                                            security="starttls", username=smtp_server.username,
                                                            password=smtp_server.password, sasl="XOAUTH2"))
    with pytest.raises(MailError) as refused:
        with open_smtp(settings, mail_config):
            pass
    assert refused.value.problem.stage == "smtp.login"
    assert "XOAUTH2" in refused.value.problem.server_reply
    assert smtp_server.messages == []


def test_only_token_mechanisms_are_taken():
    """A mailbox's token mechanism is XOAUTH2 or OAUTHBEARER; anything else is refused when the settings are made."""
    with pytest.raises(ValueError):
        ServerSettings(host="localhost", port=25, security="ssl", username="a@b.example", password="x", sasl="PLAIN")
