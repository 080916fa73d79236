"""The portal's own mail: notifications by e-mail and invitations, sent from the system mailbox. No Flask.

An admin picks one company mailbox as the system mailbox. The portal's own mail is an ordinary letter of the
letters queue (stored, retried, never lost), marked ``origin="portal"``: its ``author`` is the employee it is
addressed to (who did not write it, so their Outbox does not list it; admins see it in theirs), it belongs to
no project, and the queue sends it without asking the sender rule whether that employee may use the mailbox.
Texts are in the recipient's language, from the portal's own catalogues; the letter has a plain-text part and
its HTML rendering, and a footer that says why the person got it and where to change that.
"""
import datetime
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from peewee import fn

from portal.db import database, writing
from portal.letters.compose import Recipient, clean_address, create_letter
from portal.models import Employee, Mailbox, Notification, PortalSetting, utcnow
from portal.models.people import LANGUAGES
from portal.words import catalogue

log = logging.getLogger("portal.notifications")
SYSTEM_MAILBOX = "system_mailbox"  # the PortalSetting naming the mailbox's id
DIGEST_WINDOW = datetime.timedelta(minutes=15)  # at most one e-mail per person and kind this often
DIGEST_LOCK = "portal.notification_digest"
SUBJECT_ABOUT = 120  # characters of a letter's subject quoted in a notification's subject


class NoSystemMailbox(LookupError):
    """The portal has no system mailbox: its own mail cannot go out."""


@dataclass
class Links:
    """Builds the portal's links for letters written off the request path, from PORTAL_BASE_URL."""

    base_url: str = ""
    url_map: object = None

    def url(self, endpoint, values=None):
        """The absolute link (a path when the portal does not know its own address)."""
        if self.url_map is None:
            return ""
        parts = urlsplit(self.base_url or "")
        adapter = self.url_map.bind(parts.netloc or "localhost", script_name=parts.path.rstrip("/") or "/",
                                    url_scheme=parts.scheme or "http")
        return adapter.build(endpoint, values or {}, force_external=bool(self.base_url))


_configured = {"links": Links(), "default_language": "en"}


def configure(*, base_url, url_map, default_language="en"):
    """Where links in the portal's mail point, and the language for people who chose none (from create_app)."""
    _configured["links"] = Links((base_url or "").strip(), url_map)
    _configured["default_language"] = default_language if default_language in LANGUAGES else "en"


def link(endpoint, values=None):
    return _configured["links"].url(endpoint, values)


def language_of(employee):
    return employee.language if employee.language in LANGUAGES else _configured["default_language"]


# -- the system mailbox ------------------------------------------------------------------------------------------

def system_mailbox():
    """The company mailbox the portal's own mail leaves from, or None."""
    mailbox_id = PortalSetting.read(SYSTEM_MAILBOX)
    if not mailbox_id:
        return None
    return Mailbox.get_or_none((Mailbox.id == mailbox_id) & (Mailbox.scope == "company"))


def set_system_mailbox(mailbox, *, actor, ip=""):
    """An admin picks the system mailbox (a company mailbox) or, with None, none; written to the audit log."""
    from portal.mailboxes import record

    if not actor.is_admin:
        raise PermissionError("only admins choose the system mailbox")
    if mailbox is not None and not mailbox.is_company:
        raise ValueError("the system mailbox must be a company mailbox")
    before = system_mailbox()
    with writing():
        PortalSetting.write(SYSTEM_MAILBOX, mailbox.id if mailbox is not None else None)
        if (before and before.id) != (mailbox and mailbox.id):
            record("changed", actor=actor, mailbox=mailbox or before, ip=ip, fields=["system_mailbox"],
                   detail="system mailbox" if mailbox is not None else "no longer the system mailbox")


def send_portal_letter(recipient, *, subject, paragraphs, footer, mailbox=None):
    """Queue one letter of the portal's own to an employee; NoSystemMailbox without a system mailbox."""
    mailbox = mailbox or system_mailbox()
    if mailbox is None:
        raise NoSystemMailbox()
    body = "\n\n".join(paragraphs) + "\n\n-- \n" + footer + "\n"
    to = [Recipient(clean_address("to", recipient.email), " ".join(recipient.name.split()))]
    return create_letter(recipient, mailbox=mailbox, project=None, to=to, subject=subject, body=body,
                         check_sender=False, origin="portal")


# -- invitations -------------------------------------------------------------------------------------------------

def send_invitation(employee, url, *, valid_days):
    """Queue the set-password link to the employee, in their language; NoSystemMailbox without one."""
    words = catalogue(language_of(employee))
    gettext = words.gettext
    return send_portal_letter(
        employee,
        subject=gettext("Set your password for the portal"),
        paragraphs=[
            gettext("Hello, %(name)s.") % {"name": employee.name},
            gettext("You can now sign in to the portal that sends letters to external contacts. Set your password "
                    "with this link; it works once and for %(days)d days:") % {"days": valid_days} + "\n" + url,
            gettext("Then sign in with your e-mail, %(email)s, and the new password.") % {"email": employee.email},
        ],
        footer=gettext("You get this e-mail because an administrator of the portal invited you. If you did not "
                       "expect it, ignore it: nothing changes without the link."),
    )


