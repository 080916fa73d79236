"""The sign-in pages with a real oidc-provider, configured by PORTAL_OIDC_* alone: the whole flow through the
portal's own URLs, an ordinary portal session, the callback's refusals, single sign-out, the redirect URI
behind a path prefix, and the admin's Check."""
import base64
import datetime
import hashlib
import json
import re
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests

from portal.models import Employee, utcnow
from portal.models.people import EmployeeSession
from portal.models.sso import SsoFlow, SsoSignIn
from portal.secret_box import active_box
from portal.sessions import end_sessions
from portal.sso import store_settings
from tests.servers.oauth import CLIENT_SECRET
from tests.test_sso import address, sign_in_at_provider

CALLBACK = "http://localhost/sso/callback"  # the test client's host
SIGN_IN = "http://localhost/sign-in"


@pytest.fixture
def provider(make_oauth_provider, monkeypatch):
    """A provider whose client "portal" sends the browser back to this test client's callback."""
    monkeypatch.setenv("POST_LOGOUT_REDIRECT_URIS", SIGN_IN)
    return make_oauth_provider(redirect_uris=(CALLBACK, "https://portal.example/mail/sso/callback"))


@pytest.fixture
def config(config, provider):
    config.update(PORTAL_OIDC_DISCOVERY_URL=provider.issuer + "/.well-known/openid-configuration",
                  PORTAL_OIDC_CLIENT_ID="portal", PORTAL_OIDC_CLIENT_SECRET=CLIENT_SECRET,
                  PORTAL_OIDC_COMPANY_NAME="Example Corp")
    return config


def through_provider(client, login, start="/sso/start"):
    """Press "Sign in with", sign in at the provider's real pages; the callback path the provider sends back."""
    started = client.get(start)
    assert started.status_code == 302
    answer = sign_in_at_provider(started.headers["Location"], login, redirect_uri=CALLBACK)
    return "/sso/callback?" + "&".join(f"{name}={value}" for name, value in answer.items())


def test_sso_opens_an_ordinary_portal_session(client, make_employee):
    """Signed in through the provider: the overview opens, and the session is one the server keeps."""
    login = address()
    anna = make_employee(email=login)
    page = client.get("/sign-in").get_data(as_text=True)
    assert "Sign in with Example Corp" in page
    callback = through_provider(client, login, start="/sso/start?next=/profile")
    signed_in = client.get(callback)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/profile"
    assert client.get("/").status_code == 200
    assert EmployeeSession.select().where(EmployeeSession.employee == anna.id).count() == 1
    assert SsoSignIn.select().count() == 1  # the ID token, for signing out at the provider too
    end_sessions(anna)  # what "Sign out everywhere", an admin's sign-out and deactivation do
    assert client.get("/").status_code == 302 and SsoSignIn.select().count() == 0


def test_a_replayed_callback_is_refused(client, make_employee):
    """The same callback twice: the second finds no sign-in started (state), and the code is not used again."""
    login = address()
    make_employee(email=login)
    callback = through_provider(client, login)
    assert client.get(callback).status_code == 302
    client.post("/sign-out")
    replayed = client.get(callback)
    assert replayed.status_code == 403 and "its state does not match" in replayed.get_data(as_text=True)


def test_a_stolen_code_in_another_browser_is_refused(client, app, make_employee):
    """A code replayed into a sign-in another browser started: its PKCE verifier does not fit, the provider refuses."""
    login = address()
    make_employee(email=login)
    victim = through_provider(client, login)
    code = parse_qs(urlparse(victim).query)["code"][0]
    assert client.get(victim).status_code == 302
    attacker = app.test_client()
    state = parse_qs(urlparse(attacker.get("/sso/start").headers["Location"]).query)["state"][0]
    refused = attacker.get(f"/sso/callback?code={code}&state={state}")
    assert refused.status_code == 403 and "refused the authorization code" in refused.get_data(as_text=True)
    assert attacker.get("/").status_code == 302


def test_a_tampered_state_is_refused(client, make_employee):
    login = address()
    make_employee(email=login)
    callback = through_provider(client, login)
    refused = client.get(callback.replace("state=", "state=x"))
    assert refused.status_code == 403 and "its state does not match" in refused.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_an_unknown_person_gets_a_clear_page_in_their_language(client):
    login = address()
    client.post("/language", data={"language": "ru"})
    refused = client.get(through_provider(client, login))
    text = refused.get_data(as_text=True)
    assert refused.status_code == 403 and f"В портале нет сотрудника с адресом {login}" in text
    assert Employee.select().count() == 0


