"""The notification centre: who is told what, where to act, and whether they also want it by e-mail. No Flask.

Receivers connected to the domain events (portal.events) write the entries: a letter failed or bounced and a
reply arrived (to the letter's author), a mailbox needs attention or was paused (to its owner; a company
mailbox's to the admins), letters waiting on a paused mailbox (to their authors), a mailbox given to someone.
An entry whose kind the person wants by e-mail is handed to the portal's own mail (portal.portal_mail), which
sends it through the system mailbox at most once per kind per DIGEST_WINDOW.
"""
import logging
from functools import wraps

from peewee import fn

from portal import events
from portal.db import writing
from portal.models import Employee, Letter, Notification, NotificationPreference, Reply, utcnow
from portal.models.letters import PENDING_STATES

log = logging.getLogger("portal.notifications")

# Every kind, in the order My profile lists them.
KINDS = ("letter_failed", "letter_bounced", "reply_received", "letter_waiting", "mailbox_needs_attention",
         "mailbox_paused", "mailbox_assigned", "password_ending")
# What reaches people by e-mail until they choose otherwise: problems that need them to act.
BY_EMAIL_DEFAULT = frozenset({"letter_failed", "letter_bounced", "mailbox_needs_attention", "mailbox_paused",
                              "password_ending"})
# Where each entry's link leads: target "letter:12" -> the letter page, and so on (endpoint, its id argument).
TARGETS = {
    "letter": ("letters.letter", "letter_id"),
    "reply": ("replies.open_reply", "reply_id"),
    "mailbox": ("mailboxes.edit", "mailbox_id"),
    "outbox": ("letters.outbox", None),
}
PAGE_SIZE = 50
NOTIFICATIONS_MAX = 200  # the most the API lists at once


def kind_label(kind, gettext):
    """The kind as My profile and an e-mail's subject name it."""
    return {
        "letter_failed": gettext("A letter of yours failed"),
        "letter_bounced": gettext("A letter of yours bounced"),
        "reply_received": gettext("A reply to your letter"),
        "letter_waiting": gettext("Letters waiting on a paused address"),
        "mailbox_needs_attention": gettext("An address needs attention"),
        "mailbox_paused": gettext("An address was paused"),
        "mailbox_assigned": gettext("An address given to you"),
        "password_ending": gettext("An address's password sign-in is ending"),
    }[kind]


def describe(notification, gettext, lang="en"):
    """The entry in one sentence, in the language ``gettext`` speaks (``lang`` for the problem catalogue)."""
    about, detail = notification.about, notification.detail
    kind = notification.kind
    if kind == "letter_failed":
        return gettext("Your letter “%(subject)s” could not be sent: %(problem)s.") % {
            "subject": about, "problem": problem_title(detail, lang)}
    if kind == "letter_bounced":
        return gettext("Your letter “%(subject)s” bounced for %(recipients)s.") % {
            "subject": about, "recipients": detail}
    if kind == "reply_received":
        return gettext("%(sender)s replied to your letter “%(subject)s”.") % {"sender": detail, "subject": about}
    if kind == "letter_waiting":
        return gettext("%(count)s of your letters wait: the address %(address)s they leave from is paused.") % {
            "count": detail, "address": about}
    if kind == "mailbox_needs_attention":
        return gettext("The address %(address)s needs attention: %(problem)s.") % {
            "address": about, "problem": problem_title(detail, lang)}
    if kind == "mailbox_paused":
        if detail.startswith("by:"):
            return gettext("The address %(address)s was paused by %(name)s.") % {
                "address": about, "name": detail[3:]}
        return gettext("The portal paused the address %(address)s: %(problem)s.") % {
            "address": about, "problem": problem_title(detail, lang)}
    if kind == "password_ending":
        return _password_ending_words(notification, gettext, lang)
    return gettext("You may now send from the address %(address)s.") % {"address": about}


def _password_ending_words(notification, gettext, lang):
    """``detail`` is "<preset key> <YYYY-MM-DD>[ passed]": the provider, the day it stops taking the password, and
    whether that day had come when the person was told."""
    import datetime

    from babel.dates import format_date

    from portal.mail.presets import get_preset

    key, day, *passed = notification.detail.split(" ")
    preset = get_preset(key)
    words = {"address": notification.about, "provider": preset.title(lang) if preset else key,
             "date": format_date(datetime.date.fromisoformat(day), "d MMMM y", locale=lang)}
    if passed:
        return gettext("%(provider)s turned password sign-in off on %(date)s, and %(address)s still uses a password: "
                       "sign it in with the provider on its form.") % words
    return gettext("%(provider)s stops accepting the password of %(address)s on %(date)s: sign it in with the "
                   "provider on its form before then.") % words


