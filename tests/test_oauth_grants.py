"""A mailbox that signs in with the provider: the queue sends with its token, refreshes it before it expires (once,
whoever asks at the same time), and a grant the provider withdrew makes the letters wait for Reconnect."""
from __future__ import annotations

import secrets
import threading
import time

import pytest

from portal import events, mailbox_health
from portal.db import database
from portal.models import AuditEvent, Letter, Mailbox, utcnow
from portal.models.oauth import MailboxGrant, OAuthApp
from portal.oauth import grants
from portal.oauth.client import Tokens
from tests.fixtures.events import heard
from tests.fixtures.letters import passed_test

SCOPES = "openid email offline_access mail"


def register_company_app(provider, sasl="XOAUTH2"):
    """The test provider registered on Sign-in providers as the company's own server."""
    from tests.servers.oauth import CLIENT_ID, CLIENT_SECRET

    app = OAuthApp(provider="company", client_id=CLIENT_ID,
                   discovery_url=f"{provider.issuer}/.well-known/openid-configuration", sasl=sasl, scopes=SCOPES)
    app.set_secret("client_secret", CLIENT_SECRET)
    app.save(force_insert=True)
    return app


def as_tokens(answer: dict) -> Tokens:
    return Tokens(access_token=answer["access_token"], refresh_token=answer.get("refresh_token", ""),
                  expires_in=answer["expires_in"], id_token=answer.get("id_token", ""))


@pytest.fixture
def token_mailbox(app, make_mailbox, employee):
    """make(provider, server): the employee's tested mailbox whose SMTP server takes only that provider's tokens."""

    def make(provider, server, sasl="XOAUTH2"):
        if OAuthApp.get_or_none(OAuthApp.provider == "company") is None:
            register_company_app(provider, sasl)
        address = f"t{secrets.token_hex(4)}@mail.example"
        mailbox = make_mailbox(employee, address=address, smtp_host="localhost", smtp_port=server.port,
                               smtp_security=server.security, smtp_username=address, password="")
        grants.new_grant("company", address, sasl, as_tokens(provider.get_tokens(address)), mailbox=mailbox)
        return passed_test(mailbox)

    return make


def grant(mailbox) -> MailboxGrant:
    return MailboxGrant.get(MailboxGrant.mailbox == mailbox.id)


def test_the_queue_sends_signed_in_with_the_token(token_mailbox, oauth_provider, oauth_smtp_server, write_letter,
                                                  run_queue):
    """A letter from a token mailbox leaves signed in as the mailbox, and nothing is refreshed while it is fresh."""
    mailbox = token_mailbox(oauth_provider, oauth_smtp_server)
    letter = write_letter(mailbox)
    report = run_queue()
    assert report.outcomes["sent"] == 1
    assert Letter.get_by_id(letter.id).state == "sent"
    assert oauth_smtp_server.logins == [mailbox.address]
    assert grant(mailbox).refreshes == 0


def test_a_token_about_to_expire_is_refreshed_before_sending(token_mailbox, make_oauth_provider,
                                                             make_oauth_smtp_server, write_letter, run_queue):
    """With a 2-second token, the queue refreshes it first (once) and sends with the new one."""
    provider = make_oauth_provider(access_token_ttl=2)
    server = make_oauth_smtp_server(provider)
    mailbox = token_mailbox(provider, server)
    old = grant(mailbox).secret("access_token")
    time.sleep(2.2)
    assert provider.introspect(old) == {"active": False}
    write_letter(mailbox)
    assert run_queue().outcomes["sent"] == 1
    fresh = grant(mailbox)
    assert fresh.refreshes == 1 and fresh.secret("access_token") != old
    assert provider.introspect(fresh.secret("access_token"))["email"] == mailbox.address
    assert server.logins == [mailbox.address]
    assert Mailbox.get_by_id(mailbox.id).tested  # a new token is the same tested sign-in


