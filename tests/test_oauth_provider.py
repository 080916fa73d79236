"""The OAuth test stack works: real tokens from oidc-provider open IMAP, POP3 and SMTP; revoked ones do not."""
from __future__ import annotations

import base64
import imaplib
import secrets
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage

import pytest
import requests

from tests.servers.oauth import CLIENT_ID, INVALID_CREDENTIALS, oauthbearer, xoauth2


def _address() -> str:
    return f"u{secrets.token_hex(4)}@mail.example"


def _imap_login(dovecot, mechanism: str, blob: bytes) -> str:
    """Sign in over IMAPS with ``mechanism``; return "OK" after SELECT INBOX, or the server's refusal."""
    imap = imaplib.IMAP4_SSL(dovecot.host, dovecot.ports["imaps"], timeout=10,
                             ssl_context=ssl.create_default_context(cafile=dovecot.ca_file))
    try:
        imap.authenticate(mechanism, lambda challenge: blob)  # imaplib base64-encodes the bytes itself
        typ, _ = imap.select("INBOX")
        return typ
    except imaplib.IMAP4.error as refused:
        return str(refused)
    finally:
        imap.logout()


def _smtp_send(server, mechanism: str, blob: bytes, sender: str) -> None:
    """Sign in with ``mechanism`` over STARTTLS and send one letter as ``sender``."""
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.starttls(context=ssl.create_default_context(cafile=server.ca_file))
        client.ehlo()  # smtplib's auth() does not greet again after STARTTLS by itself
        # smtplib calls the object without a challenge for the initial response, then once per 334;
        # an error challenge (RFC 7628 JSON) is answered with an empty line.
        code, _ = client.auth(mechanism, lambda challenge=None: blob.decode() if challenge is None else "")
        assert code == 235
        letter = EmailMessage()
        letter["From"], letter["To"], letter["Subject"] = sender, "ok@client.example", "Signed in with a token"
        letter.set_content("Hello.\n")
        client.send_message(letter)


def test_the_flow_returns_access_refresh_and_id_tokens(oauth_provider):
    """Code flow with PKCE through the real login and consent pages gives tokens that introspect as the login."""
    anna = _address()
    tokens = oauth_provider.get_tokens(anna)
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens)
    assert tokens["expires_in"] == 60
    info = oauth_provider.introspect(tokens["access_token"])
    assert info["active"] is True and info["email"] == anna and info["client_id"] == CLIENT_ID
    refreshed = oauth_provider.refresh(tokens["refresh_token"])
    assert refreshed["access_token"] != tokens["access_token"]
    assert oauth_provider.introspect(refreshed["access_token"])["email"] == anna


def test_the_provider_requires_pkce(oauth_provider):
    """An authorization request without a code challenge is refused by the provider's policy."""
    answer = requests.get(f"{oauth_provider.issuer}/auth", allow_redirects=False, timeout=10, params=dict(
        client_id=CLIENT_ID, response_type="code", redirect_uri=oauth_provider.redirect_uris[0],
        scope="openid email", state="s"))
    assert answer.status_code in (302, 303)
    assert "error=invalid_request" in answer.headers["location"]
    assert "PKCE" in requests.utils.unquote(answer.headers["location"]).replace("+", " ")


def test_a_token_signs_in_to_imap_with_both_mechanisms_and_not_for_someone_else(oauth_dovecot, oauth_provider):
    """XOAUTH2 and OAUTHBEARER with a valid token open the mailbox; the same token for another user does not."""
    anna = _address()
    token = oauth_provider.get_tokens(anna)["access_token"]
    assert _imap_login(oauth_dovecot, "XOAUTH2", xoauth2(anna, token)) == "OK"
    port = oauth_dovecot.ports["imaps"]
    assert _imap_login(oauth_dovecot, "OAUTHBEARER", oauthbearer(anna, token, oauth_dovecot.host, port)) == "OK"
    refused = _imap_login(oauth_dovecot, "XOAUTH2", xoauth2("bob@mail.example", token))
    assert "AUTHENTICATIONFAILED" in refused


def test_a_token_signs_in_to_pop3(oauth_dovecot, oauth_provider):
    """POP3 AUTH XOAUTH2 (RFC 5034) with a valid token opens the mailbox."""
    anna = _address()
    token = oauth_provider.get_tokens(anna)["access_token"]
    context = ssl.create_default_context(cafile=oauth_dovecot.ca_file)
    raw = socket.create_connection((oauth_dovecot.host, oauth_dovecot.ports["pop3s"]), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as pop, pop.makefile("rwb") as lines:
        assert lines.readline().startswith(b"+OK")
        lines.write(b"AUTH XOAUTH2 " + base64.b64encode(xoauth2(anna, token)) + b"\r\n")
        lines.flush()
        assert lines.readline().startswith(b"+OK")
        lines.write(b"STAT\r\n")
        lines.flush()
        assert lines.readline().strip() == b"+OK 0 0"


def test_a_revoked_token_is_refused_on_imap_and_smtp(oauth_dovecot, oauth_provider, oauth_smtp_server):
    """After revocation at the provider, neither Dovecot nor the SMTP server lets the token in."""
    anna = _address()
    token = oauth_provider.get_tokens(anna)["access_token"]
    _smtp_send(oauth_smtp_server, "XOAUTH2", xoauth2(anna, token), anna)
    assert [(m.mail_from, m.login) for m in oauth_smtp_server.messages] == [(anna, anna)]
    oauth_provider.revoke(token)
    assert "AUTHENTICATIONFAILED" in _imap_login(oauth_dovecot, "XOAUTH2", xoauth2(anna, token))
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        _smtp_send(oauth_smtp_server, "XOAUTH2", xoauth2(anna, token), anna)
    assert refused.value.smtp_code == 535
    assert INVALID_CREDENTIALS[4:].encode() in refused.value.smtp_error
    assert len(oauth_smtp_server.messages) == 1


def test_smtp_takes_oauthbearer_and_refuses_another_users_token(oauth_provider, oauth_smtp_server):
    """OAUTHBEARER works on SMTP; a token presented for another address is refused with 535."""
    anna = _address()
    token = oauth_provider.get_tokens(anna)["access_token"]
    host, port = oauth_smtp_server.host, oauth_smtp_server.port
    _smtp_send(oauth_smtp_server, "OAUTHBEARER", oauthbearer(anna, token, host, port), anna)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        _smtp_send(oauth_smtp_server, "XOAUTH2", xoauth2("bob@mail.example", token), "bob@mail.example")
    assert [m.login for m in oauth_smtp_server.messages] == [anna]


def test_an_expired_token_is_refused_and_a_refreshed_one_works(make_oauth_provider, make_oauth_smtp_server):
    """With a 2-second token lifetime the token stops working; the refresh token gets a working one."""
    provider = make_oauth_provider(access_token_ttl=2)
    server = make_oauth_smtp_server(provider)
    anna = _address()
    tokens = provider.get_tokens(anna)
    assert tokens["expires_in"] == 2
    time.sleep(3)
    assert provider.introspect(tokens["access_token"]) == {"active": False}
    with pytest.raises(smtplib.SMTPAuthenticationError):
        _smtp_send(server, "XOAUTH2", xoauth2(anna, tokens["access_token"]), anna)
    fresh = provider.refresh(tokens["refresh_token"])["access_token"]
    _smtp_send(server, "XOAUTH2", xoauth2(anna, fresh), anna)
    assert [m.login for m in server.messages] == [anna]
