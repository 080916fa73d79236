"""A mailbox's health: Working, Warning, Paused by the portal or by a person, and the background re-check.

Every mailbox in use is checked again in the background (sign-in and envelope, no letter: the
engine of Test account), once per PORTAL_MAILBOX_RECHECK_HOURS, each at its own moment of the
period so that the checks spread evenly. A letter sent since the last check counts as one. A failed
check makes the mailbox Warning; refused sign-ins are counted in one row (``Mailbox.sign_in_failures``)
by checks and sends alike, and the third in a row pauses it, before the provider's own lock-out or
fail2ban bans the portal's address. A passing check or Test account resumes a mailbox the portal
paused. What changed is told through ``portal.events``; the notification centre and the webhooks
listen there. No Flask here: the huey tasks, the command line and the tests call these directly.
"""
from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from peewee import JOIN, fn

from portal import events
from portal.db import database, writing
from portal.mail.problems import Problem
from portal.models import AuditEvent, Letter, Mailbox, MailboxInbox, utcnow
from portal.models.health import MailboxHealth
from portal.models.oauth import MailboxGrant
from portal.oauth import grants
from portal.oauth.grants import NEEDS_RECONNECT

log = logging.getLogger("portal.health")

WORKING = "working"
WARNING = "warning"
PAUSED_BY_PORTAL = "paused_by_portal"
PAUSED_BY_PERSON = "paused_by_person"
STATES = (WORKING, WARNING, PAUSED_BY_PORTAL, PAUSED_BY_PERSON)

SIGN_IN_FAILURES_PAUSE = 3  # refused sign-ins in a row, checks and sends together, after which the portal pauses it
CERTIFICATE_WARNING = datetime.timedelta(days=14)
CERTIFICATE_EXPIRING = "certificate_expiring"  # the catalogue's code for a certificate about to end
SETTINGS_UNREADABLE = "settings_unreadable"
# The Weyl sequence's step (the golden ratio's fraction): mailbox n's moment in the period is n * STEP mod 1. A hash
# of the id spreads them at random, and random is clumpy (some minutes of 1,000 mailboxes over six hours got three
# times the average); consecutive multiples of an irrational number leave gaps of at most three sizes.
STEP = 0.6180339887498949


@dataclass(frozen=True)
class Health:
    """What the pages and the API show of a mailbox's health."""

    mailbox_id: int
    state: str
    problem: Problem | None
    last_check_at: datetime.datetime | None
    last_send_at: datetime.datetime | None
    last_incoming_at: datetime.datetime | None
    certificate_expires_at: datetime.datetime | None

    @property
    def paused(self) -> bool:
        return self.state in (PAUSED_BY_PORTAL, PAUSED_BY_PERSON)

    def to_dict(self, lang: str = "en") -> dict:
        """The API's ``health`` object."""
        def stamp(value):
            return value.isoformat() + "Z" if value else None

        return {"state": self.state, "last_check_at": stamp(self.last_check_at),
                "last_send_at": stamp(self.last_send_at), "last_incoming_at": stamp(self.last_incoming_at),
                "certificate_expires_at": stamp(self.certificate_expires_at),
                "problem": self.problem.to_dict(lang) if self.problem else None}


def state_of(mailbox, record: MailboxHealth | None, last_send_at=None, now=None, *,
             needs_reconnect: bool = False) -> tuple[str, Problem | None]:
    """The mailbox's state and the problem behind it (None when Working or paused by a person);
    ``needs_reconnect``: its sign-in with the provider (OAuth) stopped being honoured."""
    now = now or utcnow()
    if not mailbox.active:
        if mailbox.paused_problem:
            return PAUSED_BY_PORTAL, Problem(code=mailbox.paused_problem, stage="", server_reply=mailbox.paused_reply)
        return PAUSED_BY_PERSON, None
    if needs_reconnect:  # its letters wait until the owner presses Reconnect (portal/oauth/grants.py)
        return WARNING, Problem(code=NEEDS_RECONNECT, stage="", server_reply="")
    if record is not None and record.failed_checks:
        # A letter sent after the failed check shows the mailbox works again.
        if last_send_at is None or record.last_check_at is None or last_send_at < record.last_check_at:
            return WARNING, record.problem()
    if mailbox.sign_in_failures:
        problem = record.problem() if record is not None else None
        return WARNING, problem or Problem(code="auth_failed", stage="smtp.login", server_reply="")
    expires = record.certificate_expires_at if record is not None else None
    if expires is not None and expires - now < CERTIFICATE_WARNING:
        return WARNING, Problem(code=CERTIFICATE_EXPIRING, stage="", server_reply=f"{expires:%Y-%m-%d %H:%M} UTC")
    return WORKING, None


