"""The built-in providers' authorization requests (the documented endpoints and scopes, PKCE S256, state, nonce),
and the ID token's issuer checked as Google and Microsoft document it, with real signed tokens."""
import dataclasses
import time
from urllib.parse import parse_qs, urlparse

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from portal import openid
from portal.http import WebAccess
from portal.oauth.client import (MICROSOFT_CONSUMERS_TENANT, AppSettings, ProviderError, ProviderUnreachable, Tokens,
                                 authorization, signed_in_address)
from portal.oauth.providers import PROVIDERS, clean_tenant, provider_for_preset

REDIRECT = "https://portal.example.com/mail/oauth/callback"


def _query(url):
    return {key: values[0] for key, values in parse_qs(urlparse(url).query).items()}


@pytest.mark.parametrize("app, endpoint, scopes, extra", [
    (AppSettings("microsoft", "ms-id", "s", tenant="organizations"),
     "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize",
     {"offline_access", "https://outlook.office.com/SMTP.Send", "https://outlook.office.com/IMAP.AccessAsUser.All",
      "https://outlook.office.com/POP.AccessAsUser.All"}, {}),
    (AppSettings("google", "g-id", "s"), "https://accounts.google.com/o/oauth2/v2/auth",
     {"https://mail.google.com/"}, {"access_type": "offline", "prompt": "consent"}),
    (AppSettings("yandex", "y-id", "s"), "https://oauth.yandex.ru/authorize", {"mail:smtp", "mail:imap_full"}, {}),
])
def test_the_consent_url_asks_for_the_documented_scopes_with_pkce(app, endpoint, scopes, extra):
    first = authorization(app, REDIRECT, login_hint="anna@example.com")
    second = authorization(app, REDIRECT)
    assert first.url.split("?")[0] == endpoint
    query = _query(first.url)
    assert query["client_id"] == app.client_id and query["redirect_uri"] == REDIRECT
    assert query["response_type"] == "code" and query["state"] == first.state
    assert query["code_challenge_method"] == "S256" and first.code_verifier not in first.url
    assert scopes <= set(query["scope"].split())
    assert extra.items() <= query.items()
    assert query["login_hint"] == "anna@example.com"
    if "openid" in query["scope"].split():
        assert query["nonce"] == first.nonce
    assert first.state != second.state and first.code_verifier != second.code_verifier  # fresh every time


def test_presets_and_tenants():
    assert provider_for_preset("microsoft365").key == "microsoft" and provider_for_preset("google").key == "google"
    assert provider_for_preset("yandex").key == "yandex" and provider_for_preset("other") is None
    assert clean_tenant("") == "common"
    assert clean_tenant("72f988bf-86f1-41af-91ab-2d7cd011db47") == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    with pytest.raises(ValueError):
        clean_tenant("not a tenant!")


# ---------------------------------------------------------------- the ID token's issuer (Google, Microsoft)

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
NONCE = "the-nonce"
LOOPBACK = WebAccess.from_entries("127.0.0.1:*")


class Keys:
    """Signing keys of a provider, the public halves served as its JWKS by a loopback web server."""

    def __init__(self, web_server):
        self.server = web_server
        self.url = web_server.url("/keys")
        self.serve("k1")

    def serve(self, kid):
        self.key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})
        self.server.json("/keys", {"keys": [self.key.as_dict(private=False)]})

    def id_token(self, client_id, **claims):
        now = int(time.time())
        values = {"aud": client_id, "nonce": NONCE, "iat": now, "exp": now + 300, "sub": "s1",
                  "email": "anna@example.com", **claims}
        return Tokens("access", "refresh", 3600, id_token=jwt.encode(
            {"alg": "RS256", "kid": self.key.kid}, values, self.key))


@pytest.fixture
def provider_keys(web_server, monkeypatch):
    """Google's and Microsoft's key URLs pointed at the loopback server (the portal cannot reach theirs here)."""
    openid.forget()
    keys = Keys(web_server)
    for name in ("google", "microsoft"):
        monkeypatch.setitem(PROVIDERS, name, dataclasses.replace(PROVIDERS[name], jwks_url=keys.url))
    yield keys
    openid.forget()


@pytest.mark.parametrize("issuer", ["https://accounts.google.com", "accounts.google.com"])
def test_a_google_id_token_names_googles_issuer(provider_keys, issuer):
    app = AppSettings("google", "g-id", "s", access=LOOPBACK)
    assert signed_in_address(app, provider_keys.id_token("g-id", iss=issuer), NONCE) == "anna@example.com"


