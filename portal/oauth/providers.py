"""The sign-in providers the portal knows: their endpoints, the scopes a mailbox needs, and the SASL mechanism.

Where each value comes from (checked against the providers' documentation; see README "Sign-in providers"):
- Microsoft identity platform v2: login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize and /token; the
  scopes of "Authenticate an IMAP, POP or SMTP connection using OAuth" (learn.microsoft.com, Exchange legacy
  protocols): https://outlook.office.com/SMTP.Send, IMAP.AccessAsUser.All, POP.AccessAsUser.All, plus
  offline_access for the refresh token; the ID token's keys at {tenant}/discovery/v2.0/keys.
- Google: accounts.google.com/o/oauth2/v2/auth and oauth2.googleapis.com/token, scope https://mail.google.com/
  ("SASL XOAUTH2 mechanism", developers.google.com/gmail/imap/xoauth2-protocol), access_type=offline with
  prompt=consent so a refresh token is issued; keys at www.googleapis.com/oauth2/v3/certs.
- Yandex: oauth.yandex.ru/authorize and /token, scopes mail:smtp and mail:imap_full ("OAuth authorization in
  Yandex Mail", yandex.ru/support), the address from login.yandex.ru/info (scope login:email).
- A company's own server: everything from its OpenID discovery document; the admin chooses the mechanism.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from portal.mail.settings import OAUTH_MECHANISMS

MICROSOFT_TENANTS = ("common", "organizations", "consumers")


@dataclass(frozen=True)
class SignInProvider:
    """A built-in provider: how to send a person to consent, where tokens come from, what to ask for."""

    key: str
    name: str  # as the button says it: "Sign in with <name>"
    authorize_url: str  # may contain {tenant}
    token_url: str
    scopes: tuple[str, ...]
    sasl: str = "XOAUTH2"
    jwks_url: str = ""  # the ID token's keys; empty: no ID token, the address comes from userinfo
    userinfo_url: str = ""
    userinfo_field: str = "email"
    authorize_params: dict = field(default_factory=dict)
    console: str = ""  # where the admin registers the app
    presets: tuple[str, ...] = ()  # the mail presets (portal/mail/presets.toml) this provider signs in for


PROVIDERS = {
    "microsoft": SignInProvider(
        key="microsoft", name="Microsoft",
        authorize_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        token_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        scopes=("openid", "email", "offline_access", "https://outlook.office.com/SMTP.Send",
                "https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/POP.AccessAsUser.All"),
        jwks_url="https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
        console="https://entra.microsoft.com/ → App registrations",
        presets=("microsoft365", "outlook")),
    "google": SignInProvider(
        key="google", name="Google",
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        scopes=("openid", "email", "https://mail.google.com/"),
        jwks_url="https://www.googleapis.com/oauth2/v3/certs",
        authorize_params={"access_type": "offline", "prompt": "consent"},
        console="https://console.cloud.google.com/apis/credentials",
        presets=("google",)),
    "yandex": SignInProvider(
        key="yandex", name="Yandex",
        authorize_url="https://oauth.yandex.ru/authorize",
        token_url="https://oauth.yandex.ru/token",
        scopes=("login:email", "mail:smtp", "mail:imap_full"),
        userinfo_url="https://login.yandex.ru/info?format=json", userinfo_field="default_email",
        console="https://oauth.yandex.ru/client/new",
        presets=("yandex",)),
    "company": SignInProvider(
        key="company", name="company sign-in",
        authorize_url="", token_url="",  # from the discovery document
        scopes=("openid", "email", "offline_access"),
        authorize_params={"prompt": "consent"},  # offline_access is dropped without it (OpenID Connect 11)
        presets=()),
}


@dataclass(frozen=True)
class Endpoints:
    """One registered app's endpoints, scopes and mechanism, ready for the client."""

    provider: SignInProvider
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    sasl: str
    jwks_url: str = ""
    userinfo_url: str = ""
    issuer: str = ""

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


def provider(key: str) -> SignInProvider:
    """The built-in provider with this key; KeyError for any other."""
    return PROVIDERS[key]


def provider_for_preset(preset_key: str | None) -> SignInProvider | None:
    """The built-in provider a mail preset signs in with, if any."""
    return next((p for p in PROVIDERS.values() if preset_key and preset_key in p.presets), None)


def clean_tenant(value: str) -> str:
    """A Microsoft tenant: common, organizations, consumers, a tenant ID (GUID) or a domain; ValueError otherwise."""
    import re

    value = (value or "").strip() or "common"
    if value.lower() in MICROSOFT_TENANTS or re.fullmatch(r"[0-9a-fA-F-]{36}|[A-Za-z0-9.-]+\.[A-Za-z]{2,}", value):
        return value
    raise ValueError("a tenant is common, organizations, consumers, a tenant ID or the tenant's domain")


def clean_sasl(value: str) -> str:
    value = (value or "XOAUTH2").strip().upper()
    if value not in OAUTH_MECHANISMS:
        raise ValueError(f"the mechanism is one of {', '.join(OAUTH_MECHANISMS)}")
    return value