def last_sends(mailbox_ids) -> dict:
    """{mailbox id: when its last letter was sent}, read from the letters' (mailbox, sent_at) index."""
    ids = list(mailbox_ids)
    if not ids:
        return {}
    rows = (Letter.select(Letter.mailbox, fn.MAX(Letter.sent_at)).where(
        Letter.mailbox.in_(ids) & Letter.sent_at.is_null(False)).group_by(Letter.mailbox).tuples())
    return {mailbox_id: _as_datetime(sent_at) for mailbox_id, sent_at in rows}


def health_of(mailboxes, now=None) -> dict:
    """{mailbox id: Health} for these mailboxes, in four queries whatever their number."""
    mailboxes = list(mailboxes)
    ids = [mailbox.id for mailbox in mailboxes]
    if not ids:
        return {}
    records = {row.mailbox_id: row for row in MailboxHealth.select().where(MailboxHealth.mailbox.in_(ids))}
    inboxes = {row.mailbox_id: row for row in MailboxInbox.select().where(MailboxInbox.mailbox.in_(ids))}
    sends = last_sends(ids)
    reconnect = set(MailboxGrant.select(MailboxGrant.mailbox).where(
        MailboxGrant.mailbox.in_(ids) & MailboxGrant.needs_reconnect).scalars())
    found = {}
    for mailbox in mailboxes:
        record, inbox = records.get(mailbox.id), inboxes.get(mailbox.id)
        state, problem = state_of(mailbox, record, sends.get(mailbox.id), now, needs_reconnect=mailbox.id in reconnect)
        found[mailbox.id] = Health(
            mailbox_id=mailbox.id, state=state, problem=problem,
            last_check_at=record.last_check_at if record else None, last_send_at=sends.get(mailbox.id),
            last_incoming_at=inbox.last_success_at if inbox and mailbox.has_incoming else None,
            certificate_expires_at=record.certificate_expires_at if record else None)
    return found


def health(mailbox, now=None) -> Health:
    """One mailbox's Health."""
    return health_of([mailbox], now)[mailbox.id]


# ---------------------------------------------------------------- incoming mail and waiting letters

FETCH_NOW_EVERY = datetime.timedelta(minutes=1)  # "Fetch now" at most this often per mailbox


@dataclass(frozen=True)
class IncomingHealth:
    """When a mailbox's incoming server was last read, how many replies that read brought, and its last problem."""

    last_read_at: datetime.datetime | None  # the last good read
    last_tried_at: datetime.datetime | None  # the last attempt, good or not
    replies_brought: int
    problem: Problem | None
    fetch_asked_at: datetime.datetime | None


def incoming_health(mailbox) -> IncomingHealth | None:
    """The mailbox's incoming health, if it receives replies (None otherwise)."""
    from portal.models import Reply

    if not (mailbox.receive_replies and mailbox.has_incoming):
        return None
    inbox = MailboxInbox.get_or_none(MailboxInbox.mailbox == mailbox.id)
    record = MailboxHealth.get_or_none(MailboxHealth.mailbox == mailbox.id)
    brought = 0
    if inbox is not None and inbox.last_success_at is not None:
        # A read stamps its start before it stores anything: what was stored since then is what it brought.
        brought = Reply.select().where((Reply.mailbox == mailbox.id)
                                       & (Reply.fetched_at >= inbox.last_success_at)).count()
    return IncomingHealth(last_read_at=inbox.last_success_at if inbox else None,
                          last_tried_at=inbox.last_fetch_at if inbox else None, replies_brought=brought,
                          problem=inbox.problem() if inbox else None,
                          fetch_asked_at=record.fetch_asked_at if record else None)


def ask_fetch(mailbox, now=None) -> datetime.datetime | None:
    """Note a "Fetch now" unless one was asked within FETCH_NOW_EVERY; returns None if taken, else when it may be
    asked again."""
    now = now or utcnow()
    with writing():
        record = _record_row(mailbox.id)
        if record.fetch_asked_at is not None and record.fetch_asked_at > now - FETCH_NOW_EVERY:
            return record.fetch_asked_at + FETCH_NOW_EVERY
        record.fetch_asked_at = now
        record.save()
    return None