def start_senders(mailbox, count):
    """``count`` threads, each a process asking for the mailbox's settings at the same moment; returns the threads
    and the lists their tokens and their errors go to."""
    start = threading.Barrier(count)
    tokens, errors = [], []

    def sender():
        try:
            with database.connection_context():
                start.wait()
                tokens.append(grants.settings_for(Mailbox.get_by_id(mailbox.id)).smtp.password)
        except Exception as error:  # reported by the test, with the thread's error
            errors.append(error)

    threads = [threading.Thread(target=sender) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, tokens, errors


def test_concurrent_senders_refresh_the_token_once(token_mailbox, make_oauth_provider, make_oauth_smtp_server):
    """Eight processes needing the mailbox's settings at the same moment: one refresh, all get its token."""
    provider = make_oauth_provider(access_token_ttl=2)
    mailbox = token_mailbox(provider, make_oauth_smtp_server(provider))
    time.sleep(1.8)  # inside the refresh margin
    threads, tokens, errors = start_senders(mailbox, 8)
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(set(tokens)) == 1 and len(tokens) == 8
    assert grant(mailbox).refreshes == 1
    assert provider.introspect(tokens[0])["active"] is True


def test_the_database_takes_other_writes_while_a_slow_provider_answers_a_refresh(
        token_mailbox, make_oauth_provider, make_oauth_smtp_server, employee):
    """The provider takes 2 s to answer the refresh: meanwhile another connection writes to the database at once
    (no writer waits for the provider, none fails with "database is locked"), and the refresh still lands once."""
    provider = make_oauth_provider(access_token_ttl=2, refresh_delay=2.0)
    mailbox = token_mailbox(provider, make_oauth_smtp_server(provider))
    old = grant(mailbox).secret("access_token")
    time.sleep(1.8)  # inside the refresh margin
    [refreshing], tokens, errors = start_senders(mailbox, 1)
    claimed_by = time.monotonic() + 0.7
    while grant(mailbox).refreshing_until is None and time.monotonic() < claimed_by:
        time.sleep(0.02)  # until the refresh is claimed and its request is on its way to the provider
    time.sleep(0.2)
    with database.connection_context():
        Mailbox.update(display_name="Written meanwhile").where(Mailbox.id == mailbox.id).execute()
        AuditEvent.create(mailbox=mailbox.id, address=mailbox.address, actor=employee.id, action="edited",
                          changed_fields="[]")
    assert refreshing.is_alive(), "the write had to wait for the provider's answer"
    refreshing.join(30)
    assert errors == []
    assert Mailbox.get_by_id(mailbox.id).display_name == "Written meanwhile"
    fresh = grant(mailbox)
    assert fresh.refreshes == 1 and fresh.refreshing_until is None
    assert tokens == [fresh.secret("access_token")] and tokens[0] != old


def test_a_withdrawn_grant_needs_reconnecting_its_letters_wait_and_reconnect_releases_them(
        token_mailbox, oauth_provider, oauth_smtp_server, write_letter, run_queue, employee, caplog):
    """Revoked at the provider: SMTP refuses, the refresh fails for good, the mailbox needs reconnecting (audit log,
    event), its letters wait without spending attempts; a new sign-in releases them and they go out."""
    mailbox = token_mailbox(oauth_provider, oauth_smtp_server)
    revoked = grant(mailbox).secret("access_token")
    oauth_provider.revoke(revoked)
    letter = write_letter(mailbox)
    with heard(events.mailbox_needs_attention) as heard_now:
        run_queue()
    told = [(sender.id, kw["problem"]) for sender, kw in heard_now]
    waiting = Letter.get_by_id(letter.id)
    assert waiting.state == "deferred" and waiting.waiting_for == grants.NEEDS_RECONNECT and waiting.attempts == 0
    assert grant(mailbox).needs_reconnect and "invalid_grant" in grant(mailbox).reconnect_reason
    assert told == [(mailbox.id, grants.NEEDS_RECONNECT)]
    [audit] = AuditEvent.select().where((AuditEvent.mailbox == mailbox.id) & (AuditEvent.action == "needs_reconnect"))
    assert "invalid_grant" in audit.detail
    assert Mailbox.get_by_id(mailbox.id).active  # not paused: it waits for its owner to sign in again
    found = mailbox_health.health(Mailbox.get_by_id(mailbox.id))  # and its health says so wherever it is listed
    assert (found.state, found.problem.code) == (mailbox_health.WARNING, grants.NEEDS_RECONNECT)

    run_queue.later(minutes=2)
    report = run_queue()
    assert report.connections == 0 and Letter.get_by_id(letter.id).waiting_for == grants.NEEDS_RECONNECT

    new = grants.new_grant("company", mailbox.address, "XOAUTH2",
                           as_tokens(oauth_provider.get_tokens(mailbox.address)), employee=employee, form_key="k")
    assert grants.reconnect(mailbox, new, actor=employee) == 1
    assert MailboxGrant.select().where(MailboxGrant.mailbox == mailbox.id).count() == 1
    assert run_queue().outcomes["sent"] == 1
    assert Letter.get_by_id(letter.id).state == "sent"
    assert mailbox_health.health(Mailbox.get_by_id(mailbox.id)).state == mailbox_health.WORKING
    assert revoked not in caplog.text and grant(mailbox).secret("refresh_token") not in caplog.text


def test_the_reply_fetcher_signs_in_with_the_token_and_waits_when_it_needs_reconnecting(
        token_mailbox, oauth_provider, oauth_smtp_server, oauth_dovecot, mail_config):
    """IMAP with the grant's token through the fetcher's path; a grant that needs reconnecting is said, not tried."""
    from portal.letters.replies import fetch_mailbox

    mailbox = token_mailbox(oauth_provider, oauth_smtp_server)
    Mailbox.update(incoming_protocol="imap", incoming_host="localhost", incoming_port=oauth_dovecot.ports["imaps"],
                   incoming_security="ssl", receive_replies=True).where(Mailbox.id == mailbox.id).execute()
    report = fetch_mailbox(Mailbox.get_by_id(mailbox.id), mail_config)
    assert report.problem is None
    MailboxGrant.update(needs_reconnect=True).where(MailboxGrant.mailbox == mailbox.id).execute()
    report = fetch_mailbox(Mailbox.get_by_id(mailbox.id), mail_config)
    assert report.problem.code == grants.NEEDS_RECONNECT


@pytest.mark.parametrize("protocol, port", [("imap", "imaps"), ("pop3", "pop3s")])
def test_the_reply_fetcher_refreshes_once_when_the_server_refuses_a_token_ended_early(
        token_mailbox, oauth_provider, oauth_smtp_server, oauth_dovecot, mail_config, protocol, port):
    """The provider ended the access token the portal holds before its expiry (revoked there): Dovecot refuses
    AUTHENTICATE, the fetcher refreshes once and signs in again, and the fetch succeeds. When the refresh is
    refused for good too, the mailbox needs reconnecting."""
    from portal.letters.replies import fetch_mailbox
    from portal.models import MailboxInbox

    mailbox = token_mailbox(oauth_provider, oauth_smtp_server)
    Mailbox.update(incoming_protocol=protocol, incoming_host="localhost", incoming_port=oauth_dovecot.ports[port],
                   incoming_security="ssl", receive_replies=True).where(Mailbox.id == mailbox.id).execute()
    ended = oauth_provider.get_tokens(mailbox.address)["access_token"]  # another grant's token, revoked below
    held = grant(mailbox)
    held.set_secret("access_token", ended)
    held.save()
    oauth_provider.revoke(ended)
    assert oauth_provider.introspect(ended) == {"active": False}
    assert not grant(mailbox).expiring(utcnow())  # the portal thinks it still good

    report = fetch_mailbox(Mailbox.get_by_id(mailbox.id), mail_config)
    assert report.problem is None
    assert MailboxInbox.get(MailboxInbox.mailbox == mailbox.id).last_success_at is not None
    fresh = grant(mailbox)
    assert fresh.refreshes == 1 and not fresh.needs_reconnect
    assert oauth_provider.introspect(fresh.secret("access_token"))["email"] == mailbox.address

    oauth_provider.revoke(fresh.secret("access_token"))  # the whole grant now: the refresh token too
    report = fetch_mailbox(Mailbox.get_by_id(mailbox.id), mail_config)
    assert report.problem.code == grants.NEEDS_RECONNECT
    assert grant(mailbox).needs_reconnect and "invalid_grant" in grant(mailbox).reconnect_reason


def test_the_background_check_refreshes_the_token_and_a_refused_token_never_pauses(
        token_mailbox, make_oauth_provider, make_oauth_smtp_server, mail_config):
    """The periodic re-check signs in as the queue does: an expired token is refreshed first; a token the server
    refuses makes the mailbox Warning, never "Paused by the portal" (that count is for passwords)."""
    provider = make_oauth_provider(access_token_ttl=2)
    server = make_oauth_smtp_server(provider)
    mailbox = token_mailbox(provider, server)
    time.sleep(2.2)
    mailbox_health.check_mailbox(mailbox.id, mail_config)
    assert grant(mailbox).refreshes == 1 and server.logins == [mailbox.address]
    assert Mailbox.get_by_id(mailbox.id).sign_in_failures == 0

    provider.revoke(grant(mailbox).secret("access_token"))
    for _ in range(3):
        found = mailbox_health.check_mailbox(mailbox.id, mail_config)
    after = Mailbox.get_by_id(mailbox.id)
    assert after.active and after.sign_in_failures == 0
    assert found.state == mailbox_health.WARNING