# -- notifications by e-mail and the digest ----------------------------------------------------------------------

class _Taken(Exception):
    """Another worker mailed these entries first."""


def mail_notifications(recipient_id, kind, *, now=None):
    """Send the person's entries of this kind that wait for e-mail, in one letter, unless one of this kind went
    out within DIGEST_WINDOW (then the next digest carries them). Returns the Letter, or None.

    The entries are marked "mailed" in the same transaction that stores the letter, and only if still "due":
    two workers never mail the same entries, and a crash leaves them due, never lost.
    """
    now = now or utcnow()
    mailbox = system_mailbox()
    recipient = Employee.get_or_none((Employee.id == recipient_id) & Employee.active)
    mine = (Notification.recipient == recipient_id) & (Notification.kind == kind)
    if recipient is None:  # deactivated: what waited stays in the portal, and no digest looks at it again
        Notification.update(mail_state="").where(mine & (Notification.mail_state == "due")).execute()
        return None
    if mailbox is None:
        return None
    try:
        with writing():
            last = (Notification.select(fn.MAX(Notification.mailed_at))
                    .where(mine & (Notification.mail_state == "mailed")).scalar())
            if last is not None and now - last < DIGEST_WINDOW:
                return None
            due = list(Notification.select().where(mine & (Notification.mail_state == "due"))
                       .order_by(Notification.created_at, Notification.id))
            if not due:
                return None
            ids = [entry.id for entry in due]
            claimed = (Notification.update(mail_state="mailed", mailed_at=now)
                       .where(Notification.id.in_(ids) & (Notification.mail_state == "due")).execute())
            if claimed != len(ids):
                raise _Taken()
            letter = send_portal_letter(recipient, mailbox=mailbox, **notification_letter(recipient, kind, due))
            Notification.update(mail_letter=letter.id).where(Notification.id.in_(ids)).execute()
    except _Taken:
        return None
    return letter


def notification_letter(recipient, kind, entries):
    """Subject, paragraphs and footer of the e-mail carrying these entries, in the recipient's language."""
    from portal.notifications import describe, kind_label, link_of

    lang = language_of(recipient)
    words = catalogue(lang)
    gettext = words.gettext
    label = kind_label(kind, gettext)
    paragraphs = [gettext("Hello, %(name)s.") % {"name": recipient.name}]
    if len(entries) > 1:
        subject = words.ngettext("%(what)s: %(num)d notification", "%(what)s: %(num)d notifications",
                                 len(entries)) % {"what": label, "num": len(entries)}
        paragraphs.append(gettext("Since the last e-mail of this kind:"))
    else:
        about = entries[0].about
        subject = f"{label}: {about if len(about) <= SUBJECT_ABOUT else about[:SUBJECT_ABOUT - 1] + '…'}"
    for entry in entries:
        target = link_of(entry.target)
        url = link(*target) if target else ""
        paragraphs.append(describe(entry, gettext, lang) + (f"\n{url}" if url else ""))
    paragraphs.append(gettext("All your notifications: %(url)s") % {"url": link("notifications.index")})
    where = link("profile.edit") + "#notifications"
    footer = gettext("You get this e-mail because you chose to hear about “%(what)s” by e-mail as well. At most "
                     "one such e-mail goes out every 15 minutes; what happens meanwhile comes in the next one. "
                     "Change this on My profile: %(url)s") % {"what": label, "url": where}
    return {"subject": subject, "paragraphs": paragraphs, "footer": footer}


def send_digests(now=None):
    """Mail every person's waiting entries whose kind's window has passed; returns the letters queued."""
    now = now or utcnow()
    pairs = (Notification.select(Notification.recipient, Notification.kind)
             .where(Notification.mail_state == "due").distinct().tuples())
    letters = []
    for recipient_id, kind in list(pairs):
        try:
            letters.append(mail_notifications(recipient_id, kind, now=now))
        except Exception:  # one person's e-mail that cannot be written must not hold up everyone else's
            log.exception("the %s notification e-mail to employee %s could not be queued", kind, recipient_id)
    return [letter for letter in letters if letter is not None]


def register_digest(huey):
    """The periodic task that sends the digests, one worker at a time (huey's lock)."""
    from huey import crontab
    from huey.exceptions import TaskLockedException

    @huey.periodic_task(crontab(minute="*"), name=DIGEST_LOCK)
    def notification_digest():
        """Every minute: the notification e-mails whose 15 minutes have passed."""
        try:
            with huey.lock_task(DIGEST_LOCK), database.connection_context():
                return len(send_digests())
        except TaskLockedException:
            return 0

    return notification_digest