def waiting_letters(mailbox_ids=None) -> dict:
    """{(mailbox id, problem code): letters waiting (queued or deferred)} for these mailboxes (or all)."""
    waiting = Letter.state.in_(("queued", "deferred"))
    if mailbox_ids is not None:
        waiting &= Letter.mailbox.in_(list(mailbox_ids))
    rows = (Letter.select(Letter.mailbox, Letter.problem_code, fn.COUNT(Letter.id)).where(waiting)
            .group_by(Letter.mailbox, Letter.problem_code).tuples())
    return {(mailbox_id, code): count for mailbox_id, code, count in rows}


# ---------------------------------------------------------------- what checks and sends found

def record_check(mailbox, result, now=None, *, token: bool = False) -> Health:
    """Store what a check (background or Test account) found and move the mailbox's state; tell what changed.

    A passing check clears the count of refused sign-ins and resumes a mailbox the portal paused; a failed
    one counts towards Warning, and a refused sign-in towards the pause, unless it signed in with a provider's
    ``token`` (a refused token means reconnecting, which the OAuth grant tracks, never a pause).
    """
    now = now or utcnow()
    before = health(mailbox, now)
    problem = result.problem
    with writing():
        record = _record_row(mailbox.id)
        record.last_check_at, record.last_check_ok = now, result.ok
        expires = result.certificate_expires
        if expires:
            record.certificate_expires_at = datetime.datetime.fromisoformat(expires)
        if result.ok:
            record.failed_checks, record.problem_code, record.problem_stage, record.server_reply = 0, "", "", ""
        else:
            record.failed_checks += 1
            record.problem_code, record.problem_stage = problem.code, problem.stage or ""
            record.server_reply = (problem.server_reply or "")[:500]
        record.save()
        if result.ok:
            _resume_after_pass(mailbox, now)
    if not result.ok and is_refused_sign_in(problem, token=token):
        sign_in_refused(mailbox, problem, now, tell=False)
    mailbox = Mailbox.get_by_id(mailbox.id)
    after = health(mailbox, now)
    _tell(mailbox, before, after)
    return after


def is_refused_sign_in(problem: Problem | None, *, token: bool = False) -> bool:
    """Whether the server refused the sign-in for good (a wrong password, a revoked app password): what counts
    towards the pause. Never when it signed in with a provider's ``token``: a refused token means reconnecting,
    which the OAuth grant tracks (portal.oauth.grants)."""
    if token or problem is None or not (problem.stage or "").endswith(".login"):
        return False
    if problem.smtp_code:
        return problem.smtp_code // 100 == 5
    return not problem.temporary


def sign_in_refused(mailbox, problem: Problem, now=None, *, tell: bool = True) -> bool:
    """Count a refused sign-in (a send's or a check's); the third in a row pauses the mailbox. True if it paused.

    The reason is kept on the mailbox, where its owner and the admins see it, so that a changed password does
    not go on costing failures at the provider's fail2ban. The first refusal makes the mailbox Warning, which
    is told unless ``tell`` is false (a check tells what it changed itself).
    """
    now = now or utcnow()
    paused = 0
    with writing():
        Mailbox.update(sign_in_failures=Mailbox.sign_in_failures + 1).where(Mailbox.id == mailbox.id).execute()
        failures, active = Mailbox.select(Mailbox.sign_in_failures, Mailbox.active).where(
            Mailbox.id == mailbox.id).tuples().get()
        record = _record_row(mailbox.id)
        record.problem_code, record.problem_stage = problem.code, problem.stage or ""
        record.server_reply = (problem.server_reply or "")[:500]
        record.save()
        if failures >= SIGN_IN_FAILURES_PAUSE:
            paused = (Mailbox.update(active=False, paused_problem=problem.code,
                                     paused_reply=problem.server_reply[:500], updated_at=now)
                      .where((Mailbox.id == mailbox.id) & Mailbox.active).execute())
        if paused:
            AuditEvent.create(mailbox=mailbox.id, address=mailbox.address, actor=None, owner=mailbox.owner_id,
                              action="paused", changed_fields='["active"]', at=now,
                              detail=f"{failures} refused sign-ins in a row: {problem.server_reply}"[:500])
    if paused:
        events.mailbox_paused.send(mailbox, problem=problem.code, by=None)
    elif tell and failures == 1 and active:
        events.mailbox_needs_attention.send(mailbox, problem=problem.code)
    return bool(paused)


