"""A mailbox's grant: its current access token, refreshed before it expires by one process at a time, and
"Needs reconnecting" once the provider no longer honours the grant.

A refresh is claimed first, in a short write (a conditional UPDATE setting the grant's ``refreshing_until`` lease),
the provider is asked outside any transaction, and the new tokens (a rotated refresh token too) are stored in a
second short write that ends the lease. A second web process or worker that wanted the same refresh polls the row
until the new token is there (or takes over a lease that ran out). So a slow provider never holds the database's
write lock: the same on SQLite and PostgreSQL.
"""
from __future__ import annotations

import datetime
import json
import logging
import time

from portal import events, openid
from portal.db import writing
from portal.models import AuditEvent, Letter, Mailbox, utcnow
from portal.models.oauth import MailboxGrant, OAuthApp

from . import client
from .client import AppSettings, ProviderError, ProviderUnreachable, Tokens

log = logging.getLogger("portal.oauth")

NEEDS_RECONNECT = "oauth_needs_reconnect"  # the catalogue's code for a grant the provider no longer honours
TOKEN_UNAVAILABLE = "oauth_token_unavailable"  # the provider could not be asked for a new token just now
# A refresh refused with one of these will never work again: a person must sign in anew. invalid_client is the
# admin's app (every mailbox of the provider), fixed on Sign-in providers: letters wait for that instead.
LOST_FOR_GOOD = frozenset({"invalid_grant", "unauthorized_client", "invalid_scope", "consent_required",
                           "interaction_required", "access_denied"})


# One process at a time asks the provider for a mailbox's new tokens: it claims the refresh for longer than the
# provider's answer can take, others wait for its tokens polling the row.
def _refresh_lease() -> datetime.timedelta:
    """Longer than a refresh can take: the discovery document and the token request, each cut at the guarded web
    client's whole-request deadline (portal.http), and a margin for the database and the clocks of several
    machines. A lease runs out only under a process that died or hung; its late answer, if any, is then not stored
    (the process that took over stores its own: a provider revokes the access tokens of earlier refreshes)."""
    return datetime.timedelta(seconds=2 * openid.provider_access().deadline + 30)


LEASE_POLL = 0.05  # seconds between two looks at a grant another process is refreshing


class NeedsReconnecting(Exception):
    """The grant no longer works: its owner must sign in with the provider again."""

    def __init__(self, grant: MailboxGrant):
        super().__init__(grant.reconnect_reason or "the provider no longer accepts this mailbox's sign-in")
        self.grant = grant


class TokenUnavailable(Exception):
    """No fresh token right now (provider unreachable, app misconfigured): the letters wait and try again."""


class AppNotRegistered(LookupError):
    """No app is registered for this provider on Sign-in providers."""


def app_settings(provider_key: str, box=None) -> AppSettings:
    """The registered app of a provider, secret decrypted, for the client."""
    app = OAuthApp.get_or_none(OAuthApp.provider == provider_key)
    if app is None:
        raise AppNotRegistered(provider_key)
    return AppSettings(provider=app.provider, client_id=app.client_id, client_secret=app.secret("client_secret", box),
                       tenant=app.tenant, discovery_url=app.discovery_url, sasl=app.sasl, scopes=app.scopes)


def grant_of(mailbox) -> MailboxGrant | None:
    """The mailbox's grant, if it signs in with a provider."""
    if mailbox is None or mailbox.id is None:
        return None
    return MailboxGrant.get_or_none(MailboxGrant.mailbox == mailbox.id)


def sign_ins_of(mailbox_ids) -> dict[int, bool]:
    """{mailbox id: needs reconnecting} for those of the mailboxes that sign in with a provider (one query); the
    others sign in with a password."""
    ids = list(mailbox_ids)
    return dict(MailboxGrant.select(MailboxGrant.mailbox, MailboxGrant.needs_reconnect)
                .where(MailboxGrant.mailbox.in_(ids)).tuples()) if ids else {}


def signed_in_ids():
    """The ids of every mailbox that signs in with a provider, as a subquery for a condition."""
    return MailboxGrant.select(MailboxGrant.mailbox).where(MailboxGrant.mailbox.is_null(False))


def lost_grants() -> dict[int, MailboxGrant]:
    """The grants that need reconnecting, by mailbox id (one query)."""
    return {grant.mailbox_id: grant for grant in MailboxGrant.select().where(
        MailboxGrant.needs_reconnect & MailboxGrant.mailbox.is_null(False))}


def store_tokens(grant: MailboxGrant, tokens: Tokens, now: datetime.datetime, box=None) -> None:
    """Put new tokens on the grant (not saved): the access token, its expiry, and a rotated refresh token."""
    grant.set_secret("access_token", tokens.access_token, box)
    if tokens.refresh_token:  # a provider that does not rotate keeps the old one valid
        grant.set_secret("refresh_token", tokens.refresh_token, box)
    grant.expires_at = client.expires_at(tokens, now)
    grant.lifetime = tokens.expires_in


