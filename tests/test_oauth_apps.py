"""Registering the portal's app at a provider (``portal oauth-app``), and rotating OAuth secrets with the keys."""
from __future__ import annotations

import pytest

from portal.models.oauth import MailboxGrant, OAuthApp
from portal.oauth import grants
from portal.oauth.apps import AppInvalid, save_app
from portal.oauth.client import Tokens
from portal.secret_box import SecretBox, SecretError, configured_keys, install


def test_oauth_app_set_and_list_never_show_the_secret(runner, monkeypatch):
    """The secret comes from an environment variable, is stored encrypted, and list says only that it is set."""
    monkeypatch.setenv("MS_SECRET", "ms-very-secret-value")
    done = runner.invoke(args=["oauth-app", "set", "microsoft", "--client-id", "11111111-2222-3333-4444-555555555555",
                               "--client-secret-env", "MS_SECRET", "--tenant", "organizations"])
    assert done.exit_code == 0, done.output
    stored = OAuthApp.get_by_id("microsoft")
    assert stored.tenant == "organizations" and "ms-very-secret-value" not in stored.client_secret
    assert stored.secret("client_secret") == "ms-very-secret-value"
    listed = runner.invoke(args=["oauth-app", "list"])
    assert "microsoft: client_id=11111111-2222-3333-4444-555555555555 secret=set tenant=organizations" in listed.output
    assert "ms-very-secret-value" not in listed.output + done.output
    # A blank secret keeps the stored one.
    assert runner.invoke(args=["oauth-app", "set", "microsoft", "--client-id", "other-id",
                               "--tenant", "organizations"]).exit_code == 0
    assert OAuthApp.get_by_id("microsoft").secret("client_secret") == "ms-very-secret-value"


def test_a_kept_secret_never_goes_to_another_microsoft_tenant(runner, monkeypatch):
    """Changing the tenant with no new secret is refused (the secret was given for the old tenant's server);
    nothing is saved; with the secret given again the change is saved."""
    monkeypatch.setenv("MS_SECRET", "ms-secret")
    assert runner.invoke(args=["oauth-app", "set", "microsoft", "--client-id", "ms-id", "--client-secret-env",
                               "MS_SECRET", "--tenant", "organizations"]).exit_code == 0
    refused = runner.invoke(args=["oauth-app", "set", "microsoft", "--client-id", "ms-id",
                                  "--tenant", "contoso.onmicrosoft.com"])
    assert refused.exit_code != 0
    assert ("client_secret: Enter the client secret again: it was given for "
            "https://login.microsoftonline.com/organizations.") in refused.output
    assert OAuthApp.get_by_id("microsoft").tenant == "organizations"
    monkeypatch.setenv("MS_SECRET", "contoso-secret")
    assert runner.invoke(args=["oauth-app", "set", "microsoft", "--client-id", "ms-id", "--client-secret-env",
                               "MS_SECRET", "--tenant", "contoso.onmicrosoft.com"]).exit_code == 0
    stored = OAuthApp.get_by_id("microsoft")
    assert (stored.tenant, stored.secret("client_secret")) == ("contoso.onmicrosoft.com", "contoso-secret")


def test_a_kept_secret_never_goes_to_another_company_server(app):
    """A new discovery URL with a blank secret: refused beside the secret field, naming the old server, and the
    app keeps its old server and secret. The same URL with a blank secret keeps the secret."""
    old_url = "https://idp.example.com/.well-known/openid-configuration"
    save_app("company", client_id="portal", client_secret="idp-secret", discovery_url=old_url)
    with pytest.raises(AppInvalid) as refused:
        save_app("company", client_id="portal", client_secret="",
                 discovery_url="https://attacker.example.net/.well-known/openid-configuration")
    assert set(refused.value.errors) == {"client_secret"}
    assert str(refused.value.errors["client_secret"]) == f"Enter the client secret again: it was given for {old_url}."
    stored = OAuthApp.get_by_id("company")
    assert (stored.discovery_url, stored.secret("client_secret")) == (old_url, "idp-secret")
    save_app("company", client_id="portal-2", client_secret="", discovery_url=old_url, scopes="openid email")
    stored = OAuthApp.get_by_id("company")
    assert (stored.client_id, stored.secret("client_secret")) == ("portal-2", "idp-secret")


def test_oauth_app_set_refuses_bad_values_and_saves_nothing(runner, monkeypatch):
    """A company server without an https discovery URL, a missing secret, a made-up tenant: refused in one line."""
    monkeypatch.setenv("S", "secret")
    refused = runner.invoke(args=["oauth-app", "set", "company", "--client-id", "portal", "--client-secret-env", "S",
                                  "--discovery-url", "http://idp.example.com/.well-known/openid-configuration"])
    assert refused.exit_code != 0 and "discovery_url" in refused.output
    assert runner.invoke(args=["oauth-app", "set", "google", "--client-id", "x"]).exit_code != 0
    assert "MISSING_VAR" in runner.invoke(args=["oauth-app", "set", "google", "--client-id", "x",
                                                "--client-secret-env", "MISSING_VAR"]).output
    with pytest.raises(AppInvalid) as bad:
        save_app("microsoft", client_id="x", client_secret="s", tenant="not a tenant!")
    assert set(bad.value.errors) == {"tenant"}
    assert OAuthApp.select().count() == 0


def test_rotate_secrets_rekeys_client_secrets_and_tokens(app, runner, make_mailbox):
    """After rotate-secrets, the newest key alone opens every client secret and token; the mailbox stays tested."""
    from portal.letters.queue import tested_for
    from tests.fixtures.letters import passed_test

    save_app("google", client_id="google-id", client_secret="google-secret")
    mailbox = make_mailbox(address="anna@mail.example", password="")
    grants.new_grant("google", "anna@mail.example", "XOAUTH2",
                     Tokens(access_token="at-1", refresh_token="rt-1", expires_in=3600), mailbox=mailbox)
    passed_test(mailbox)
    old_keys = configured_keys(app.config.get("PORTAL_SECRET_KEYS"), app.instance_path)
    app.extensions["portal_secret_box"] = install(SecretBox(["a-brand-new-key", *old_keys]))
    assert runner.invoke(args=["rotate-secrets"]).exit_code == 0

    only_new = install(SecretBox(["a-brand-new-key"]))
    app.extensions["portal_secret_box"] = only_new
    assert OAuthApp.get_by_id("google").secret("client_secret", only_new) == "google-secret"
    grant = MailboxGrant.get(MailboxGrant.mailbox == mailbox.id)
    assert (grant.secret("access_token", only_new), grant.secret("refresh_token", only_new)) == ("at-1", "rt-1")
    with pytest.raises(SecretError):
        grant.secret("access_token", SecretBox(old_keys))
    fresh = type(mailbox).get_by_id(mailbox.id)
    assert tested_for(fresh, fresh.to_settings(only_new))


def test_a_token_copied_to_another_grant_does_not_open(app, make_mailbox):
    """Tokens are bound to their row like mailbox passwords: copied into another grant they fail to decrypt."""
    first, second = (grants.new_grant("google", f"{n}@mail.example", "XOAUTH2",
                                      Tokens(access_token=f"at-{n}", refresh_token="", expires_in=60),
                                      mailbox=make_mailbox(address=f"{n}@mail.example"))
                     for n in ("a", "b"))
    second.access_token = first.access_token
    with pytest.raises(SecretError):
        second.secret("access_token")
