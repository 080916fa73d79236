"""The portal as an OAuth 2.0 client: the one module that uses Authlib (and joserfc for ID tokens).

Authorization code with PKCE (S256), state and nonce; the code exchange; refresh; the address that signed
in; and the admin's "Check" (a token request with a made-up code: a right secret gets ``invalid_grant``, a
wrong one ``invalid_client``). Tokens are returned to the caller and never logged.
"""
from __future__ import annotations

import datetime
import secrets
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .providers import PROVIDERS, Endpoints, SignInProvider

TIMEOUT = 10.0  # seconds for one request to the provider


class ProviderError(Exception):
    """The provider refused: ``error`` is its OAuth error code (invalid_grant, access_denied, ...)."""

    def __init__(self, error: str, description: str = ""):
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = (description or "")[:300]


class ProviderUnreachable(Exception):
    """The provider could not be asked (network, timeout, not an OAuth answer): try again later."""


@dataclass(frozen=True)
class Tokens:
    """What a token request gave; ``refresh_token`` empty when the provider kept the old one."""

    access_token: str
    refresh_token: str
    expires_in: int
    id_token: str = ""
    scope: str = ""

    def __repr__(self) -> str:  # never a token in a log line or a traceback
        return f"Tokens(expires_in={self.expires_in}, scope={self.scope!r})"


@dataclass(frozen=True)
class AppSettings:
    """A registered app as the client needs it (the secret in plain text, only in memory)."""

    provider: str
    client_id: str
    client_secret: str
    tenant: str = ""
    discovery_url: str = ""
    sasl: str = ""
    scopes: str = ""

    def __repr__(self) -> str:
        return f"AppSettings(provider={self.provider!r}, client_id={self.client_id!r})"


def endpoints(app: AppSettings) -> Endpoints:
    """The app's endpoints: the built-in table, with the tenant filled in, or the discovery document's."""
    known: SignInProvider = PROVIDERS[app.provider]
    if app.provider != "company":
        tenant = app.tenant or "common"
        return Endpoints(known, known.authorize_url.format(tenant=tenant), known.token_url.format(tenant=tenant),
                         known.scopes, known.sasl, known.jwks_url.format(tenant=tenant), known.userinfo_url)
    document = discover(app.discovery_url)
    scopes = tuple(app.scopes.split()) if app.scopes.strip() else known.scopes
    return Endpoints(known, document["authorization_endpoint"], document["token_endpoint"], scopes,
                     app.sasl or "XOAUTH2", document.get("jwks_uri", ""), document.get("userinfo_endpoint", ""),
                     document.get("issuer", ""))


DISCOVERY_KEPT = 3600.0  # seconds a discovery document is reused: a refresh then costs one round trip
_discovered: dict[str, tuple[float, dict]] = {}


def discover(url: str) -> dict:
    """The OpenID discovery document at ``url`` (kept for an hour); ProviderUnreachable when there is none there."""
    kept = _discovered.get(url)
    if kept is not None and time.monotonic() - kept[0] < DISCOVERY_KEPT:
        return kept[1]
    try:
        answer = requests.get(url, timeout=TIMEOUT, headers={"Accept": "application/json"})
        answer.raise_for_status()
        document = answer.json()
    except (requests.RequestException, ValueError) as error:
        raise ProviderUnreachable(f"no OpenID discovery document at {url}: {type(error).__name__}") from None
    if not isinstance(document, dict) or not {"authorization_endpoint", "token_endpoint"} <= set(document):
        raise ProviderUnreachable(f"{url} is not an OpenID discovery document")
    _discovered[url] = (time.monotonic(), document)
    return document


def _session(app: AppSettings, redirect_uri: str | None = None, scope: str | None = None) -> OAuth2Session:
    return OAuth2Session(app.client_id, app.client_secret, scope=scope, redirect_uri=redirect_uri,
                         token_endpoint_auth_method="client_secret_basic" if app.provider != "yandex"
                         else "client_secret_post", code_challenge_method="S256", default_timeout=TIMEOUT)


@dataclass(frozen=True)
class Authorization:
    """Where to send the browser, and what the callback must find again (kept server-side, never in a page)."""

    url: str
    state: str
    nonce: str
    code_verifier: str


