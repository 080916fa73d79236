"""The OpenID Connect core (portal/sso.py) against a real oidc-provider: the flow, the ID token's checks,
matching and provisioning, RP-initiated logout and the admin's "Check"; no Flask app involved beyond the database."""
from __future__ import annotations

import base64
import datetime
import json
import re
import secrets
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests

from portal import openid
from portal.http import WebAccess
from portal.models import Employee, utcnow
from portal.models.sso import SsoFlow, SsoLink
from portal.sso import (SsoRefusal, SsoSettings, begin_sign_in, check_provider, employee_for, finish_flow,
                        finish_sign_in, logout_url, start_flow, validate_id_token)
from tests.servers.oauth import CLIENT_SECRET, DEFAULT_REDIRECT_URI


LOOPBACK = WebAccess.from_entries("127.0.0.1:*")  # PORTAL_OIDC_ALLOWED_HOSTS as the tests' apps set it


def settings_for(provider, **overrides):
    """The portal's settings for the test provider's confidential client "portal"."""
    values = dict(discovery_url=provider.issuer + "/.well-known/openid-configuration", client_id="portal",
                  client_secret=CLIENT_SECRET, company_name="Example Corp", scopes="openid email profile groups",
                  admin_group="portal-admins", access=LOOPBACK)
    values.update(overrides)
    return SsoSettings(**values)


def _form(html, base):
    found = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert found, f"no form on the provider's page {base}: {html[:300]}"
    return urljoin(base, found.group(1).replace("&amp;", "&"))


def sign_in_at_provider(url, login, redirect_uri=DEFAULT_REDIRECT_URI):
    """Go through the provider's real login and consent pages as `login`; the query it sends back to the portal."""
    with requests.Session() as browser:
        page = browser.get(url, timeout=10)
        page.raise_for_status()
        answer = browser.post(_form(page.text, page.url), data={"prompt": "login", "login": login, "password": "x"},
                              allow_redirects=False, timeout=10)
        while True:
            if answer.is_redirect:
                location = urljoin(answer.url, answer.headers["location"])
                if location.startswith(redirect_uri):
                    return {name: values[0] for name, values in parse_qs(urlparse(location).query).items()}
                answer = browser.get(location, allow_redirects=False, timeout=10)
            else:  # the consent page
                answer = browser.post(_form(answer.text, answer.url), data={"prompt": "consent"},
                                      allow_redirects=False, timeout=10)


def signed_in_identity(settings, login):
    pending = begin_sign_in(settings, DEFAULT_REDIRECT_URI)
    return finish_sign_in(settings, pending, sign_in_at_provider(pending["url"], login))


def address():
    return f"u{secrets.token_hex(4)}@mail.example"


def test_the_sign_in_url_asks_for_a_code_with_pkce_state_and_nonce(oauth_provider):
    """The provider is asked for a code with an S256 challenge, a state and a nonce, for our client."""
    pending = begin_sign_in(settings_for(oauth_provider), DEFAULT_REDIRECT_URI)
    query = parse_qs(urlparse(pending["url"]).query)
    assert query["response_type"] == ["code"] and query["client_id"] == ["portal"]
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0] != pending["code_verifier"]
    assert query["state"] == [pending["state"]] and query["nonce"] == [pending["nonce"]]
    assert query["redirect_uri"] == [DEFAULT_REDIRECT_URI]


def test_a_started_sign_in_is_kept_on_the_server_and_old_ones_are_removed(app, oauth_provider):
    """The trip keeps what the callback needs, the verifier encrypted; a day-old one goes when the next starts."""
    settings = settings_for(oauth_provider)
    old = start_flow(settings, DEFAULT_REDIRECT_URI)
    SsoFlow.update(created_at=utcnow() - datetime.timedelta(days=2)).execute()
    started = start_flow(settings, DEFAULT_REDIRECT_URI, "/profile")
    assert [flow.state for flow in SsoFlow.select()] == [started.state] != [old.state]
    flow = SsoFlow.get()
    assert flow.redirect_uri == DEFAULT_REDIRECT_URI and flow.next_target == "/profile"
    assert flow.secret("code_verifier") and flow.secret("code_verifier") not in flow.code_verifier
    login = address()
    identity, target = finish_flow(settings, sign_in_at_provider(started.url, login), [old.state, started.state])
    assert identity.email == login and target == "/profile"


