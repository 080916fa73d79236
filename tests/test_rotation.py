"""`portal rotate-secrets` as one use case: every secret the portal keeps, the admin pages' too, moves to the newest
key in one transaction, so the old key may go; what no key opens either stops it (nothing changed) or is counted."""
import pytest

from portal import directory, sso
from portal.models import Mailbox
from portal.models.sso import SsoSignIn
from portal.secret_box import SecretBox, configured_keys, install


def _with_a_new_first_key(app):
    old_keys = configured_keys(app.config.get("PORTAL_SECRET_KEYS"), app.instance_path)
    app.extensions["portal_secret_box"] = install(SecretBox(["a-brand-new-key", *old_keys]))


def _only_the_new_key(app):
    box = install(SecretBox(["a-brand-new-key"]))
    app.extensions["portal_secret_box"] = box
    return box


def _store_page_secrets(box):
    sso.store_settings(box, {"company_name": "Example Corp", "discovery_url": "https://id.example.com/.well-known/"
                             "openid-configuration", "client_id": "portal", "client_secret": "sso-client-secret"},
                       "rotation-test")
    directory.store_settings(box, {"server_url": "ldaps://ldap.example.com", "bind_dn": "cn=portal,dc=example",
                                   "bind_password": "directory-password", "base_dn": "dc=example"}, "rotation-test")


def test_the_sign_on_and_directory_pages_secrets_move_too_and_sign_in_still_opens(app, client, runner):
    """Those secrets are read by the sign-in page: left under a removed key, nobody could open it."""
    from portal.secret_box import active_box

    _store_page_secrets(active_box())
    _with_a_new_first_key(app)
    result = runner.invoke(args=["rotate-secrets"])
    assert result.exit_code == 0, result.output
    assert "2 admin page settings" in result.output
    assert "sso-client-secret" not in result.output and "directory-password" not in result.output

    box = _only_the_new_key(app)
    assert client.get("/sign-in").status_code == 200
    assert sso.SsoSettings.stored(box)["client_secret"] == "sso-client-secret"
    assert directory.DirectorySettings.stored(box)["bind_password"] == "directory-password"


def test_a_page_secret_no_key_opens_stops_the_rotation_and_changes_nothing(app, runner, make_mailbox):
    from portal.secret_box import active_box

    mailbox = make_mailbox(password="mailbox-password")
    before = Mailbox.get_by_id(mailbox.id).smtp_password
    sso.store_settings(SecretBox(["a key nobody configured"]), {"company_name": "Example Corp",
                       "client_id": "portal", "client_secret": "lost"}, "rotation-test")
    _with_a_new_first_key(app)
    result = runner.invoke(args=["rotate-secrets"])
    assert result.exit_code != 0 and "Nothing was changed" in result.output and "client_secret" in result.output
    assert Mailbox.get_by_id(mailbox.id).smtp_password == before
    assert Mailbox.get_by_id(mailbox.id).secret("smtp_password", active_box()) == "mailbox-password"


def test_what_no_key_opens_and_need_not_stop_it_is_said_apart(app, runner, client, make_employee):
    """An ID token kept for the provider's logout is only a hint: emptied, and said so under its own heading."""
    from portal.models.people import EmployeeSession

    employee = make_employee()
    row = EmployeeSession.create(employee=employee.id, key_hash="rotation-test", expires_at=employee.created_at)
    kept = SsoSignIn(session=row.id, end_session_endpoint="https://id.example.com/logout")
    kept.id_token = SecretBox(["a key nobody configured"]).encrypt("old-id-token", kept.secret_context)
    kept.save(force_insert=True)
    _with_a_new_first_key(app)
    result = runner.invoke(args=["rotate-secrets"])
    assert result.exit_code == 0, result.output
    re_encrypted, _, unopened = result.output.partition("Opened by no key")
    assert "0 single sign-on sessions (ID tokens)" in re_encrypted
    assert "1 single sign-on ID token, emptied" in unopened
    assert SsoSignIn.get().id_token == ""


@pytest.mark.parametrize("count, words", [(1, "1 mailbox (passwords)"), (2, "2 mailboxes (passwords)")])
def test_each_count_reads_as_one_or_several(app, runner, make_mailbox, count, words):
    for number in range(count):
        make_mailbox(password=f"password-{number}")
    _with_a_new_first_key(app)
    result = runner.invoke(args=["rotate-secrets"])
    assert words in result.output and "Opened by no key" not in result.output
