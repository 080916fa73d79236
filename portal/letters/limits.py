"""Sending limits: letters per minute through one mailbox, letters to one address per window. A limit holds a
letter back (deferred, no attempt counted) until the time it would allow it; it never refuses one."""
from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass

from portal.models import Letter, LetterRecipient

MAILBOX_LIMIT = "mailbox_limit"
RECIPIENT_LIMIT = "recipient_limit"


@dataclass
class Limits:
    """Sending counts in the current windows, read once per group and kept up to date in memory."""

    policy: object  # QueuePolicy: mailbox_per_minute, recipient_limit, recipient_window
    mailbox_sends: list  # datetimes of letters accepted through the mailbox in the last minute
    recipient_sends: dict  # address -> datetimes of acceptances in the recipient window

    @classmethod
    def load(cls, mailbox_id, addresses, now, policy) -> "Limits":
        """The sends that count now: the mailbox's in the last minute, and those to these addresses."""
        mailbox_sends = []
        if policy.mailbox_per_minute > 0:
            since = now - datetime.timedelta(seconds=60)
            mailbox_sends = sorted(at for (at,) in Letter.select(Letter.sent_at).where(
                (Letter.mailbox == mailbox_id) & (Letter.sent_at >= since)).tuples())
        recipient_sends: dict = defaultdict(list)
        addresses = sorted(set(addresses))
        if policy.recipient_limit > 0 and policy.recipient_window > 0 and addresses:
            since = now - datetime.timedelta(seconds=policy.recipient_window)
            for address, at in (LetterRecipient.select(LetterRecipient.address, LetterRecipient.accepted_at)
                                .where((LetterRecipient.accepted_at >= since)
                                       & LetterRecipient.address.in_(addresses)).tuples()):
                recipient_sends[address].append(at)
            for times in recipient_sends.values():
                times.sort()
        return cls(policy, mailbox_sends, recipient_sends)

    def hold_until(self, addresses, now):
        """(reason, until) when a limit holds this letter back now, else None."""
        policy = self.policy
        if policy.mailbox_per_minute > 0:
            since = now - datetime.timedelta(seconds=60)
            self.mailbox_sends = [t for t in self.mailbox_sends if t >= since]
            if len(self.mailbox_sends) >= policy.mailbox_per_minute:
                return MAILBOX_LIMIT, self.mailbox_sends[0] + datetime.timedelta(seconds=60, milliseconds=10)
        if policy.recipient_limit > 0 and policy.recipient_window > 0:
            window = datetime.timedelta(seconds=policy.recipient_window)
            latest = None
            for address in addresses:
                times = [t for t in self.recipient_sends.get(address, ()) if t >= now - window]
                self.recipient_sends[address] = times
                if len(times) >= policy.recipient_limit:
                    free_at = times[len(times) - policy.recipient_limit] + window
                    latest = free_at if latest is None or free_at > latest else latest
            if latest is not None:
                return RECIPIENT_LIMIT, latest + datetime.timedelta(milliseconds=10)
        return None

    def count(self, accepted, now) -> None:
        """Count a letter the server accepted for these addresses."""
        if accepted:
            self.mailbox_sends.append(now)
            for address in accepted:
                self.recipient_sends.setdefault(address, []).append(now)