def problem_title(code, lang):
    """A problem code in words, from the one catalogue of problems."""
    from portal.mail.problems import Problem

    return Problem(code=code or "unknown", stage="", server_reply="").title(lang)


def link_of(target):
    """(endpoint, values) of an entry's target, for url_for or a URL map; None when it names nothing."""
    kind, _, number = (target or "").partition(":")
    if kind not in TARGETS:
        return None
    endpoint, argument = TARGETS[kind]
    return endpoint, ({argument: int(number)} if argument else {})


# -- preferences -------------------------------------------------------------------------------------------------

def preferences(employee):
    """{kind: True when the person wants it by e-mail too}, defaults filled in."""
    chosen = {row.kind: row.by_email for row in
              NotificationPreference.select().where(NotificationPreference.employee == employee.id)}
    return {kind: chosen.get(kind, kind in BY_EMAIL_DEFAULT) for kind in KINDS}


def set_preferences(employee, by_email):
    """Store the person's choice: ``by_email`` is the set of kinds they want by e-mail too."""
    unknown = set(by_email) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown notification kinds: {sorted(unknown)}")
    rows = [{"employee": employee.id, "kind": kind, "by_email": kind in by_email} for kind in KINDS]
    with writing():
        NotificationPreference.delete().where(NotificationPreference.employee == employee.id).execute()
        NotificationPreference.insert_many(rows).execute()


def wants_email(employee_id, kind):
    row = NotificationPreference.get_or_none((NotificationPreference.employee == employee_id)
                                             & (NotificationPreference.kind == kind))
    return row.by_email if row is not None else kind in BY_EMAIL_DEFAULT


# -- entries -----------------------------------------------------------------------------------------------------

def notify(recipient, kind, *, about, target="", letter=None, mailbox=None, detail="", now=None):
    """Write one entry for ``recipient`` (an Employee or id); mail it when the person wants this kind by e-mail
    and the portal has a system mailbox. Returns the Notification."""
    from portal import portal_mail

    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    now = now or utcnow()
    recipient_id = getattr(recipient, "id", recipient)
    by_mail = wants_email(recipient_id, kind) and portal_mail.system_mailbox() is not None
    entry = Notification.create(
        recipient=recipient_id, kind=kind, about=(about or "")[:1020], detail=(detail or "")[:255], target=target,
        letter=getattr(letter, "id", letter), mailbox=getattr(mailbox, "id", mailbox), created_at=now,
        mail_state="due" if by_mail else "")
    if by_mail:
        portal_mail.mail_notifications(recipient_id, kind, now=now)
    return entry


def notifications_of(employee):
    """The person's entries, newest first."""
    return (Notification.select().where(Notification.recipient == employee.id)
            .order_by(Notification.created_at.desc(), Notification.id.desc()))


def unread_count(employee_id):
    """How many entries the person has not read: the bell's number (one query)."""
    return Notification.select().where((Notification.recipient == employee_id)
                                       & Notification.read_at.is_null()).count()


def mark_read(employee, notification_ids=None, *, now=None):
    """Mark the person's entries read (the given ones, or all); returns how many changed."""
    which = (Notification.recipient == employee.id) & Notification.read_at.is_null()
    if notification_ids is not None:
        which &= Notification.id.in_(list(notification_ids))
    return Notification.update(read_at=now or utcnow()).where(which).execute()


def mark_letter_seen(employee, letter_id, *, now=None):
    """The author looked at their failed letter: its failure's entries count as read."""
    return Notification.update(read_at=now or utcnow()).where(
        (Notification.recipient == employee.id) & (Notification.letter == letter_id)
        & (Notification.kind == "letter_failed") & Notification.read_at.is_null()).execute()


def read_replies(employee, reply_ids):
    """The employee read these replies (on their letter's page, from the Replies list or from the notification that
    announced one): if theirs to read, they are no longer new, nor are the entries that announced them."""
    targets = [f"reply:{reply_id}" for reply_id in reply_ids]
    with writing():
        Reply.mark_read_by(employee, *reply_ids)
        Notification.update(read_at=utcnow()).where(
            (Notification.recipient == employee.id) & (Notification.kind == "reply_received")
            & Notification.target.in_(targets) & Notification.read_at.is_null()).execute()


def _admins():
    return list(Employee.select(Employee.id).where((Employee.role == "admin") & Employee.active))


