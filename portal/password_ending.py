"""Mailboxes that still sign in with a password at a provider that is ending (or has ended) password sign-in.

The providers and their dates are data in portal/mail/presets.toml (``password_sign_in_ends``). A mailbox is
affected when it has no grant from a provider sign-in (it sends with a password) and it sends through such a
provider's SMTP server (``presets.provider_at``): a company domain hosted at smtp.office365.com counts, a hotmail.com
address sent through a company relay does not. No Flask here: pages, the API, the home page and the hourly warning
pass ``today`` (``today()`` in production; tests pin it).
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from peewee import fn

from portal import events
from portal.db import database, writing
from portal.mail.presets import PRESETS, ProviderPreset, provider_at
from portal.models import Mailbox
from portal.oauth.apps import registered_apps
from portal.oauth.grants import sign_ins_of, signed_in_ids
from portal.oauth.providers import SignInProvider, provider_for_preset


WARN_DAYS = 30  # the owner and the admins are told once the date is this near (or past)
WARN_LOCK = "portal.warn_password_endings"  # the hourly task's name and its lock


def today() -> datetime.date:
    """The date the pages judge by: today in UTC (the providers announce their dates without a time zone)."""
    return datetime.datetime.now(datetime.timezone.utc).date()


@dataclass(frozen=True)
class PasswordEnding:
    """One mailbox's password sign-in at a provider that ends it, judged on ``today``."""

    mailbox_id: int | None  # None: said of a provider's mailboxes together (the admin home)
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
    signed_in = sign_ins_of(at_ending)
    registered = registered_apps()
    return {mailbox_id: _ending(preset, today, registered, mailbox_id)
            for mailbox_id, preset in at_ending.items() if mailbox_id not in signed_in}


def password_ending(mailbox, today: datetime.date) -> PasswordEnding | None:
    """The one mailbox's PasswordEnding, or None (already signed in with the provider, or another provider)."""
    if mailbox is None or mailbox.id is None:
        return None
    return password_endings([mailbox], today).get(mailbox.id)


def _ending_presets():
    """The providers that end password sign-in, the soonest (or longest passed) date first."""
    return sorted((preset for preset in PRESETS if preset.password_sign_in_ends is not None and preset.smtp),
                  key=lambda preset: (preset.password_sign_in_ends, preset.key))


def _on_password_at(preset):
    """The condition for a mailbox sending through ``preset``'s SMTP server with a password (no provider sign-in)."""
    return (fn.LOWER(Mailbox.smtp_host) == preset.smtp.host) & Mailbox.id.not_in(signed_in_ids())


def ending_summary(today: datetime.date, shown: int = 10) -> list[tuple[PasswordEnding, int, list[Mailbox]]]:
    """For the admin home, per provider ending password sign-in: (its ending, how many mailboxes still use a password
    there, the first ``shown`` of them by address). Counted by the database, and only ``shown`` rows are read."""
    found = []
    for preset in _ending_presets():
        condition = _on_password_at(preset)
        count = Mailbox.select().where(condition).count()
        if count:
            found.append((preset, count, list(Mailbox.select(Mailbox.id, Mailbox.address).where(condition)
                                              .order_by(Mailbox.address, Mailbox.id).limit(shown))))
    registered = registered_apps() if found else {}
    return [(_ending(preset, today, registered), count, first) for preset, count, first in found]


def warn_owners(today: datetime.date) -> int:
    """Send ``mailbox_password_ending`` for every mailbox still on a password at a provider ending it within
    WARN_DAYS (or already past); the notification centre tells each person once. Reads nothing for a provider whose
    date is further away. Returns how many mailboxes it was sent for."""
    due = [preset for preset in _ending_presets() if (preset.password_sign_in_ends - today).days <= WARN_DAYS]
    registered = registered_apps() if due else {}
    sent = 0
    for preset in due:
        # Read first, then one write transaction per mailbox: on SQLite a read left open under the writes would make
        # them fail as soon as another connection commits.
        for mailbox in list(Mailbox.select().where(_on_password_at(preset)).order_by(Mailbox.id)):
            with writing():  # who was told, and telling them, in one transaction
                events.mailbox_password_ending.send(mailbox, ending=_ending(preset, today, registered, mailbox.id))
            sent += 1
    return sent


def register_warnings(huey):
    """Every hour, the owners of mailboxes whose provider stops taking their password soon are told (once each), by
    one worker at a time (huey's lock): every worker runs the periodic tasks."""
    from huey import crontab
    from huey.exceptions import TaskLockedException

    @huey.periodic_task(crontab(minute="17"), name=WARN_LOCK)
    def warn_password_endings():
        try:
            with huey.lock_task(WARN_LOCK), database.connection_context():
                return warn_owners(today())
        except TaskLockedException:
            return None  # another worker is telling them this hour

    return warn_password_endings


def _ending(preset: ProviderPreset, today: datetime.date, registered, mailbox_id: int | None = None):
    sign_in = provider_for_preset(preset.key)
    return PasswordEnding(mailbox_id=mailbox_id, provider=preset, ends=preset.password_sign_in_ends, today=today,
                          sign_in=sign_in, app_registered=sign_in is not None and sign_in.key in registered)
