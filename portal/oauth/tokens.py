"""Put a mailbox's grant into its mail settings: the token as the password, the mechanism, the identity."""
from __future__ import annotations

from dataclasses import replace


def with_grant(settings, mailbox, box=None, grant=None):
    """``settings`` signing in with the mailbox's grant (or ``grant``), unchanged when it has none."""
    from portal.models.oauth import MailboxGrant

    if grant is None and mailbox is not None and mailbox.id is not None:
        grant = MailboxGrant.get_or_none(MailboxGrant.mailbox == mailbox.id)
    if grant is None:
        return settings
    token = grant.secret("access_token", box)
    signed = dict(username=grant.identity, password=token, sasl=grant.sasl)
    incoming = settings.incoming
    if incoming is not None:
        incoming = replace(incoming, server=replace(incoming.server, **signed))
    return replace(settings, smtp=replace(settings.smtp, **signed), incoming=incoming)