def fresh_grant(grant: MailboxGrant, *, now: datetime.datetime | None = None, box=None) -> MailboxGrant:
    """The grant with an access token good for a while yet: refreshed first when it is about to expire.

    Raises NeedsReconnecting (for good) or TokenUnavailable (for now).
    """
    now = now or utcnow()
    if grant.needs_reconnect:
        raise NeedsReconnecting(grant)
    if not grant.expiring(now):
        return grant
    return refresh_grant(grant.id, now=now, box=box)


def refresh_grant(grant_id: int, *, now: datetime.datetime | None = None, refused_token: str | None = None,
                  box=None) -> MailboxGrant:
    """Refresh the grant's tokens unless another process already did; returns the grant as it is then.

    Without ``refused_token`` it refreshes only if the token is still about to expire when this process claims
    the refresh (another one may have refreshed meanwhile). With it (the ciphertext of an access token a server
    just refused) it refreshes unless the stored token is already another one.
    """
    now = now or utcnow()
    grant, lease = _claim_refresh(grant_id, now, refused_token)
    if lease is None:
        return grant
    try:
        tokens = _ask_provider(grant, now, box)
    except BaseException:
        _end_lease(grant_id, lease)
        raise
    return _store_refreshed(grant, tokens, now, lease, box)


def _needs_refresh(grant: MailboxGrant, now: datetime.datetime, refused_token: str | None) -> bool:
    return grant.expiring(now) if refused_token is None else grant.access_token == refused_token


def _claim_refresh(grant_id: int, now: datetime.datetime, refused_token: str | None):
    """(grant, lease end) once this process may ask the provider; (grant, None) when another process refreshed
    meanwhile. While another one holds the lease this waits for its tokens, and takes over a lease that ran out."""
    give_up = time.monotonic() + _refresh_lease().total_seconds() + 5
    while True:
        grant = MailboxGrant.get_by_id(grant_id)
        if grant.needs_reconnect:
            raise NeedsReconnecting(grant)
        if not _needs_refresh(grant, now, refused_token):
            return grant, None
        clock = utcnow()
        if grant.refreshing_until is None or grant.refreshing_until <= clock:
            lease = clock + _refresh_lease()
            with writing():  # a short write: the claim, never the provider's answer
                claimed = MailboxGrant.update(refreshing_until=lease).where(
                    (MailboxGrant.id == grant_id) & (MailboxGrant.access_token == grant.access_token)
                    & (MailboxGrant.refreshing_until.is_null() | (MailboxGrant.refreshing_until <= clock))).execute()
            if claimed:
                grant.refreshing_until = lease
                return grant, lease
            continue  # another process claimed or refreshed it just now: look again
        if time.monotonic() > give_up:
            raise TokenUnavailable("another process is still refreshing this mailbox's token")
        time.sleep(LEASE_POLL)


def _ask_provider(grant: MailboxGrant, now: datetime.datetime, box) -> Tokens:
    """New tokens from the provider, outside any transaction. Raises NeedsReconnecting or TokenUnavailable."""
    try:
        return client.refresh(app_settings(grant.provider, box), grant.secret("refresh_token", box))
    except ProviderError as refusal:
        if refusal.error not in LOST_FOR_GOOD:
            log.warning("refreshing the %s grant %s was refused: %s", grant.provider, grant.id, refusal.error)
            raise TokenUnavailable(f"{refusal.error}: {refusal.description}") from None
        with writing():
            _lose(grant, f"{refusal.error}: {refusal.description}".strip(": "), now)
        _announce_lost(grant)
        raise NeedsReconnecting(grant) from None
    except (ProviderUnreachable, AppNotRegistered) as error:
        log.warning("refreshing the %s grant %s: %s", grant.provider, grant.id, error)
        raise TokenUnavailable(str(error)) from None


def _store_refreshed(grant: MailboxGrant, tokens: Tokens, now: datetime.datetime, lease: datetime.datetime,
                     box) -> MailboxGrant:
    """Store the new tokens (a rotated refresh token too) and end the lease, in one short write. A process whose
    lease ran out and was taken over stores nothing: the one that took over stores its own."""
    store_tokens(grant, tokens, now, box)
    grant.refreshes += 1
    grant.refreshed_at, grant.refreshing_until = now, None
    with writing():
        MailboxGrant.update(access_token=grant.access_token, refresh_token=grant.refresh_token,
                            expires_at=grant.expires_at, lifetime=grant.lifetime, refreshes=MailboxGrant.refreshes + 1,
                            refreshed_at=now, refreshing_until=None).where(
            (MailboxGrant.id == grant.id) & (MailboxGrant.refreshing_until == lease)).execute()
    return grant


def _end_lease(grant_id: int, lease: datetime.datetime) -> None:
    with writing():
        MailboxGrant.update(refreshing_until=None).where(
            (MailboxGrant.id == grant_id) & (MailboxGrant.refreshing_until == lease)).execute()