def authorization(app: AppSettings, redirect_uri: str, *, login_hint: str = "") -> Authorization:
    """A fresh authorization request: code flow with PKCE S256, a random state and nonce."""
    where = endpoints(app)
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    extra: dict[str, Any] = dict(where.provider.authorize_params)
    if "openid" in where.scopes:
        extra["nonce"] = nonce
    if login_hint:
        extra["login_hint"] = login_hint
    with _session(app, redirect_uri, where.scope) as session:
        url, _ = session.create_authorization_url(where.authorize_url, state=state, code_verifier=verifier, **extra)
    return Authorization(url, state, nonce, verifier)


def exchange_code(app: AppSettings, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
    """The tokens for an authorization code."""
    where = endpoints(app)
    with _session(app, redirect_uri) as session:
        return _tokens(lambda: session.fetch_token(where.token_url, grant_type="authorization_code", code=code,
                                                   code_verifier=code_verifier))


def refresh(app: AppSettings, refresh_token: str) -> Tokens:
    """New tokens for a refresh token: one request to the token endpoint."""
    where = endpoints(app)
    with _session(app) as session:
        return _tokens(lambda: session.refresh_token(where.token_url, refresh_token=refresh_token))


def check_app(app: AppSettings, redirect_uri: str) -> ProviderError | None:
    """The admin's Check: a token request with a code that cannot exist. Returns the provider's refusal (a right
    client gets invalid_grant, a wrong id or secret invalid_client); raises ProviderUnreachable."""
    try:
        exchange_code(app, "portal-check-" + secrets.token_urlsafe(8), redirect_uri, secrets.token_urlsafe(48))
    except ProviderError as refusal:
        return refusal
    return None


def _tokens(request) -> Tokens:
    try:
        token = request()
    except OAuthError as error:
        raise ProviderError(error.error or "invalid_request", error.description or "") from None
    except (requests.RequestException, ValueError) as error:
        raise ProviderUnreachable(type(error).__name__) from None
    if not token.get("access_token"):
        raise ProviderError("invalid_response", "the provider answered without an access token")
    return Tokens(access_token=token["access_token"], refresh_token=token.get("refresh_token") or "",
                  expires_in=int(token.get("expires_in") or 3600), id_token=token.get("id_token") or "",
                  scope=token.get("scope") or "")


def signed_in_address(app: AppSettings, tokens: Tokens, nonce: str) -> str:
    """The address the provider says signed in: from the verified ID token (its nonce checked), else userinfo."""
    where = endpoints(app)
    claims: dict = {}
    if tokens.id_token and where.jwks_url:
        claims = _id_token_claims(tokens.id_token, where, app.client_id, nonce)
    address = claims.get("email") or (claims.get("preferred_username") if app.provider == "microsoft" else "")
    if not address and where.userinfo_url:
        address = _userinfo(where, tokens.access_token)
    if not address or "@" not in address:
        raise ProviderError("no_email", "the provider did not say which address signed in")
    return address.strip().lower()


def _id_token_claims(id_token: str, where: Endpoints, client_id: str, nonce: str) -> dict:
    try:
        keys = requests.get(where.jwks_url, timeout=TIMEOUT).json()
        token = jwt.decode(id_token, KeySet.import_key_set(keys))
        expected = {"aud": {"essential": True, "value": client_id}, "nonce": {"essential": True, "value": nonce}}
        if where.issuer:
            expected["iss"] = {"essential": True, "value": where.issuer}
        jwt.JWTClaimsRegistry(**expected).validate(token.claims)
    except (requests.RequestException, ValueError) as error:
        raise ProviderUnreachable(f"the provider's keys: {type(error).__name__}") from None
    except JoseError as error:
        raise ProviderError("invalid_id_token", f"the ID token did not verify: {error.error}") from None
    return token.claims


def _userinfo(where: Endpoints, access_token: str) -> str:
    scheme = "OAuth" if where.provider.key == "yandex" else "Bearer"
    try:
        answer = requests.get(where.userinfo_url, timeout=TIMEOUT,
                              headers={"Authorization": f"{scheme} {access_token}"})
        answer.raise_for_status()
        return str(answer.json().get(where.provider.userinfo_field) or "")
    except (requests.RequestException, ValueError) as error:
        raise ProviderUnreachable(f"userinfo: {type(error).__name__}") from None


def expires_at(tokens: Tokens, now: datetime.datetime) -> datetime.datetime:
    return now + datetime.timedelta(seconds=tokens.expires_in)
