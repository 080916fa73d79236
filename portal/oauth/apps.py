"""The apps the admin registers at the providers (Sign-in providers page and ``portal oauth-app``), and the
rotation of every OAuth secret with the newest key."""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l

from portal.db import locked, writing
from portal.fields import CONTROL_CHARACTERS, single_line
from portal.models import utcnow
from portal.models.oauth import MailboxGrant, OAuthApp
from portal.secret_box import SecretError

from .providers import PROVIDERS, clean_sasl, clean_tenant

SECRET_MAX = 1024


class AppInvalid(ValueError):
    """Values that cannot register an app; ``errors`` maps each field to its message."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


def registered_apps() -> dict[str, OAuthApp]:
    """The registered apps by provider key."""
    return {app.provider: app for app in OAuthApp.select()}


def save_app(provider: str, *, client_id: str, client_secret: str | None = None, tenant: str = "",
             discovery_url: str = "", sasl: str = "", scopes: str = "", actor=None, box=None) -> OAuthApp:
    """Register or change the app of one provider; a blank secret keeps the stored one, unless the app now
    points at another server (discovery URL, Microsoft tenant) than the one that secret was given for. Raises
    AppInvalid."""
    errors: dict = {}
    if provider not in PROVIDERS:
        raise AppInvalid({"provider": _l("Choose a value from the list.")})
    existing = OAuthApp.get_or_none(OAuthApp.provider == provider)
    client_id = single_line(client_id, "client_id", errors, required=True)
    secret = client_secret or ""
    if CONTROL_CHARACTERS.search(secret) or len(secret) > SECRET_MAX:
        errors["client_secret"] = _l("A client secret is one line of at most %(max)d characters.", max=SECRET_MAX)
    elif not secret and (existing is None or not existing.client_secret):
        errors["client_secret"] = _l("This field is required.")
    values = dict(tenant="", discovery_url="", sasl="", scopes="")
    if provider == "microsoft":
        try:
            values["tenant"] = clean_tenant(single_line(tenant, "tenant", errors))
        except ValueError:
            errors["tenant"] = _l("Enter common, organizations, consumers, a tenant ID or the tenant's domain.")
    if provider == "company":
        values["discovery_url"] = _discovery_url(single_line(discovery_url, "discovery_url", errors, required=True),
                                                 errors)
        try:
            values["sasl"] = clean_sasl(sasl)
        except ValueError:
            errors["sasl"] = _l("Choose a value from the list.")
        values["scopes"] = " ".join(single_line(scopes, "scopes", errors, limit=1000).split()) or \
            " ".join(PROVIDERS["company"].scopes)
    given_for = _server_changed(existing, values)
    if not secret and given_for and "client_secret" not in errors:
        # The stored secret was given for the old server only: it must never travel to another one.
        errors["client_secret"] = _l("Enter the client secret again: it was given for %(server)s.", server=given_for)
    if errors:
        raise AppInvalid(errors)
    app = existing or OAuthApp(provider=provider)
    app.client_id = client_id
    for name, value in values.items():
        setattr(app, name, value)
    if secret:
        app.set_secret("client_secret", secret, box)
    app.updated_by = actor.id if actor is not None else None
    app.updated_at = utcnow()
    app.save(force_insert=existing is None)
    return app


def _server_changed(existing: OAuthApp | None, values: dict) -> str:
    """The server the stored secret was given for, when these values send it to another one; else ""."""
    if existing is None or not existing.client_secret:
        return ""
    if existing.provider == "microsoft" and values["tenant"].lower() != (existing.tenant or "common").lower():
        return PROVIDERS["microsoft"].token_url.split("/oauth2/")[0].format(tenant=existing.tenant or "common")
    if existing.provider == "company" and values["discovery_url"] != existing.discovery_url:
        return existing.discovery_url
    return ""


def _discovery_url(value: str, errors: dict) -> str:
    if not value or "discovery_url" in errors:
        return value
    parts = urlsplit(value)
    loopback = False
    try:
        loopback = ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        loopback = parts.hostname == "localhost"
    # Plain http only to the same machine: the client secret travels to this server.
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)) \
            or not re.fullmatch(r"[^\s]+", value):
        errors["discovery_url"] = _l("Enter the https:// address of the server's OpenID discovery document "
                                     "(…/.well-known/openid-configuration).")
    return value


def rotate_secrets(box) -> tuple[int, int]:
    """Re-encrypt every client secret and token with the newest key (inside the caller's transaction); (apps,
    grants). A secret or token no key opens raises SecretError naming its row, and the caller rolls back."""
    apps = grants = 0
    with writing():
        for app in locked(OAuthApp.select()):
            app.client_secret = _rotated(box, app.client_secret, app.secret_context, f"sign-in app {app.provider}")
            OAuthApp.update(client_secret=app.client_secret).where(OAuthApp.provider == app.provider).execute()
            apps += 1
        for grant in locked(MailboxGrant.select()):
            what = f"mailbox grant {grant.id} ({grant.identity})"
            MailboxGrant.update(access_token=_rotated(box, grant.access_token, grant.secret_context, what),
                                refresh_token=_rotated(box, grant.refresh_token, grant.secret_context, what)).where(
                MailboxGrant.id == grant.id).execute()
            grants += 1
    return apps, grants


def _rotated(box, ciphertext, context, what):
    try:
        return box.rotate(ciphertext, context)
    except SecretError as error:
        raise SecretError(f"{what}: {error}") from None