def test_first_sign_in_links_by_verified_email_then_by_subject(app, make_employee, oauth_provider):
    """The first time the verified e-mail finds the employee; afterwards the link does, even after a new e-mail."""
    settings = settings_for(oauth_provider)
    login = address()
    anna = make_employee(email=login)
    identity = signed_in_identity(settings, login)
    assert identity.issuer == oauth_provider.issuer and identity.email == login and identity.email_verified
    assert employee_for(identity, settings) == (anna, "matched")
    assert SsoLink.get(SsoLink.employee == anna.id).subject == login
    Employee.update(email="anna.renamed@example.com").where(Employee.id == anna.id).execute()
    employee, how = employee_for(signed_in_identity(settings, login), settings)
    assert (employee.id, how) == (anna.id, "linked")


def test_an_unknown_person_is_refused_and_nothing_is_created(app, oauth_provider):
    settings = settings_for(oauth_provider)
    login = address()
    with pytest.raises(SsoRefusal) as refused:
        employee_for(signed_in_identity(settings, login), settings)
    assert refused.value.message.code == "unknown" and login in str(refused.value)
    assert Employee.select().count() == 0 and SsoLink.select().count() == 0


def test_provisioning_takes_department_and_admin_role_from_the_groups_claim(app, oauth_provider):
    """Created on first sign-in when allowed: the group claim "portal-admins" makes an admin, others employees."""
    settings = settings_for(oauth_provider, provision=True)
    boss, clerk = "admin" + address(), address()
    created, how = employee_for(signed_in_identity(settings, boss), settings)
    assert how == "created" and created.role == "admin" and created.department == "Sales"
    assert created.name == "Test " + boss.split("@")[0] and not created.password_hash
    assert employee_for(signed_in_identity(settings, clerk), settings)[0].role == "employee"


def test_an_unverified_email_is_never_matched(app, make_employee, oauth_provider):
    settings = settings_for(oauth_provider, provision=True)
    login = "unverified" + address()
    make_employee(email=login)
    with pytest.raises(SsoRefusal) as refused:
        employee_for(signed_in_identity(settings, login), settings)
    assert refused.value.message.code == "email_unverified"
    assert SsoLink.select().count() == 0


def test_a_deactivated_employee_cannot_sign_in(app, make_employee, oauth_provider):
    """Neither by e-mail the first time nor by the link afterwards."""
    settings = settings_for(oauth_provider)
    login = address()
    anna = make_employee(email=login)
    employee_for(signed_in_identity(settings, login), settings)
    Employee.update(active=False).where(Employee.id == anna.id).execute()
    with pytest.raises(SsoRefusal) as refused:
        employee_for(signed_in_identity(settings, login), settings)
    assert refused.value.message.code == "deactivated"


def test_a_tampered_state_is_refused_before_the_code_is_used(oauth_provider):
    settings = settings_for(oauth_provider)
    pending = begin_sign_in(settings, DEFAULT_REDIRECT_URI)
    answer = sign_in_at_provider(pending["url"], address())
    for forged in ({**answer, "state": answer["state"] + "x"}, {**answer, "state": ""}):
        with pytest.raises(SsoRefusal) as refused:
            finish_sign_in(settings, pending, forged)
        assert refused.value.message.code == "state"
    with pytest.raises(SsoRefusal) as refused:
        finish_sign_in(settings, None, answer)  # this browser started no sign-in
    assert refused.value.message.code == "state"
    assert finish_sign_in(settings, pending, answer).email  # the code was not spent by the refusals