def test_sign_out_offers_the_provider_logout_with_the_id_token_hint(client, make_employee):
    login = address()
    anna = make_employee(email=login)
    client.get(through_provider(client, login))
    answer = client.post("/sign-out")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Sign out of Example Corp too" in page
    assert EmployeeSession.select().where(EmployeeSession.employee == anna.id).count() == 0
    assert client.get("/").status_code == 302  # the portal's own session has ended already
    link = page.split('id="sso-sign-out"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    query = parse_qs(urlparse(link).query)
    assert link.startswith(client.application.config["PORTAL_OIDC_DISCOVERY_URL"].split("/.well-known")[0])
    assert query["post_logout_redirect_uri"] == [SIGN_IN] and query["id_token_hint"][0].count(".") == 2


def test_a_password_sign_out_does_not_offer_the_provider(client, make_employee):
    from tests.conftest import PASSWORD

    anna = make_employee()
    client.post("/sign-in", data={"email": anna.email, "password": PASSWORD})
    answer = client.post("/sign-out")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/sign-in")


def test_the_redirect_uri_is_right_under_a_path_prefix_behind_the_proxy(config, provider):
    from portal import create_app

    config["PORTAL_PROXY_COUNT"] = 1
    app = create_app(config)
    started = app.test_client().get("/sso/start", headers={
        "X-Forwarded-Prefix": "/mail", "X-Forwarded-Host": "portal.example", "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "192.0.2.1"})
    query = parse_qs(urlparse(started.headers["Location"]).query)
    assert query["redirect_uri"] == ["https://portal.example/mail/sso/callback"]


def test_the_check_button_answers_with_its_fragment(client, make_employee, rendered):
    from tests.conftest import PASSWORD

    admin = make_employee(role="admin")
    client.post("/sign-in", data={"email": admin.email, "password": PASSWORD})
    answer = client.post("/admin/sign-in/check", headers={"HX-Request": "true"})
    assert rendered[-1] == "sso/partial/check.html"
    text = answer.get_data(as_text=True)
    assert "The provider accepted the client ID and client secret." in text and "badge-fail" not in text
    assert CLIENT_SECRET not in text


def session_of(client):
    """The browser's session cookie as the portal reads it (signed, not encrypted: anyone holding it reads this)."""
    cookie = client.get_cookie("portal_session")
    app = client.application
    return app.session_interface.get_signing_serializer(app).loads(cookie.value) if cookie else {}


def cookie_sizes(answer):
    """How long each cookie the answer sets is (name=value): browsers drop one over 4096 bytes."""
    return [len(cookie.split(";", 1)[0]) for cookie in answer.headers.getlist("Set-Cookie")]


JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


def test_the_session_cookie_carries_no_nonce_verifier_or_id_token(client, make_employee):
    """Only the state (which is in the provider's URL anyway) goes to the browser; the verifier stays on the server,
    encrypted, and after the callback the cookie holds no ID token."""
    login = address()
    make_employee(email=login)
    started = client.get("/sso/start")
    query = parse_qs(urlparse(started.headers["Location"]).query)
    kept = json.dumps(session_of(client))
    assert query["state"][0] in kept and query["nonce"][0] not in kept
    assert "verifier" not in kept and "redirect_uri" not in kept
    flow = SsoFlow.get(SsoFlow.state == query["state"][0])
    verifier = flow.secret("code_verifier")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert query["code_challenge"] == [challenge] and verifier not in flow.code_verifier
    answer = sign_in_at_provider(started.headers["Location"], login, redirect_uri=CALLBACK)
    signed_in = client.get("/sso/callback?" + urlencode(answer))
    assert signed_in.status_code == 302 and client.get("/").status_code == 200
    kept = json.dumps(session_of(client))
    assert not JWT.search(kept) and query["nonce"][0] not in kept and query["state"][0] not in kept


@pytest.fixture
def many_groups(make_oauth_provider, monkeypatch):
    """A provider that puts the groups into the ID token, like Azure AD and Keycloak; "manygroups…" is in 200."""
    monkeypatch.setenv("POST_LOGOUT_REDIRECT_URIS", SIGN_IN)
    provider = make_oauth_provider(redirect_uris=(CALLBACK,), claims_in_id_token=True)
    store_settings(active_box(), {
        "company_name": "Example Corp", "discovery_url": provider.issuer + "/.well-known/openid-configuration",
        "client_id": "portal", "client_secret": CLIENT_SECRET, "scopes": "openid email profile groups",
        "passwords_allowed": True, "provision": False, "groups_claim": "groups"}, "flow-test")
    return provider


def test_a_person_in_two_hundred_groups_signs_in_and_is_offered_the_provider_logout(
        client, make_employee, many_groups):
    """The ID token is several kilobytes: no cookie grows past what a browser keeps, and sign-out still offers to
    sign out at the provider with that token as the hint."""
    login = "manygroups" + address()
    make_employee(email=login)
    callback = through_provider(client, login)
    signed_in = client.get(callback)
    assert signed_in.status_code == 302 and max(cookie_sizes(signed_in)) <= 4096
    assert client.get("/").status_code == 200
    answer = client.post("/sign-out")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Sign out of Example Corp too" in page
    link = page.split('id="sso-sign-out"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    hint = parse_qs(urlparse(link).query)["id_token_hint"][0]
    claims = json.loads(base64.urlsafe_b64decode(hint.split(".")[1] + "=="))
    assert len(hint) > 4096 and len(claims["groups"]) == 201
    assert SsoSignIn.select().count() == 0  # gone with the session


@pytest.mark.parametrize("used_first", [0, 1])
def test_two_sign_ins_started_in_one_browser_both_work(client, make_employee, used_first):
    """Two tabs pressed "Sign in with": the second start does not spoil the first one's callback."""
    login = address()
    make_employee(email=login)
    callbacks = [through_provider(client, login), through_provider(client, login)]
    signed_in = client.get(callbacks[used_first])
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get(callbacks[1 - used_first]).headers["Location"] == "/"  # signed in already: the overview


def refusal(answer):
    return answer.status_code, re.search(r'data-code="(\w+)"', answer.get_data(as_text=True)).group(1)


def test_a_callback_used_once_is_refused_as_used(client):
    """The first answer is taken (and refused: nobody is known by that address); the same link again is 'used'."""
    callback = through_provider(client, address())
    assert refusal(client.get(callback)) == (403, "unknown")
    again = client.get(callback)
    assert refusal(again) == (403, "replayed") and "already used" in again.get_data(as_text=True)
    client.post("/language", data={"language": "ru"})
    assert "уже использована" in client.get(callback).get_data(as_text=True)


def test_a_state_from_another_browser_is_refused_and_leaves_the_sign_in_to_its_browser(
        client, app, make_employee):
    login = address()
    make_employee(email=login)
    callback = through_provider(client, login)
    other = app.test_client()
    other.get("/sso/start")  # the other browser has a state of its own, just not this one
    refused = other.get(callback)
    assert refusal(refused) == (403, "state") and other.get("/").status_code == 302
    assert client.get(callback).status_code == 302 and client.get("/").status_code == 200


def test_a_sign_in_older_than_ten_minutes_is_refused_as_expired(client, make_employee):
    login = address()
    make_employee(email=login)
    callback = through_provider(client, login)
    SsoFlow.update(created_at=utcnow() - datetime.timedelta(minutes=11)).execute()
    client.post("/language", data={"language": "ru"})
    expired = client.get(callback)
    assert refusal(expired) == (403, "expired") and "больше 10 минут" in expired.get_data(as_text=True)
    # The words name the limit itself: a changed FLOW_MAX_AGE must change them (here and in oauth/refused.html).
    from portal.provider_trips import FLOW_MAX_AGE
    assert FLOW_MAX_AGE == datetime.timedelta(minutes=10)
    assert client.get("/").status_code == 302


def test_an_id_token_no_key_opens_any_more_leaves_the_hint_out_of_the_offer(client, make_employee):
    """After the keys changed without rotate-secrets (the old one removed), sign-out still offers the provider's
    logout, naming the client instead of the token."""
    from portal.rotation import rotate_secrets
    from portal.secret_box import SecretBox

    login = address()
    make_employee(email=login)
    client.get(through_provider(client, login))
    kept = SsoSignIn.get()
    SsoSignIn.update(id_token=SecretBox(["a key no longer configured"]).encrypt("old", kept.secret_context)).execute()
    assert rotate_secrets(active_box()).id_tokens_emptied == 1  # rotate-secrets is not stopped by a hint
    assert SsoSignIn.get().id_token == ""
    page = client.post("/sign-out").get_data(as_text=True)
    link = page.split('id="sso-sign-out"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    query = parse_qs(urlparse(link).query)
    assert "id_token_hint" not in query and query["client_id"] == ["portal"]
    asked = requests.get(link, timeout=10)  # the provider takes it and asks to confirm
    assert asked.status_code == 200 and 'name="logout"' in asked.text


def test_rotate_secrets_moves_the_kept_id_token_to_the_new_key(client, app, make_employee):
    """After rotate-secrets the old key may go: the provider-logout offer still carries the ID token."""
    from portal.rotation import rotate_secrets
    from portal.secret_box import SecretBox, configured_keys, install

    login = address()
    make_employee(email=login)
    client.get(through_provider(client, login))
    id_token = SsoSignIn.get().secret("id_token")
    rotate_secrets(SecretBox(["the new key", *configured_keys(app.config.get("PORTAL_SECRET_KEYS"),
                                                              app.instance_path)]))
    install(SecretBox(["the new key"]))  # the old key removed
    page = client.post("/sign-out").get_data(as_text=True)
    link = page.split('id="sso-sign-out"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    assert parse_qs(urlparse(link).query)["id_token_hint"] == [id_token]


def test_a_sign_in_under_way_survives_rotate_secrets_and_the_old_key_going(client, app, make_employee, runner):
    from portal.secret_box import SecretBox, configured_keys, install

    login = address()
    make_employee(email=login)
    callback = through_provider(client, login)
    old_keys = configured_keys(app.config.get("PORTAL_SECRET_KEYS"), app.instance_path)
    app.extensions["portal_secret_box"] = install(SecretBox(["the new key", *old_keys]))
    rotated = runner.invoke(args=["rotate-secrets"])
    assert rotated.exit_code == 0 and "1 sign-in under way at a provider (PKCE verifier)" in rotated.output
    app.extensions["portal_secret_box"] = install(SecretBox(["the new key"]))  # the old key removed
    assert client.get(callback).status_code == 302 and client.get("/").status_code == 200
