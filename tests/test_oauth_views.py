"""The pages of provider sign-in, driven against the real oidc-provider: Sign-in providers (save, Check), the trip
to the consent page and back to the mailbox form, the callback's refusals, provider errors, and Reconnect."""
from __future__ import annotations

import datetime
import html
import re
import secrets
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests

from portal.models import AuditEvent, Letter, Mailbox, utcnow
from portal.models.oauth import MailboxGrant, OAuthApp, OAuthFlow
from portal.oauth import grants
from tests.conftest import page_text
from tests.servers.oauth import CLIENT_ID, CLIENT_SECRET

CALLBACK = "http://localhost/oauth/callback"  # url_for(..., _external=True) in the test client


@pytest.fixture
def provider_for_portal(make_oauth_provider):
    """An oidc-provider whose client "portal" may redirect to the test client's callback."""
    return make_oauth_provider(redirect_uris=(CALLBACK,))


@pytest.fixture
def company_app(as_admin, provider_for_portal):
    """The provider registered on Sign-in providers by an admin, through the page."""
    answer = as_admin.post("/admin/sign-in-providers/company", data={
        "company-client_id": CLIENT_ID, "company-client_secret": CLIENT_SECRET,
        "company-discovery_url": f"{provider_for_portal.issuer}/.well-known/openid-configuration",
        "company-sasl": "XOAUTH2", "company-scopes": "openid email offline_access mail"})
    assert answer.status_code == 302, page_text(answer)
    return provider_for_portal


def consent(provider_url: str, login: str, *, refuse: bool = False) -> str:
    """Go through the provider's real login and consent pages as a browser would; return where it sends back."""
    with requests.Session() as browser:
        page = browser.get(provider_url, timeout=10)
        action = urljoin(page.url, re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1))
        page = browser.post(action, data={"prompt": "login", "login": login, "password": "any"}, timeout=10)
        action = urljoin(page.url, re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1))
        if refuse:  # the consent page's "Cancel" link aborts the interaction: access_denied comes back
            cancel = urljoin(page.url, re.search(r'href="([^"]*abort[^"]*)"', page.text).group(1))
            answer = browser.get(cancel, allow_redirects=False, timeout=10)
        else:
            answer = browser.post(action, data={"prompt": "consent"}, allow_redirects=False, timeout=10)
        while answer.is_redirect and not answer.headers["location"].startswith(CALLBACK):
            answer = browser.get(urljoin(answer.url, answer.headers["location"]), allow_redirects=False, timeout=10)
        return answer.headers["location"]


def provider_link(answer) -> str:
    """Where the portal sends the browser: HX-Redirect for htmx, else the continue page's link (a form may not
    redirect to another site under the portal's form-action 'self')."""
    if "HX-Redirect" in answer.headers:
        return answer.headers["HX-Redirect"]
    assert answer.status_code == 200
    return html.unescape(re.search(r'<a href="([^"]+)" role="button"', answer.get_data(as_text=True)).group(1))


def start_sign_in(client, address, **form):
    return provider_link(client.post("/mailboxes/sign-in/company", data={
        "address": address, "smtp_host": "localhost", "smtp_password": "never-kept", **form}))


def test_the_admin_sees_the_redirect_uri_and_scopes_and_the_secret_is_never_shown(company_app, as_admin):
    page = as_admin.get("/admin/sign-in-providers")
    text = page_text(page)
    assert CALLBACK in text and "https://outlook.office.com/SMTP.Send" in text and "https://mail.google.com/" in text
    assert CLIENT_SECRET not in page.get_data(as_text=True)
    assert OAuthApp.get_by_id("company").secret("client_secret") == CLIENT_SECRET


