"""The built-in providers' authorization requests: the documented endpoints and scopes, PKCE S256, state, nonce."""
from urllib.parse import parse_qs, urlparse

import pytest

from portal.oauth.client import AppSettings, authorization
from portal.oauth.providers import clean_tenant, provider_for_preset

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
