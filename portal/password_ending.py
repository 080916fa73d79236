"""Mailboxes that still sign in with a password at a provider that is ending (or has ended) password sign-in.

The providers and their dates are data in portal/mail/presets.toml (``password_sign_in_ends``). A mailbox is
affected when it has no grant from a provider sign-in (it sends with a password) and its SMTP host, else its
address's domain, is such a provider's: a company domain hosted at smtp.office365.com counts. No Flask here:
pages, the API and the home page pass ``today`` (``today()`` in production; tests pin it).
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from peewee import fn

from portal import events
from portal.mail.presets import PRESETS, ProviderPreset, provider_at
from portal.models import Mailbox
from portal.models.oauth import MailboxGrant, OAuthApp
from portal.oauth.providers import SignInProvider, provider_for_preset


WARN_DAYS = 30  # the owner and the admins are told once the date is this near (or past)


def today() -> datetime.date:
    """The date the pages judge by: today in UTC (the providers announce their dates without a time zone)."""
    return datetime.datetime.now(datetime.timezone.utc).date()


@dataclass(frozen=True)
class PasswordEnding:
    """One mailbox's password sign-in at a provider that ends it, judged on ``today``."""

    mailbox_id: int
    provider: ProviderPreset
    ends: datetime.date
    today: datetime.date
    sign_in: SignInProvider | None  # the provider sign-in that replaces the password ("Sign in with Microsoft")
    app_registered: bool  # whether the admin registered that sign-in's app, so the button can be offered

    @property
    def passed(self) -> bool:
        """Whether the provider already refuses the password: from the date on."""
        return self.today >= self.ends

    @property
    def days_left(self) -> int:
        """Days until the date (0 on it, negative after it)."""
        return (self.ends - self.today).days

    def name(self, lang: str = "en") -> str:
        """The provider's name as a page in "ru" or "en" shows it."""
        return self.provider.title(lang)

    def note(self, lang: str = "en") -> str:
        """What happens on the date, in plain words."""
        return self.provider.password_sign_in_note(lang)


def ending_provider(smtp_host: str, address: str) -> ProviderPreset | None:
    """The provider a mailbox with this SMTP host and address is at, if that provider ends password sign-in."""
    preset = provider_at(smtp_host, address.rpartition("@")[2])
    return preset if preset is not None and preset.password_sign_in_ends is not None else None


def password_endings(mailboxes, today: datetime.date) -> dict[int, PasswordEnding]:
    """{mailbox id: PasswordEnding} for the listed mailboxes that still sign in with a password at a provider
    ending it. One query for the grants of the whole list, and one for the registered apps when any is affected."""
    at_ending = {m.id: preset for m in mailboxes if (preset := ending_provider(m.smtp_host, m.address)) is not None}
    if not at_ending:
        return {}
    signed_in = {mailbox_id for (mailbox_id,) in MailboxGrant.select(MailboxGrant.mailbox)
                 .where(MailboxGrant.mailbox.in_(list(at_ending))).tuples()}
    affected = {mailbox_id: preset for mailbox_id, preset in at_ending.items() if mailbox_id not in signed_in}
    return _judged(affected, today)


def password_ending(mailbox, today: datetime.date) -> PasswordEnding | None:
    """The one mailbox's PasswordEnding, or None (already signed in with the provider, or another provider)."""
    if mailbox is None or mailbox.id is None:
        return None
    return password_endings([mailbox], today).get(mailbox.id)


def warn_if_ending(mailbox, today: datetime.date) -> PasswordEnding | None:
    """Send ``mailbox_password_ending`` when the mailbox's provider stops taking its password within WARN_DAYS (or
    already refuses it); the health checks call this with every check, the notification centre tells people once."""
    found = password_ending(mailbox, today)
    if found is None or found.days_left > WARN_DAYS:
        return None
    events.mailbox_password_ending.send(mailbox, ending=found)
    return found


def mailboxes_on_ending_passwords(today: datetime.date) -> list[tuple[Mailbox, PasswordEnding]]:
    """Every mailbox (company and personal) that still signs in with a password at a provider ending it, by
    address: one query for the mailboxes without a grant, one for the registered apps when any is affected."""
    ending = [preset for preset in PRESETS if preset.password_sign_in_ends is not None]
    # Only rows that may be at such a provider are read (its SMTP host or one of its domains); the rule decides.
    maybe = fn.LOWER(Mailbox.smtp_host).in_([preset.smtp.host for preset in ending if preset.smtp])
    for domain in (domain for preset in ending for domain in preset.domains):
        maybe |= fn.LOWER(Mailbox.address).endswith("@" + domain)
    without_grant = (Mailbox.select(Mailbox.id, Mailbox.address, Mailbox.smtp_host, Mailbox.scope, Mailbox.owner)
                     .where(maybe & Mailbox.id.not_in(MailboxGrant.select(MailboxGrant.mailbox)
                                                      .where(MailboxGrant.mailbox.is_null(False))))
                     .order_by(Mailbox.address, Mailbox.id))
    mailboxes = [m for m in without_grant if ending_provider(m.smtp_host, m.address) is not None]
    endings = _judged({m.id: ending_provider(m.smtp_host, m.address) for m in mailboxes}, today)
    return [(m, endings[m.id]) for m in mailboxes]


def by_provider(found: list[tuple[Mailbox, PasswordEnding]]) -> list[tuple[PasswordEnding, list[Mailbox]]]:
    """The affected mailboxes grouped by provider, the soonest (or longest passed) date first."""
    groups: dict[str, tuple[PasswordEnding, list[Mailbox]]] = {}
    for mailbox, ending in found:
        groups.setdefault(ending.provider.key, (ending, []))[1].append(mailbox)
    return sorted(groups.values(), key=lambda group: (group[0].ends, group[0].provider.key))


def _judged(affected: dict[int, ProviderPreset], today: datetime.date) -> dict[int, PasswordEnding]:
    if not affected:
        return {}
    registered = {provider for (provider,) in OAuthApp.select(OAuthApp.provider).tuples()}
    endings = {}
    for mailbox_id, preset in affected.items():
        sign_in = provider_for_preset(preset.key)
        endings[mailbox_id] = PasswordEnding(
            mailbox_id=mailbox_id, provider=preset, ends=preset.password_sign_in_ends, today=today, sign_in=sign_in,
            app_registered=sign_in is not None and sign_in.key in registered)
    return endings