def test_check_tells_a_wrong_secret_from_an_unreachable_provider(company_app, as_admin):
    assert "the client ID and secret are right" in page_text(as_admin.post("/admin/sign-in-providers/company/check"))
    as_admin.post("/admin/sign-in-providers/company", data={
        "company-client_id": CLIENT_ID, "company-client_secret": "wrong-secret",
        "company-discovery_url": f"{company_app.issuer}/.well-known/openid-configuration", "company-sasl": "XOAUTH2"})
    assert "invalid_client" in page_text(as_admin.post("/admin/sign-in-providers/company/check"))
    company_app.stop()
    from portal import openid
    openid.forget()  # the discovery document is kept a few minutes: the provider is asked again
    assert "could not be reached" in page_text(as_admin.post("/admin/sign-in-providers/company/check"))


def test_an_employee_may_not_open_sign_in_providers(as_employee):
    assert as_employee.get("/admin/sign-in-providers").status_code in (302, 403, 404)


@pytest.mark.parametrize("language, words", [
    ("en", "Enter the client secret again: it was given for https://login.microsoftonline.com/organizations."),
    ("ru", "Введите секрет клиента заново: он был выдан для https://login.microsoftonline.com/organizations.")])
def test_a_new_tenant_with_the_secret_left_blank_asks_for_the_secret_again(as_admin, language, words):
    """The kept secret was given for the old tenant: the form says so beside the secret and saves nothing."""
    from portal.oauth.apps import save_app

    save_app("microsoft", client_id="ms-id", client_secret="ms-secret", tenant="organizations")
    answer = as_admin.post("/admin/sign-in-providers/microsoft", headers={"Accept-Language": language}, data={
        "microsoft-client_id": "ms-id", "microsoft-client_secret": "", "microsoft-tenant": "contoso.onmicrosoft.com"})
    assert answer.status_code == 200
    card = answer.get_data(as_text=True).split('id="provider-microsoft"')[1].split("</article>")[0]
    secret_field = card.split('name="microsoft-client_secret"')[1].split('name="microsoft-tenant"')[0]
    assert words in re.sub(r"\s+", " ", html.unescape(secret_field))
    assert "ms-secret" not in answer.get_data(as_text=True)
    stored = OAuthApp.get_by_id("microsoft")
    assert (stored.tenant, stored.secret("client_secret")) == ("organizations", "ms-secret")


def test_sign_in_returns_to_the_form_with_who_signed_in_and_no_password_kept(company_app, as_admin):
    address = f"anna{secrets.token_hex(3)}@mail.example"
    back = consent(start_sign_in(as_admin, address), address)
    flow = OAuthFlow.get()
    assert "never-kept" not in flow.form_values
    answer = as_admin.get(back.replace("http://localhost", ""))
    assert answer.status_code == 302 and "signed_in=" in answer.headers["Location"]
    form = as_admin.get(answer.headers["Location"])
    text = page_text(form)
    assert f"Signed in as {address}" in text
    assert f'name="oauth_grant" value="{flow.id}"' in form.get_data(as_text=True)
    grant = MailboxGrant.get(MailboxGrant.form_key == flow.id)
    assert grant.identity == address and grant.mailbox is None
    html = form.get_data(as_text=True)
    assert grant.secret("access_token") not in html and grant.secret("refresh_token") not in html


def test_the_callback_refuses_a_replayed_a_foreign_and_an_expired_state(company_app, as_admin):
    address = f"anna{secrets.token_hex(3)}@mail.example"
    back = consent(start_sign_in(as_admin, address), address).replace("http://localhost", "")
    assert as_admin.get(back).status_code == 302
    replay = as_admin.get(back)
    assert replay.status_code == 400 and "already used" in page_text(replay)
    assert MailboxGrant.select().count() == 1

    # Another browser with the same link: the state is not one this browser was sent off with.
    second = consent(start_sign_in(as_admin, address), address).replace("http://localhost", "")
    with as_admin.session_transaction() as session:
        kept = session.pop("oauth_states")
    foreign = as_admin.get(second)
    assert foreign.status_code == 400 and "another browser" in page_text(foreign)
    with as_admin.session_transaction() as session:
        session["oauth_states"] = kept

    for flow in OAuthFlow.select().where(OAuthFlow.used_at.is_null()):
        flow.created_at -= datetime.timedelta(minutes=11)
        flow.save()
    expired = as_admin.get(second)
    assert expired.status_code == 400 and "expired" in page_text(expired)
    assert as_admin.get("/oauth/callback?state=made-up&code=x").status_code == 400
    assert MailboxGrant.select().count() == 1


