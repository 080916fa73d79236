"""The mailbox rules with a provider sign-in: Test account uses the token, Save binds the grant behind the same
save gate, a token for another identity must show at test time that the provider lets it send as this address."""
from __future__ import annotations

import secrets

import pytest

from portal import mailboxes as service
from portal.models import Mailbox
from portal.models.oauth import MailboxGrant
from portal.oauth import grants
from tests.test_oauth_grants import as_tokens, register_company_app

SECRET_KEY = "test-secret-key"


def _values(server, dovecot, address, form_key, **more):
    return {"address": address, "display_name": "Anna", "smtp_host": "localhost", "smtp_port": str(server.port),
            "smtp_security": "starttls", "smtp_username": "", "incoming_protocol": "imap",
            "incoming_host": "localhost", "incoming_port": str(dovecot.ports["imaps"]), "incoming_security": "ssl",
            "auth": "oauth", "oauth_grant": form_key, **more}


@pytest.fixture
def signed_in(app, oauth_provider, employee):
    """signed_in(login): the pending grant the form's "Sign in" made for ``login``; returns its form key."""
    register_company_app(oauth_provider)

    def sign_in(login):
        key = secrets.token_urlsafe(24)
        grants.new_grant("company", login, "XOAUTH2", as_tokens(oauth_provider.get_tokens(login)), employee=employee,
                         form_key=key)
        return key

    return sign_in


def test_test_account_signs_in_with_the_token_and_save_binds_the_grant(signed_in, oauth_smtp_server, oauth_dovecot,
                                                                       mail_config, employee, write_letter,
                                                                       run_queue):
    """Test account passes with the token on both sides and names the mechanism; the proof saves it; no password
    is stored; the queue then sends with the grant."""
    anna = f"a{secrets.token_hex(4)}@mail.example"
    values = _values(oauth_smtp_server, oauth_dovecot, anna, signed_in(anna))
    outcome = service.test_mailbox(values, actor=employee, mail_config=mail_config, secret_key=SECRET_KEY)
    assert outcome.result.ok, outcome.result.problem
    logins = {s.name: s.detail for s in outcome.result.stages if s.name.endswith(".login")}
    assert logins["smtp.login"].startswith("XOAUTH2: 235") and logins["imap.login"].startswith("XOAUTH2: ")
    saved = service.save_mailbox(values, actor=employee, secret_key=SECRET_KEY, proof=outcome.proof).mailbox
    mailbox = Mailbox.get_by_id(saved.id)
    assert mailbox.tested and mailbox.smtp_password == "" and mailbox.incoming_password == ""
    grant = MailboxGrant.get(MailboxGrant.mailbox == mailbox.id)
    assert grant.form_key is None and grant.identity == anna
    write_letter(mailbox)
    assert run_queue().outcomes["sent"] == 1
    assert oauth_smtp_server.logins[-1] == anna


def test_a_form_without_its_sign_in_saves_nothing(signed_in, oauth_smtp_server, oauth_dovecot, employee):
    """An unknown or used-up sign-in, or "oauth" without one, is refused beside the sign-in button; nothing is saved."""
    anna = f"a{secrets.token_hex(4)}@mail.example"
    for key in ("no-such-form-key", ""):
        with pytest.raises(service.MailboxInvalid) as refused:
            service.save_mailbox(_values(oauth_smtp_server, oauth_dovecot, anna, key), actor=employee,
                                 secret_key=SECRET_KEY, proof="x")
        assert set(refused.value.errors) == {"auth"}
    assert Mailbox.select().count() == 0


def test_a_token_for_another_identity_must_send_its_test_letter(signed_in, oauth_smtp_server, oauth_dovecot,
                                                                mail_config, employee):
    """Signed in as anna@, saving sales@: the test sends its letter as sales@ so the provider's answer to MAIL FROM
    and DATA shows whether anna may send as sales@ (this test server lets her)."""
    anna = f"a{secrets.token_hex(4)}@mail.example"
    values = _values(oauth_smtp_server, oauth_dovecot, "sales@mail.example", signed_in(anna),
                     incoming_protocol="")
    outcome = service.test_mailbox(values, actor=employee, mail_config=mail_config, secret_key=SECRET_KEY)
    assert outcome.result.ok, outcome.result.problem
    assert "smtp.test_letter" in {s.name for s in outcome.result.stages}
    assert [(m.mail_from, m.login) for m in oauth_smtp_server.messages] == [("sales@mail.example", anna)]


@pytest.mark.parametrize("page", ["/my/addresses", "/admin/mail/outgoing"])
def test_the_mailbox_lists_read_the_grants_in_one_query_however_many_rows(app, client, auth, admin, make_mailbox,
                                                                          page):
    """The Needs reconnecting badge of every row comes from one query: the statements of a list page are the same
    with two or with eight provider mailboxes (half of them needing reconnecting), and each badge still shows."""
    from portal.db import StatementCounter
    from portal.oauth.client import Tokens
    auth.login(admin)

    def add(count):
        for _ in range(count):
            address = f"o{secrets.token_hex(4)}@mail.example"
            mailbox = make_mailbox(admin if page == "/my/addresses" else None, address=address, password="")
            grant = grants.new_grant("google", address, "XOAUTH2", Tokens("at", "rt", 3600), mailbox=mailbox)
            grant.needs_reconnect = len(Mailbox.select()) % 2 == 0
            grant.save()

    def statements():
        with StatementCounter() as counted:
            answer = client.get(page)
        assert answer.status_code == 200
        return counted.count, answer.get_data(as_text=True).count('class="badge badge-fail" title=')

    add(2)
    few, badges = statements()
    assert badges == 1
    add(6)
    many, badges = statements()
    assert badges == 4
    assert many == few
