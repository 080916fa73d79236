"""The portal as an OAuth 2.0 client: the one module that uses Authlib (and joserfc for ID tokens).

Authorization code with PKCE (S256), state and nonce; the code exchange; refresh; the address that signed
in; and the admin's "Check" (a token request with a made-up code: a right secret gets ``invalid_grant``, a
wrong one ``invalid_client``). Tokens are returned to the caller and never logged.
"""
from __future__ import annotations

import datetime
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from portal import http as web
from portal import openid

from .providers import PROVIDERS, Endpoints, SignInProvider

# The issuers of the built-in providers' ID tokens (checked against their documentation, see README):
# Google's "Validating an ID token" (developers.google.com/identity/openid-connect) names both forms.
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
# Microsoft identity platform v2.0 ("ID token claims reference", learn.microsoft.com): the issuer names the
# tenant the person signed in to, the token's ``tid``; personal accounts have the consumers tenant's GUID.
MICROSOFT_ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"
MICROSOFT_CONSUMERS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
_TENANT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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
    # Where the provider may be reached: PORTAL_OIDC_ALLOWED_HOSTS, as the app factory configured it.
    access: web.WebAccess = field(default_factory=openid.provider_access, compare=False)

    def __repr__(self) -> str:
        return f"AppSettings(provider={self.provider!r}, client_id={self.client_id!r})"


def endpoints(app: AppSettings) -> Endpoints:
    """The app's endpoints: the built-in table, with the tenant filled in, or the discovery document's."""
    known: SignInProvider = PROVIDERS[app.provider]
    if app.provider != "company":
        tenant = app.tenant or "common"
        return Endpoints(known, known.authorize_url.format(tenant=tenant), known.token_url.format(tenant=tenant),
                         known.scopes, known.sasl, known.jwks_url.format(tenant=tenant), known.userinfo_url)
    document = discover(app.discovery_url, app.access)
    scopes = tuple(app.scopes.split()) if app.scopes.strip() else known.scopes
    return Endpoints(known, document["authorization_endpoint"], document["token_endpoint"], scopes,
                     app.sasl or "XOAUTH2", document.get("jwks_uri", ""), document.get("userinfo_endpoint", ""),
                     document.get("issuer", ""))


def discover(url: str, access: web.WebAccess | None = None) -> dict:
    """The OpenID discovery document at ``url`` (kept a few minutes); ProviderUnreachable when there is none there."""
    try:
        return dict(openid.discover(url, access).metadata)
    except openid.DiscoveryError as error:
        raise ProviderUnreachable(f"{error.code}: {error.values}") from None


def _session(app: AppSettings, redirect_uri: str | None = None, scope: str | None = None) -> OAuth2Session:
    session = OAuth2Session(app.client_id, app.client_secret, scope=scope, redirect_uri=redirect_uri,
                            token_endpoint_auth_method="client_secret_basic" if app.provider != "yandex"
                            else "client_secret_post", code_challenge_method="S256")
    return web.guard_session(session, app.access)


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
        claims = _id_token_claims(tokens.id_token, where, app, nonce)
    address = claims.get("email") or (claims.get("preferred_username") if app.provider == "microsoft" else "")
    if not address and where.userinfo_url:
        address = _userinfo(where, tokens.access_token, app.access)
    if not address or "@" not in address:
        raise ProviderError("no_email", "the provider did not say which address signed in")
    return address.strip().lower()


def _id_token_claims(id_token: str, where: Endpoints, app: AppSettings, nonce: str) -> dict:
    try:
        try:
            token = jwt.decode(id_token, KeySet.import_key_set(openid.signing_keys(where.jwks_url, app.access)))
        except InvalidKeyIdError:  # signed with a key the kept set lacks: the provider rotated its keys
            keys = openid.signing_keys(where.jwks_url, app.access, refresh=True)
            token = jwt.decode(id_token, KeySet.import_key_set(keys))
        expected = {"aud": {"essential": True, "value": app.client_id}, "nonce": {"essential": True, "value": nonce}}
        jwt.JWTClaimsRegistry(**expected).validate(token.claims)
    except openid.DiscoveryError as error:
        raise ProviderUnreachable(f"the provider's keys: {error.values.get('detail')}") from None
    except (JoseError, ValueError) as error:
        raise ProviderError("invalid_id_token", f"the ID token did not verify: {getattr(error, 'error', '')}") from None
    issuers = expected_issuers(app, where, token.claims)
    if token.claims.get("iss") not in issuers:
        raise ProviderError("id_token_issuer", f"the ID token was issued by {str(token.claims.get('iss'))[:100]!r}, "
                                               f"not by {' or '.join(issuers) or 'a known issuer'}")
    return token.claims


def expected_issuers(app: AppSettings, where: Endpoints, claims: dict) -> tuple[str, ...]:
    """The issuers an ID token for this app may name: Google's, Microsoft's for the tenant, or the discovery
    document's. With Microsoft's tenant common or organizations (or a tenant named by its domain), the tenant is
    the one the token says the person signed in to (its ``tid``); organizations never takes personal accounts."""
    if app.provider == "google":
        return GOOGLE_ISSUERS
    if app.provider != "microsoft":
        return (where.issuer,) if where.issuer else ()
    configured = (app.tenant or "common").lower()
    if configured == "consumers":
        return (MICROSOFT_ISSUER.format(tenant=MICROSOFT_CONSUMERS_TENANT),)
    if _TENANT_ID.fullmatch(configured):
        return (MICROSOFT_ISSUER.format(tenant=configured),)
    tenant = str(claims.get("tid") or "").lower()
    if not _TENANT_ID.fullmatch(tenant) or (configured == "organizations" and tenant == MICROSOFT_CONSUMERS_TENANT):
        return ()
    return (MICROSOFT_ISSUER.format(tenant=tenant),)


def _userinfo(where: Endpoints, access_token: str, access: web.WebAccess) -> str:
    scheme = "OAuth" if where.provider.key == "yandex" else "Bearer"
    try:
        answer = web.fetch("GET", where.userinfo_url, access,
                           headers={"Authorization": f"{scheme} {access_token}", "Accept": "application/json"})
    except web.NO_ANSWER as error:
        raise ProviderUnreachable(f"userinfo: {openid.why(error)}") from None
    except ValueError:  # the discovery document named something that is not a web address
        raise ProviderUnreachable(f"userinfo: not a web address: {str(where.userinfo_url)[:200]!r}") from None
    try:
        info = answer.json() if answer.status == 200 else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise ProviderUnreachable(f"userinfo: HTTP {answer.status}, not a JSON object")
    return str(info.get(where.provider.userinfo_field) or "")


def expires_at(tokens: Tokens, now: datetime.datetime) -> datetime.datetime:
    return now + datetime.timedelta(seconds=tokens.expires_in)