def test_a_replayed_code_is_refused(oauth_provider):
    settings = settings_for(oauth_provider)
    pending = begin_sign_in(settings, DEFAULT_REDIRECT_URI)
    answer = sign_in_at_provider(pending["url"], address())
    finish_sign_in(settings, pending, answer)
    with pytest.raises(SsoRefusal) as refused:
        finish_sign_in(settings, pending, answer)
    assert refused.value.message.code == "code_refused"


def test_the_provider_saying_no_is_shown(oauth_provider):
    with pytest.raises(SsoRefusal) as refused:
        finish_sign_in(settings_for(oauth_provider), {"state": "s"},
                       {"error": "access_denied", "error_description": "End-User aborted interaction"})
    assert refused.value.message.code == "provider_error" and "aborted" in str(refused.value)


def test_an_id_token_for_another_audience_is_refused(oauth_provider):
    """An ID token the provider really signed, but for the client "other-client", is not one for this portal."""
    other = settings_for(oauth_provider, client_id="other-client", client_secret="other-secret")
    pending = begin_sign_in(other, DEFAULT_REDIRECT_URI)
    foreign = finish_sign_in(other, pending, sign_in_at_provider(pending["url"], address()))
    assert foreign.claims["aud"] == "other-client"
    with pytest.raises(SsoRefusal) as refused:
        validate_id_token(settings_for(oauth_provider), {"id_token": foreign.id_token}, pending["nonce"])
    assert refused.value.message.code == "id_token_audience"


def test_an_id_token_with_a_forged_signature_or_another_nonce_is_refused(oauth_provider):
    settings = settings_for(oauth_provider)
    pending = begin_sign_in(settings, DEFAULT_REDIRECT_URI)
    identity = finish_sign_in(settings, pending, sign_in_at_provider(pending["url"], address()))
    assert validate_id_token(settings, {"id_token": identity.id_token}, pending["nonce"])["sub"] == identity.subject
    header, payload, signature = identity.id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "ceo@mail.example"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(SsoRefusal) as refused:
        validate_id_token(settings, {"id_token": f"{header}.{forged_payload}.{signature}"}, pending["nonce"])
    assert refused.value.message.code == "id_token_signature"
    with pytest.raises(SsoRefusal) as refused:
        validate_id_token(settings, {"id_token": identity.id_token}, "another-nonce")
    assert refused.value.message.code == "id_token_nonce"


def test_rp_initiated_logout_url_carries_the_id_token_hint(oauth_provider):
    settings = settings_for(oauth_provider)
    identity = signed_in_identity(settings, address())
    assert identity.end_session_endpoint == oauth_provider.issuer + "/session/end"
    url = logout_url(identity.end_session_endpoint, settings, identity.id_token, "https://portal.example/mail/sign-in")
    query = parse_qs(urlparse(url).query)
    assert url.startswith(oauth_provider.issuer + "/session/end?")
    assert query["id_token_hint"] == [identity.id_token]
    assert query["post_logout_redirect_uri"] == ["https://portal.example/mail/sign-in"]
    assert logout_url("", settings, identity.id_token, "https://portal.example/sign-in") is None


def _check(settings):
    return [(result.ok, result.message.code) for result in check_provider(settings)]


def test_check_passes_for_a_right_configuration(oauth_provider):
    assert _check(settings_for(oauth_provider)) == [(True, "discovery_ok"), (True, "keys_ok"), (True, "clock_ok"),
                                                    (True, "client_ok")]


def test_check_explains_a_wrong_discovery_url_and_a_wrong_secret(oauth_provider, filtered_port):
    assert _check(settings_for(oauth_provider, discovery_url=oauth_provider.issuer + "/nope")) == [
        (False, "discovery_status")]
    assert _check(settings_for(oauth_provider, discovery_url=oauth_provider.issuer + "/jwks")) == [
        (False, "discovery_invalid")]
    wrong = check_provider(settings_for(oauth_provider, discovery_url="http://127.0.0.1:9/.well-known/x"))
    assert [(result.ok, result.message.code) for result in wrong] == [(False, "discovery_unreachable")]
    assert _check(settings_for(oauth_provider, client_secret="wrong"))[-1] == (False, "client_refused")
    assert _check(settings_for(oauth_provider, client_id="nobody"))[-1] == (False, "client_refused")