def test_a_consent_under_way_survives_rotate_secrets_and_the_old_key_going(company_app, as_admin, app, runner):
    from portal.secret_box import SecretBox, configured_keys, install

    address = f"anna{secrets.token_hex(3)}@mail.example"
    back = consent(start_sign_in(as_admin, address), address).replace("http://localhost", "")
    old_keys = configured_keys(app.config.get("PORTAL_SECRET_KEYS"), app.instance_path)
    app.extensions["portal_secret_box"] = install(SecretBox(["a-brand-new-key", *old_keys]))
    rotated = runner.invoke(args=["rotate-secrets"])
    assert rotated.exit_code == 0 and "1 sign-in under way at a provider (PKCE verifier)" in rotated.output
    app.extensions["portal_secret_box"] = install(SecretBox(["a-brand-new-key"]))  # the old key removed
    answer = as_admin.get(back)
    assert answer.status_code == 302 and "signed_in=" in answer.headers["Location"]
    assert f"Signed in as {address}" in page_text(as_admin.get(answer.headers["Location"]))


def test_a_consent_begun_under_a_key_removed_since_is_refused_as_expired(company_app, as_admin, app):
    """The keys changed without rotate-secrets: the verifier cannot be read, and the person is told to start
    again, in words, not with a 500."""
    from portal.secret_box import SecretBox, install

    address = f"anna{secrets.token_hex(3)}@mail.example"
    back = consent(start_sign_in(as_admin, address), address).replace("http://localhost", "")
    app.extensions["portal_secret_box"] = install(SecretBox(["a key the trip was not made with"]))
    refused = as_admin.get(back)
    assert refused.status_code == 400 and "took too long" in page_text(refused)
    assert MailboxGrant.select().count() == 0


def without_csrf_token(page: bytes) -> bytes:
    return re.sub(rb'("X-CSRFToken": "|name="csrf_token" value=")[^"]+', rb"\1", page)


def test_someone_elses_used_state_is_answered_as_one_that_never_existed(company_app, as_admin, app, employee):
    """Another person who gets hold of the admin's callback link (its state already used) is told exactly what a
    made-up state gets: nothing says that state ever existed or was used."""
    from tests.conftest import AuthActions

    address = f"anna{secrets.token_hex(3)}@mail.example"
    back = consent(start_sign_in(as_admin, address), address).replace("http://localhost", "")
    assert as_admin.get(back).status_code == 302
    other = app.test_client()
    AuthActions(other).login(employee)
    other.get("/oauth/callback?state=x&code=x")  # both pages below are then the person's second view
    theirs = other.get(back)
    missing = other.get("/oauth/callback?" + re.sub(r"state=[^&]+", "state=" + secrets.token_urlsafe(32),
                                                    back.split("?", 1)[1]))
    assert theirs.status_code == missing.status_code == 400
    assert "already used" not in page_text(theirs)
    assert without_csrf_token(theirs.get_data()) == without_csrf_token(missing.get_data())
    assert MailboxGrant.select().count() == 1


def test_a_refused_consent_is_explained_on_the_form_and_nothing_is_saved(company_app, as_admin):
    address = f"anna{secrets.token_hex(3)}@mail.example"
    back = consent(start_sign_in(as_admin, address), address, refuse=True)
    assert "error=access_denied" in back
    form = as_admin.get(as_admin.get(back.replace("http://localhost", "")).headers["Location"])
    assert "consent was refused" in page_text(form)
    assert MailboxGrant.select().count() == 0 and Mailbox.select().count() == 0