def mailbox_people(mailbox, *, besides=None):
    """Who hears about a mailbox: its owner, or every active admin for a company mailbox; not ``besides``."""
    people = [mailbox.owner_id] if mailbox.owner_id else [admin.id for admin in _admins()]
    skip = getattr(besides, "id", besides)
    return [person for person in people if person != skip]


# -- receivers ---------------------------------------------------------------------------------------------------

def _safely(receiver):
    """A receiver's failure is logged and never reaches the queue, the reply fetcher or the page that sent."""

    @wraps(receiver)
    def run(sender, **kwargs):
        try:
            receiver(sender, **kwargs)
        except Exception:
            log.exception("notification for %s %s failed", receiver.__name__, getattr(sender, "id", sender))

    return run


def _person_letter(letter):
    """The letter as stored, or None for the portal's own mail (nobody is told about a notification's fate)."""
    stored = Letter.get_or_none(Letter.id == letter.id)
    return stored if stored is not None and stored.origin == "" else None


@_safely
def on_letter_failed(letter, problem="", **_):
    stored = _person_letter(letter)
    if stored is not None:
        notify(stored.author_id, "letter_failed", about=stored.subject, detail=problem or stored.problem_code,
               target=f"letter:{stored.id}", letter=stored)


@_safely
def on_letter_bounced(letter, recipients=(), **_):
    stored = _person_letter(letter)
    if stored is not None:
        notify(stored.author_id, "letter_bounced", about=stored.subject, detail=", ".join(recipients),
               target=f"letter:{stored.id}", letter=stored)


@_safely
def on_reply_received(reply, **_):
    stored = _person_letter(reply.letter)
    if stored is not None:
        notify(stored.author_id, "reply_received", about=stored.subject, detail=reply.sender,
               target=f"reply:{reply.id}", letter=stored)


@_safely
def on_mailbox_needs_attention(mailbox, problem="", **_):
    for person in mailbox_people(mailbox):
        notify(person, "mailbox_needs_attention", about=mailbox.address, detail=problem,
               target=f"mailbox:{mailbox.id}", mailbox=mailbox)


@_safely
def on_mailbox_paused(mailbox, problem="", by=None, **_):
    detail = f"by:{by.name}" if by is not None else problem
    for person in mailbox_people(mailbox, besides=by):
        notify(person, "mailbox_paused", about=mailbox.address, detail=detail, target=f"mailbox:{mailbox.id}",
               mailbox=mailbox)
    waiting = (Letter.select(Letter.author, fn.COUNT(Letter.id), fn.MIN(Letter.id))
               .where((Letter.mailbox == mailbox.id) & Letter.state.in_(PENDING_STATES) & (Letter.origin == ""))
               .group_by(Letter.author).tuples())
    for author_id, count, first_id in waiting:
        notify(author_id, "letter_waiting", about=mailbox.address, detail=str(count), mailbox=mailbox,
               target=f"letter:{first_id}" if count == 1 else "outbox")


@_safely
def on_mailbox_assigned(mailbox, employee=None, **_):
    if employee is not None:
        notify(employee, "mailbox_assigned", about=mailbox.address, target=f"mailbox:{mailbox.id}", mailbox=mailbox)


@_safely
def on_mailbox_password_ending(mailbox, ending=None, **_):
    """Who hears about the mailbox (its owner, or the admins for a company one), each once however often the hourly
    warning sends it: a new owner is told too. The admins see every mailbox on their home page besides."""
    if ending is None:
        return
    told = {person for (person,) in Notification.select(Notification.recipient).where(
        (Notification.kind == "password_ending") & (Notification.mailbox == mailbox.id)).tuples()}
    for person in mailbox_people(mailbox):
        if person in told:
            continue
        notify(person, "password_ending", about=mailbox.address,
               detail=f"{ending.provider.key} {ending.ends.isoformat()}{' passed' if ending.passed else ''}",
               target=f"mailbox:{mailbox.id}",
               mailbox=mailbox)


_RECEIVERS = (
    (events.letter_failed, on_letter_failed),
    (events.letter_bounced, on_letter_bounced),
    (events.reply_received, on_reply_received),
    (events.mailbox_needs_attention, on_mailbox_needs_attention),
    (events.mailbox_paused, on_mailbox_paused),
    (events.mailbox_assigned, on_mailbox_assigned),
    (events.mailbox_password_ending, on_mailbox_password_ending),
)


def listen():
    """Connect the notification centre to the domain events (again is harmless: one connection each)."""
    for signal, receiver in _RECEIVERS:
        signal.connect(receiver, weak=False)