def test_clock_skew_is_explained_by_the_check_and_refuses_the_id_token(make_oauth_provider, monkeypatch):
    """A provider whose clock runs 10 minutes ahead: "Check" says so, and its ID tokens are refused."""
    monkeypatch.setenv("CLOCK_SKEW", "600")
    provider = make_oauth_provider()
    settings = settings_for(provider)
    checked = check_provider(settings)
    skew = next(result for result in checked if result.message.code == "clock_skew")
    assert not skew.ok and 590 <= skew.message.params["seconds"] <= 610
    with pytest.raises(SsoRefusal) as refused:
        signed_in_identity(settings, address())
    assert refused.value.message.code == "id_token_clock"


def test_an_id_token_from_another_issuer_is_refused(oauth_provider, make_oauth_provider):
    """Another provider's ID token for a client of the same name: its issuer is not the configured one."""
    elsewhere = make_oauth_provider()
    foreign = signed_in_identity(settings_for(elsewhere), address())
    with pytest.raises(SsoRefusal) as refused:
        validate_id_token(settings_for(oauth_provider), {"id_token": foreign.id_token}, None)
    # oidc-provider's development keys are the same in every instance, so only the issuer tells them apart.
    assert refused.value.message.code == "id_token_issuer", refused.value.message.code


def test_a_provider_on_loopback_needs_the_servers_permission(oauth_provider):
    """An admin-entered discovery URL may name a private or loopback server only if PORTAL_OIDC_ALLOWED_HOSTS does."""
    settings = settings_for(oauth_provider, access=openid.access_from({}))
    with pytest.raises(SsoRefusal) as refused:
        begin_sign_in(settings, DEFAULT_REDIRECT_URI)
    assert refused.value.message.code == "discovery_unreachable"
    assert "PORTAL_OIDC_ALLOWED_HOSTS" in str(refused.value.message)
    assert _check(settings) == [(False, "discovery_unreachable")]
    allowed = SsoSettings.from_mapping({"PORTAL_OIDC_ALLOWED_HOSTS": f"127.0.0.1:{oauth_provider.port}",
                                        "PORTAL_OIDC_DISCOVERY_URL": settings.discovery_url,
                                        "PORTAL_OIDC_CLIENT_ID": "portal"})
    assert begin_sign_in(allowed, DEFAULT_REDIRECT_URI)["url"].startswith(oauth_provider.issuer + "/auth?")
    assert "access" not in allowed.public()


def test_the_provider_saying_no_without_a_state_is_shown_as_its_refusal(app, oauth_provider):
    """A provider that refuses (the person pressed Cancel) without sending the state back: the person reads the
    provider's refusal, not "this sign-in link is not the one this browser started"."""
    settings = settings_for(oauth_provider)
    started = start_flow(settings, DEFAULT_REDIRECT_URI)
    with pytest.raises(SsoRefusal) as refused:
        finish_flow(settings, {"error": "access_denied", "error_description": "End-User aborted"}, [started.state])
    assert refused.value.message.code == "provider_error" and "aborted" in str(refused.value)


def test_a_sign_in_started_under_a_key_since_removed_is_refused_as_expired(app, oauth_provider):
    """rotate-secrets, the old key removed, a restart: a sign-in begun just before comes back to a refusal, not a
    500 (its verifier can no longer be read)."""
    from portal.secret_box import SecretBox

    settings = settings_for(oauth_provider)
    started = start_flow(settings, DEFAULT_REDIRECT_URI)
    flow = SsoFlow.get()
    SsoFlow.update(code_verifier=SecretBox(["a key no longer configured"]).encrypt("v", flow.secret_context)).execute()
    with pytest.raises(SsoRefusal) as refused:
        finish_flow(settings, sign_in_at_provider(started.url, address()), [started.state])
    assert refused.value.message.code == "expired"
