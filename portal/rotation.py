"""``portal rotate-secrets``: every secret the portal keeps moves to the newest key of PORTAL_SECRET_KEYS in one
transaction, after which the older keys may be removed. No Flask."""
from __future__ import annotations

from dataclasses import dataclass

from portal import mailboxes, sso, webhooks
from portal.db import database
from portal.models import utcnow
from portal.oauth import apps
from portal.secret_box import SecretBox


@dataclass(frozen=True)
class Rotated:
    """How many of each kind of row were re-encrypted."""

    mailboxes: int
    webhooks: int
    sign_in_apps: int
    grants: int
    sso_sign_ins: int
    trips: int  # sign-ins at a provider under way: a mailbox's consent or single sign-on


def rotate_secrets(box: SecretBox) -> Rotated:
    """All or nothing: a mailbox's, a webhook's, a sign-in app's or a grant's secret no configured key opens raises
    SecretError naming its row, and no row changes. A kept ID token or a verifier no key opens does not stop the
    rotation (portal.sso, portal.provider_trips say what becomes of them)."""
    now = utcnow()
    with database.atomic():
        rotated_mailboxes = mailboxes.rotate_secrets(box)
        rotated_webhooks = webhooks.rotate_secrets(box)
        sign_in_apps, grants, consents = apps.rotate_secrets(box, now)
        sso_sign_ins, sso_trips = sso.rotate_secrets(box, now)
    return Rotated(rotated_mailboxes, rotated_webhooks, sign_in_apps, grants, sso_sign_ins, consents + sso_trips)