def signed_in(mailbox) -> None:
    """The provider took the sign-in: refusals are counted from nought again."""
    Mailbox.update(sign_in_failures=0).where(Mailbox.id == mailbox.id).execute()


def _resume_after_pass(mailbox, now) -> bool:
    """Inside the check's transaction: clear the refusals, and resume the mailbox if the portal paused it."""
    resumed = (Mailbox.update(active=True, paused_problem="", paused_reply="", sign_in_failures=0, updated_at=now)
               .where((Mailbox.id == mailbox.id) & ~Mailbox.active & (Mailbox.paused_problem != "")).execute())
    if resumed:
        AuditEvent.create(mailbox=mailbox.id, address=mailbox.address, actor=None, owner=mailbox.owner_id,
                          action="resumed", changed_fields='["active"]', at=now,
                          detail="the account check passed again")
    else:
        Mailbox.update(sign_in_failures=0).where((Mailbox.id == mailbox.id) & (Mailbox.sign_in_failures != 0)).execute()
    return bool(resumed)


def _tell(mailbox, before: Health, after: Health) -> None:
    """Send the events for a change of state (the pause itself is told by ``sign_in_refused``)."""
    if after.state == WORKING and before.state != WORKING:
        events.mailbox_recovered.send(mailbox)
    elif after.state == WARNING and (before.state != WARNING or _code(before) != _code(after)):
        events.mailbox_needs_attention.send(mailbox, problem=_code(after))


def _code(found: Health) -> str:
    return found.problem.code if found.problem else ""


def _record_row(mailbox_id) -> MailboxHealth:
    record = MailboxHealth.get_or_none(MailboxHealth.mailbox == mailbox_id)
    return record if record is not None else MailboxHealth(mailbox=mailbox_id)


def _as_datetime(value):
    """A timestamp as peewee read it from an aggregate (SQLite hands MAX() back as text)."""
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value)
    return value


# ---------------------------------------------------------------- the background re-check

def slot_of(mailbox_id: int, period: datetime.timedelta) -> datetime.timedelta:
    """The mailbox's own moment within each period."""
    return datetime.timedelta(seconds=round(((mailbox_id * STEP) % 1.0) * period.total_seconds()))


def last_slot(mailbox_id: int, now: datetime.datetime, period: datetime.timedelta) -> datetime.datetime:
    """The latest moment, at or before ``now``, at which the mailbox was to be checked."""
    epoch = datetime.datetime(2000, 1, 1)
    start = epoch + (now - epoch) // period * period + slot_of(mailbox_id, period)
    return start if start <= now else start - period


def checked_at(mailbox, record: MailboxHealth | None, last_send_at) -> datetime.datetime | None:
    """When the mailbox was last known to work or not: a check, a passed Test account or a letter sent."""
    moments = [moment for moment in (record.last_check_at if record else None, last_send_at,
                                     mailbox.last_passed_test_at) if moment is not None]
    return max(moments, default=None)


def _checked(mailbox):
    """Mailboxes the re-check looks after: tested, and active or paused by the portal (a pass resumes them)."""
    return mailbox.active | (mailbox.paused_problem != "")


def due_for_check(now: datetime.datetime, period: datetime.timedelta) -> list[int]:
    """Ids of the mailboxes whose moment in the period has come since they were last checked (or sent)."""
    rows = (Mailbox.select(Mailbox.id, Mailbox.last_passed_test_at, MailboxHealth.last_check_at)
            .join(MailboxHealth, JOIN.LEFT_OUTER, on=(MailboxHealth.mailbox == Mailbox.id))
            .where(_checked(Mailbox) & Mailbox.last_passed_test_at.is_null(False)).tuples())
    candidates = {}
    for mailbox_id, tested_at, check_at in rows:
        latest = max((m for m in (_as_datetime(tested_at), _as_datetime(check_at)) if m is not None), default=None)
        slot = last_slot(mailbox_id, now, period)
        if latest is None or latest < slot:
            candidates[mailbox_id] = slot
    sends = last_sends(candidates)
    return sorted(mailbox_id for mailbox_id, slot in candidates.items()
                  if sends.get(mailbox_id) is None or sends[mailbox_id] < slot)