def test_a_provider_error_is_explained_in_words(company_app, as_admin):
    from portal.views.oauth import explain_error

    state = parse_qs(urlparse(start_sign_in(as_admin, "a@mail.example")).query)["state"][0]
    answer = as_admin.get(f"/oauth/callback?state={state}&error=invalid_scope&error_description=nope")
    form = as_admin.get(answer.headers["Location"])
    assert "refused the permissions" in page_text(form)
    with as_admin.application.test_request_context():
        assert "administrator" in explain_error("unauthorized_client")
        # An ID token from another issuer (portal/oauth/client.py refuses it) is named, not "refused (code)".
        assert "signed by another provider" in explain_error("id_token_issuer")
    with as_admin.application.test_request_context(headers={"Accept-Language": "ru"}):
        assert "подписью другого провайдера" in explain_error("id_token_issuer")


@pytest.mark.parametrize("elsewhere", ["//evil.example/x", "/%09/evil.example/x", "/%5Cevil.example/x"])
def test_reconnect_binds_the_new_grant_and_releases_the_waiting_letters(company_app, as_admin, admin, make_mailbox,
                                                                        write_letter, elsewhere):
    address = f"anna{secrets.token_hex(3)}@mail.example"
    mailbox = make_mailbox(admin, address=address, password="")
    from tests.test_oauth_grants import as_tokens

    old = grants.new_grant("company", address, "XOAUTH2", as_tokens(company_app.get_tokens(address)), mailbox=mailbox)
    MailboxGrant.update(needs_reconnect=True, reconnect_reason="invalid_grant").where(
        MailboxGrant.id == old.id).execute()
    letter = write_letter(mailbox, author=admin)
    Letter.update(state="deferred", waiting_for=grants.NEEDS_RECONNECT,
                  next_attempt_at=utcnow() + datetime.timedelta(hours=1)).execute()
    mine = as_admin.get("/my/addresses")
    assert "Needs reconnecting" in page_text(mine) and "Reconnect" in page_text(mine)
    assert "Needs reconnecting" in page_text(as_admin.get("/outbox"))

    answer = as_admin.post(f"/mailboxes/{mailbox.id}/reconnect?next={elsewhere}", headers={"HX-Request": "true"})
    back = consent(provider_link(answer), address).replace("http://localhost", "")
    done = as_admin.get(back + "&next=https://evil.example/")
    assert done.status_code == 302 and "evil" not in done.headers["Location"]
    grant = MailboxGrant.get(MailboxGrant.mailbox == mailbox.id)
    assert grant.id != old.id and not grant.needs_reconnect
    assert Letter.get_by_id(letter.id).next_attempt_at <= utcnow()
    assert AuditEvent.select().where(AuditEvent.action == "reconnected").count() == 1
    assert "Needs reconnecting" not in page_text(as_admin.get("/my/addresses"))


def test_reconnecting_as_someone_else_is_refused_and_binds_nothing(company_app, as_admin, admin, make_mailbox):
    """Signed in at the provider as bob@ to reconnect anna@: refused with both names, the old grant stays."""
    from tests.test_oauth_grants import as_tokens

    address = f"anna{secrets.token_hex(3)}@mail.example"
    mailbox = make_mailbox(admin, address=address, password="")
    old = grants.new_grant("company", address, "XOAUTH2", as_tokens(company_app.get_tokens(address)), mailbox=mailbox)
    answer = as_admin.post(f"/mailboxes/{mailbox.id}/reconnect", headers={"HX-Request": "true"})
    done = as_admin.get(consent(provider_link(answer), "bob@mail.example").replace("http://localhost", ""))
    shown = page_text(as_admin.get(done.headers["Location"]))
    assert "You signed in as bob@mail.example" in shown and address in shown
    assert [g.id for g in MailboxGrant.select()] == [old.id]