def token_refused(mailbox, settings, *, now: datetime.datetime | None = None, box=None) -> None:
    """A server refused the token these settings carried: refresh once (the provider may have ended the token
    early); a grant the provider no longer honours becomes "Needs reconnecting". Raises what refresh_grant raises.
    """
    grant = grant_of(mailbox)
    if grant is None:
        return
    if grant.needs_reconnect:
        raise NeedsReconnecting(grant)
    if grant.secret("access_token", box) != settings.smtp.password:
        return  # another process already put a new token there
    refresh_grant(grant.id, now=now, refused_token=grant.access_token, box=box)


def _lose(grant: MailboxGrant, reason: str, now: datetime.datetime) -> None:
    grant.needs_reconnect = True
    grant.reconnect_reason = reason[:500]
    grant.refreshing_until = None
    grant.save(only=[MailboxGrant.needs_reconnect, MailboxGrant.reconnect_reason, MailboxGrant.refreshing_until])
    if grant.mailbox_id is not None:
        mailbox = Mailbox.get_by_id(grant.mailbox_id)
        AuditEvent.create(mailbox=mailbox.id, address=mailbox.address, actor=None, owner=mailbox.owner_id,
                          action="needs_reconnect", changed_fields=json.dumps(["oauth"]), at=now,
                          detail=f"the {grant.provider} sign-in stopped working: {reason}"[:500])


def _announce_lost(grant: MailboxGrant) -> None:
    if grant.mailbox_id is not None:
        events.mailbox_needs_attention.send(Mailbox.get_by_id(grant.mailbox_id), problem=NEEDS_RECONNECT)


def settings_for(mailbox, *, now: datetime.datetime | None = None, box=None):
    """The mailbox's MailboxSettings with a token good for a while yet when it signs in with a provider."""
    grant = grant_of(mailbox)
    if grant is not None:
        fresh_grant(grant, now=now, box=box)
    return mailbox.to_settings(box)


def bind(mailbox, grant: MailboxGrant) -> bool:
    """Make ``grant`` the mailbox's only grant (inside the caller's transaction); True if the mailbox had one that
    needed reconnecting (the caller then releases its letters once the transaction is committed)."""
    had_lost = MailboxGrant.select().where((MailboxGrant.mailbox == mailbox.id) & MailboxGrant.needs_reconnect
                                           & (MailboxGrant.id != grant.id)).exists()
    MailboxGrant.delete().where((MailboxGrant.mailbox == mailbox.id) & (MailboxGrant.id != grant.id)).execute()
    MailboxGrant.update(mailbox=mailbox.id, form_key=None, employee=None).where(MailboxGrant.id == grant.id).execute()
    grant.mailbox, grant.form_key, grant.employee = mailbox.id, None, None
    return had_lost


def release_waiting(mailbox, now: datetime.datetime | None = None) -> int:
    """The letters that waited for the mailbox's sign-in are due now; returns how many."""
    return Letter.update(next_attempt_at=now or utcnow()).where(
        (Letter.mailbox == mailbox.id) & (Letter.state == "deferred")
        & (Letter.waiting_for << (NEEDS_RECONNECT, TOKEN_UNAVAILABLE))).execute()


def reconnect(mailbox, grant: MailboxGrant, *, actor, now: datetime.datetime | None = None, ip: str = "") -> int:
    """Bind a new grant to the mailbox in place of its old one and release the letters that waited for it;
    returns how many letters were released."""
    now = now or utcnow()
    with writing():
        bind(mailbox, grant)
        AuditEvent.create(mailbox=mailbox.id, address=mailbox.address, actor=actor.id if actor else None,
                          owner=mailbox.owner_id, action="reconnected", changed_fields=json.dumps(["oauth"]),
                          at=now, ip=(ip or "")[:64], detail=f"signed in with {grant.provider} as {grant.identity}")
    released = release_waiting(mailbox, now)
    events.mailbox_recovered.send(mailbox)
    return released


def form_grant(form_key: str | None, existing=None, *, chosen: str | None = None):
    """The grant a mailbox form signs in with: the form's own new one, else the mailbox's; None for a password.

    ``chosen`` is the form's "auth" value ("oauth" or "password"; None: as the mailbox is now). Raises
    ValueError with what to tell the person when a sign-in is wanted but there is none to use.
    """
    if chosen == "password":
        return None
    if form_key:
        grant = MailboxGrant.get_or_none((MailboxGrant.form_key == form_key) & MailboxGrant.mailbox.is_null())
        if grant is None:
            raise ValueError("expired")
        return grant
    grant = grant_of(existing)
    if grant is None and chosen == "oauth":
        raise ValueError("missing")
    return grant


def new_grant(provider_key: str, identity: str, sasl: str, tokens: Tokens, *, mailbox=None, employee=None,
              form_key: str | None = None, now: datetime.datetime | None = None, box=None) -> MailboxGrant:
    """Store what a person's consent gave: for a mailbox, or (from the form, before saving) for a form."""
    grant = MailboxGrant(mailbox=mailbox.id if mailbox is not None else None,
                         employee=employee.id if employee is not None else None, form_key=form_key,
                         provider=provider_key, identity=identity.lower(), sasl=sasl)
    store_tokens(grant, tokens, now or utcnow(), box)
    grant.save()
    return grant