@pytest.mark.parametrize("app, claims", [
    (AppSettings("google", "g-id", "s", access=LOOPBACK), {"iss": "https://accounts.google.com.evil.example"}),
    (AppSettings("google", "g-id", "s", access=LOOPBACK), {"iss": f"https://login.microsoftonline.com/{TENANT}/v2.0"}),
    (AppSettings("microsoft", "m-id", "s", tenant="common", access=LOOPBACK),
     {"iss": f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0", "tid": TENANT}),
    (AppSettings("microsoft", "m-id", "s", tenant="common", access=LOOPBACK),
     {"iss": f"https://login.microsoftonline.com/{TENANT}/v2.0"}),  # no tid: no tenant to expect
    (AppSettings("microsoft", "m-id", "s", tenant=TENANT, access=LOOPBACK),
     {"iss": f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0", "tid": OTHER_TENANT}),
    (AppSettings("microsoft", "m-id", "s", tenant="organizations", access=LOOPBACK),
     {"iss": f"https://login.microsoftonline.com/{MICROSOFT_CONSUMERS_TENANT}/v2.0",
      "tid": MICROSOFT_CONSUMERS_TENANT}),
    (AppSettings("microsoft", "m-id", "s", tenant="common", access=LOOPBACK),
     {"iss": f"https://sts.windows.net/{TENANT}/", "tid": TENANT}),  # a v1.0 token
], ids=["google look-alike", "microsoft for google", "common, another tenant than tid", "common without tid",
        "configured tenant, another one", "organizations, a personal account", "microsoft v1.0 issuer"])
def test_an_id_token_from_another_issuer_is_refused(provider_keys, app, claims):
    with pytest.raises(ProviderError) as refused:
        signed_in_address(app, provider_keys.id_token(app.client_id, **claims), NONCE)
    assert refused.value.error == "id_token_issuer"


@pytest.mark.parametrize("tenant, tid", [("common", TENANT), ("organizations", TENANT), (TENANT, TENANT),
                                         ("consumers", MICROSOFT_CONSUMERS_TENANT),
                                         ("common", MICROSOFT_CONSUMERS_TENANT)])
def test_a_microsoft_id_token_names_the_tenant_signed_in_to(provider_keys, tenant, tid):
    app = AppSettings("microsoft", "m-id", "s", tenant=tenant, access=LOOPBACK)
    token = provider_keys.id_token("m-id", iss=f"https://login.microsoftonline.com/{tid}/v2.0", tid=tid,
                                   email=None, preferred_username="Anna@Contoso.com")
    assert signed_in_address(app, token, NONCE) == "anna@contoso.com"


def test_keys_are_kept_and_fetched_again_when_the_provider_rotates_them(provider_keys):
    app = AppSettings("google", "g-id", "s", access=LOOPBACK)
    for _ in range(2):
        signed_in_address(app, provider_keys.id_token("g-id", iss="https://accounts.google.com"), NONCE)
    assert provider_keys.server.hits == ["/keys"]
    provider_keys.serve("k2")
    assert signed_in_address(app, provider_keys.id_token("g-id", iss="https://accounts.google.com"), NONCE)
    assert provider_keys.server.hits == ["/keys", "/keys"]


def test_a_company_server_on_loopback_needs_the_servers_permission(web_server):
    openid.forget()
    url = web_server.url("/.well-known/openid-configuration")
    app = AppSettings("company", "c-id", "s", discovery_url=url, access=openid.access_from({}))
    with pytest.raises(ProviderUnreachable):
        authorization(app, REDIRECT)
    assert web_server.hits == []


def test_a_userinfo_endpoint_that_is_not_a_web_address_is_the_providers_fault_not_a_crash(web_server):
    # A company server's document names "/userinfo" (relative): the callback must explain, not answer 500.
    openid.forget()
    origin = web_server.origin
    url = web_server.json("/.well-known/openid-configuration", {
        "issuer": origin, "authorization_endpoint": origin + "/auth", "token_endpoint": origin + "/token",
        "jwks_uri": origin + "/jwks", "userinfo_endpoint": "/userinfo"})
    app = AppSettings("company", "c-id", "s", discovery_url=url, access=LOOPBACK)
    with pytest.raises(ProviderUnreachable) as unreachable:
        signed_in_address(app, Tokens(access_token="at", refresh_token="rt", expires_in=3600, id_token=""), NONCE)
    assert "not a web address" in str(unreachable.value)