def check_mailbox(mailbox_id: int, mail_config, *, period: datetime.timedelta | None = None, now=None,
                  resolver=None):
    """Check one mailbox in the background (sign-in and envelope, no letter) and record it; returns its Health.

    With ``period``, only if it is still due (another worker may just have checked it): None otherwise. With a
    ``resolver`` (a dnspython Resolver), its domain's deliverability answers are renewed too when they are old.
    """
    from portal.mail.check import CheckResult, check_account
    from portal.secret_box import SecretError

    now = now or utcnow()
    mailbox = Mailbox.get_or_none(Mailbox.id == mailbox_id)
    if mailbox is None or not (mailbox.active or mailbox.paused_problem):
        return None
    if period is not None and mailbox_id not in _still_due(mailbox, now, period):
        return None
    token = False
    try:
        settings = grants.settings_for(mailbox)  # a provider's token refreshed first, as the queue does
    except SecretError:
        result = CheckResult(ok=False, stages=[], problem=Problem(code=SETTINGS_UNREADABLE, stage="", server_reply=""))
    except (grants.NeedsReconnecting, grants.TokenUnavailable) as error:  # Warning, never a refused sign-in
        code = NEEDS_RECONNECT if isinstance(error, grants.NeedsReconnecting) else grants.TOKEN_UNAVAILABLE
        result = CheckResult(ok=False, stages=[], problem=Problem(code=code, stage="", server_reply=""))
    else:
        token = bool(settings.smtp.sasl)
        result = check_account(settings, mail_config)
    found = record_check(mailbox, result, now, token=token)
    if resolver is not None:
        from portal.deliverability import mailbox_checklist

        mailbox_checklist(mailbox, resolver)
    log.info("mailbox %s checked: %s%s", mailbox.address, found.state,
             f" ({found.problem.code})" if found.problem else "")
    return found


def _still_due(mailbox, now, period) -> set:
    record = MailboxHealth.get_or_none(MailboxHealth.mailbox == mailbox.id)
    latest = checked_at(mailbox, record, last_sends([mailbox.id]).get(mailbox.id))
    return {mailbox.id} if latest is None or latest < last_slot(mailbox.id, now, period) else set()


def recheck_period(config) -> datetime.timedelta:
    """PORTAL_MAILBOX_RECHECK_HOURS as a period (at least a minute)."""
    hours = float(config.get("PORTAL_MAILBOX_RECHECK_HOURS") or 6)
    return max(datetime.timedelta(minutes=1), datetime.timedelta(hours=hours))


def register_health_checks(huey, config, mail_config):
    """Every minute, the mailboxes whose moment came are checked, each in a task of its own, one check per
    mailbox at a time (huey's lock) whatever the number of workers."""
    from huey import crontab
    from huey.exceptions import TaskLockedException

    from portal.deliverability import configured_resolver

    period = recheck_period(config)

    @huey.task(name="portal.check_mailbox")
    def check_mailbox_task(mailbox_id):
        """Check one mailbox, unless another worker is checking it right now or has just done so."""
        try:
            with huey.lock_task(f"portal.check_mailbox.{mailbox_id}"), database.connection_context():
                found = check_mailbox(mailbox_id, mail_config(), period=period,
                                      resolver=configured_resolver(config))
        except TaskLockedException:
            return None
        return None if found is None else found.state

    @huey.task(name="portal.fetch_replies_now")
    def fetch_now_task(mailbox_id):
        """Fetch one mailbox's replies now (its owner or an admin asked)."""
        from portal.letters.replies import fetch_replies

        reports = fetch_replies(mail_config(), mailbox_id=mailbox_id)
        return {report.address: len(report.replies) for report in reports}

    @huey.periodic_task(crontab(minute="*"), name="portal.recheck_mailboxes")
    def recheck_mailboxes():
        """Every minute: one check task for each mailbox whose moment in the period has come."""
        with database.connection_context():
            due = due_for_check(utcnow(), period)
        for mailbox_id in due:
            check_mailbox_task(mailbox_id)
        return len(due)

    return check_mailbox_task, recheck_mailboxes, fetch_now_task
