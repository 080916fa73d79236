"""``portal rotate-secrets``: every secret the portal keeps moves to the newest key of PORTAL_SECRET_KEYS in one
transaction, after which the older keys may be removed. No Flask."""
from __future__ import annotations

from dataclasses import dataclass, field

from portal import mailboxes, provider_trips, sso, webhooks
from portal.db import writing
from portal.directory import DirectorySettings
from portal.models import utcnow
from portal.models.oauth import OAuthFlow
from portal.models.sso import SsoFlow
from portal.oauth import apps
from portal.secret_box import SecretBox


def _rows(one, several, *, trouble=False):
    """How a count reads, as one and as several; a ``trouble`` count is said only when there is some."""
    return field(metadata={"one": one, "several": several, "trouble": trouble})


@dataclass(frozen=True)
class Rotated:
    """How many of each kind of secret were re-encrypted, and the few that could not be and need not stop it."""

    mailboxes: int = _rows("mailbox (passwords)", "mailboxes (passwords)")
    webhooks: int = _rows("webhook (signing secret)", "webhooks (signing secrets)")
    page_settings: int = _rows("admin page setting (single sign-on client secret or directory bind password)",
                               "admin page settings (single sign-on client secret, directory bind password)")
    sign_in_apps: int = _rows("sign-in app (client secret)", "sign-in apps (client secrets)")
    grants: int = _rows("mailbox's OAuth sign-in (tokens)", "mailboxes' OAuth sign-ins (tokens)")
    sso_sign_ins: int = _rows("single sign-on session (ID token)", "single sign-on sessions (ID tokens)")
    trips: int = _rows("sign-in under way at a provider (PKCE verifier)",
                       "sign-ins under way at a provider (PKCE verifiers)")
    id_tokens_emptied: int = _rows(
        "single sign-on ID token, emptied: that session's sign-out goes without the hint",
        "single sign-on ID tokens, emptied: those sessions' sign-out goes without the hint", trouble=True)
    trips_unreadable: int = _rows(
        "sign-in under way at a provider: it will be refused as expired, and started again",
        "sign-ins under way at a provider: they will be refused as expired, and started again", trouble=True)


def rotate_secrets(box: SecretBox) -> Rotated:
    """All or nothing: a mailbox's, a webhook's, an admin page's, a sign-in app's or a grant's secret no configured
    key opens raises SecretError naming its row, and no row changes. A kept ID token or a verifier no key opens
    does not stop the rotation: they are counted apart. The rows are locked while they are rewritten, so a
    password saved or a token refreshed meanwhile is not overwritten."""
    now = utcnow()
    with writing():
        rotated_mailboxes = mailboxes.rotate_secrets(box)
        rotated_webhooks = webhooks.rotate_secrets(box)
        page_settings = sum((sso.SsoSettings.rotate(box), DirectorySettings.rotate(box)))
        sign_in_apps, grants = apps.rotate_secrets(box)
        sso_sign_ins, emptied = sso.rotate_secrets(box)
        trips = [provider_trips.rotate_verifiers(model, box, now) for model in (OAuthFlow, SsoFlow)]
    return Rotated(rotated_mailboxes, rotated_webhooks, page_settings, sign_in_apps, grants, sso_sign_ins,
                   sum(rotated for rotated, _ in trips), emptied, sum(unreadable for _, unreadable in trips))
