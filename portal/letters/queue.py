"""The sending pass: claim due letters, send each mailbox's over one SMTP connection, record what happened.

States: queued -> sending -> sent | deferred | failed | uncertain. A letter is claimed with a
lease (``claims``); once DATA is sent, before the body and final dot can leave, the letter is
marked, so a letter found marked after its lease ran out becomes "uncertain" instead of going
twice. One SMTP transaction is ``deliver``; outcomes, back-off and retry are ``outcomes``; the
sending limits are ``limits``. A pass has a deadline of its own: it renews its lease while it
works, stops taking letters at the deadline, cuts a session stalled past it, gives back what it
did not reach and gives a mailbox whose server stalled a back-off of its own. Asked to stop
(SIGTERM in the worker), it finishes the transaction in progress and gives the rest back. No
Flask here: huey tasks, the CLI and the tests call ``process_due_letters`` directly.
"""
from __future__ import annotations

import datetime
import random
import smtplib
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from peewee import fn

from portal import mailbox_health
from portal.db import database
from portal.letters.claims import NO_MAILBOX, REACHED_DATA, claim, claimed_recipients
from portal.letters.deliver import LEASE_LOST, Delivery, deliver, no_delay
from portal.letters.limits import Limits
from portal.letters.outcomes import (ALL_REFUSED, MAILBOX_GONE, MAILBOX_PAUSED, MAILBOX_STALLED, MAILBOX_UNTESTED,
                                     SENDER_NOT_ALLOWED, SETTINGS_UNREADABLE, WORKER_LOST, Recorder, hold,
                                     queue_problem)
from portal.mail.connection import open_smtp
from portal.mail.deadline import Deadline
from portal.mail.errors import MailError
from portal.mail.problems import Problem
from portal.mail.settings import MailConfig
from portal.models import Letter, Mailbox, utcnow
from portal.oauth import grants


@dataclass(frozen=True)
class QueuePolicy:
    """How hard and how fast the queue tries: retry budget, back-off, lease, deadline and sending limits."""

    max_attempts: int = 8
    max_age: float = 24 * 3600.0  # seconds since the letter was queued
    retry_base: float = 60.0  # first back-off, doubled per attempt
    retry_max: float = 3600.0
    lease: float = 300.0
    pass_deadline: float = 120.0  # seconds a pass may take; 0: none. Kept well under the lease.
    stall_backoff: float = 300.0  # seconds a mailbox whose server stalled past the deadline waits
    mailbox_per_minute: int = 20  # 0: no limit
    recipient_limit: int = 50  # letters to one address ...
    recipient_window: float = 600.0  # ... per this many seconds; 0: no limit
    batch_size: int = 200

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> "QueuePolicy":
        """Read PORTAL_LETTER_* and the limit settings from a plain mapping (e.g. Flask's config)."""
        names = {
            "max_attempts": ("PORTAL_LETTER_MAX_ATTEMPTS", int),
            "max_age": ("PORTAL_LETTER_MAX_AGE", float),
            "retry_base": ("PORTAL_LETTER_RETRY_BASE", float),
            "retry_max": ("PORTAL_LETTER_RETRY_MAX", float),
            "lease": ("PORTAL_LETTER_LEASE", float),
            "pass_deadline": ("PORTAL_LETTER_PASS_DEADLINE", float),
            "stall_backoff": ("PORTAL_LETTER_STALL_BACKOFF", float),
            "mailbox_per_minute": ("PORTAL_MAILBOX_LETTERS_PER_MINUTE", int),
            "recipient_limit": ("PORTAL_RECIPIENT_LETTERS_LIMIT", int),
            "recipient_window": ("PORTAL_RECIPIENT_LIMIT_WINDOW", float),
            "batch_size": ("PORTAL_LETTER_BATCH_SIZE", int),
        }
        values = {}
        for attribute, (key, kind) in names.items():
            if mapping.get(key) not in (None, ""):
                values[attribute] = kind(mapping[key])
        return cls(**values)

    def retry_delay(self, attempt: int, rng: random.Random | Any = random) -> float:
        """Seconds to wait after the given failed attempt: doubling, capped, with half of it random (jitter)."""
        ceiling = min(self.retry_max, self.retry_base * 2 ** max(0, attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class SendReport:
    """What one pass did: how many letters ended in each state, and when the next one is due."""

    outcomes: Counter = field(default_factory=Counter)
    letters: dict = field(default_factory=lambda: defaultdict(list))
    connections: int = 0
    next_due: datetime.datetime | None = None
    stopped: str = ""  # "deadline" or "asked" when the pass stopped before the queue was empty

    def add(self, letter_id: int, outcome: str) -> None:
        self.outcomes[outcome] += 1
        self.letters[outcome].append(letter_id)

    def wake_at(self, when: datetime.datetime) -> None:
        if self.next_due is None or when < self.next_due:
            self.next_due = when

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())


class _Pass:
    """When the pass must stop: its deadline, or a request to stop (the worker's SIGTERM)."""

    def __init__(self, policy: QueuePolicy, stop: threading.Event | None, mail_timeout: float):
        self.deadline = time.monotonic() + policy.pass_deadline if policy.pass_deadline > 0 else None
        self.stop = stop
        # Every session the pass opens shares one total deadline. A server that trickles its reply a byte at a
        # time defeats every per-read timeout: at the pass's deadline the pass takes no more letters, and one
        # read timeout later a session still busy is cut (a healthy server has finished its letter by then).
        self.sessions = Deadline((policy.pass_deadline or policy.lease) + mail_timeout)

    def over(self, report: SendReport) -> bool:
        if self.stop is not None and self.stop.is_set():
            report.stopped = "asked"
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            report.stopped = "deadline"
        return bool(report.stopped)

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def process_due_letters(mail_config: MailConfig, policy: QueuePolicy | None = None, *,
                        mailbox_id: int | None = None, clock: Callable[[], datetime.datetime] = utcnow,
                        settings_for: Callable[[Mailbox], Any] | None = None, rng: Any = random,
                        limit: int | None = None, stop: threading.Event | None = None) -> SendReport:
    """Send every letter that is due now (optionally only one mailbox's); returns what happened.

    ``clock`` gives naive-UTC "now" (tests move it forward instead of sleeping);
    ``settings_for(mailbox)`` gives its MailboxSettings (default ``mailbox.to_settings()``);
    ``stop`` set (by the worker's signal handler) ends the pass after the transaction in progress.
    Claims come in batches; a mailbox's SMTP connection stays open from one batch to the next.
    """
    policy = policy or QueuePolicy()
    settings_for = settings_for or grants.settings_for
    report = SendReport()
    run = _Pass(policy, stop, mail_config.timeout)
    with database.connection_context(), _Connections() as connections:
        recorder = Recorder(policy, rng, report)
        try:
            while (limit is None or report.total < limit) and not run.over(report):
                size = min(policy.batch_size, limit - report.total) if limit else policy.batch_size
                lease, letters = claim(policy.lease, size, now=clock(), mailbox_id=mailbox_id)
                if not letters:
                    break
                groups: dict[int | None, list] = defaultdict(list)
                for letter in letters:
                    groups[letter.mailbox_id].append(letter)
                connections.keep_only(groups)
                recipients = claimed_recipients(lease.token)
                try:
                    for group_mailbox, group in groups.items():
                        if run.over(report):
                            break
                        _send_group(group_mailbox, group, lease, recipients, mail_config, policy, clock,
                                    settings_for, recorder, connections, run)
                finally:
                    # What the pass did not reach (asked to stop, past its deadline) is given back, due now.
                    lease.release([letter.id for letter in letters], clock())
        finally:
            run.sessions.close()
        waiting = Letter.state.in_(("queued", "deferred"))
        if mailbox_id is not None and mailbox_id != NO_MAILBOX:
            waiting &= Letter.mailbox == mailbox_id
        upcoming = Letter.select(fn.MIN(Letter.next_attempt_at)).where(waiting).scalar()
    if upcoming is not None:
        report.wake_at(upcoming)
    return report


def due_mailboxes(now: datetime.datetime) -> list:
    """The mailboxes that have letters due now (None for letters whose mailbox is gone): one pass each."""
    from portal.letters.claims import due

    return [mailbox_id for (mailbox_id,) in Letter.select(Letter.mailbox).where(due(now)).distinct().tuples()]


class _Connection:
    """One mailbox's SMTP session, kept across claim batches within a pass, with the mailbox row it was opened for."""

    FRESH_SECONDS = 5.0  # how long a pass trusts the mailbox row it read (paused? settings changed?)

    def __init__(self):
        self.stack = ExitStack()
        self.smtp: smtplib.SMTP | None = None
        self.reconnects = 0
        self.mailbox = None
        self.settings = None
        self.read_at = None
        self.waits_for = None  # MAILBOX_PAUSED or MAILBOX_UNTESTED while the mailbox may not send
        self.refused = None  # the Problem of this pass's failed attempt to connect and sign in
        self.candidate = None  # the mailbox as the sender rule sees it (projects, access list)
        self.allowed: dict = {}  # (author id, project id) -> may_use, for as long as the row read holds

    def load(self, mailbox_id, settings_for):
        """The mailbox row and its settings, read again when older than FRESH_SECONDS; raises what settings_for raises.

        Also decides, once per read rather than per letter, whether the mailbox may send at all: it must
        be active and have passed its test with exactly these settings (``tested`` alone only says some
        test passed once). A session opened with settings that have since changed is closed: the next
        letter connects anew, through the guard, with the new ones.
        """
        if self.read_at is None or time.monotonic() - self.read_at > self.FRESH_SECONDS:
            self.mailbox = Mailbox.get_or_none(Mailbox.id == mailbox_id)
            token_waits = None
            try:
                settings = settings_for(self.mailbox) if self.mailbox is not None and self.mailbox.active else None
            except grants.NeedsReconnecting:  # its owner must sign in with the provider again
                settings, token_waits = None, grants.NEEDS_RECONNECT
            except grants.TokenUnavailable:  # the provider could not give a new token just now
                settings, token_waits = None, grants.TOKEN_UNAVAILABLE
            if self.smtp is not None and settings != self.settings:
                self.drop()
            self.settings, self.read_at = settings, time.monotonic()
            self.waits_for, self.candidate, self.allowed = None, None, {}
            if self.mailbox is not None:
                if not self.mailbox.active:
                    self.waits_for = MAILBOX_PAUSED
                elif token_waits:
                    self.waits_for = token_waits
                elif not tested_for(self.mailbox, settings):
                    self.waits_for = MAILBOX_UNTESTED
        return self.mailbox, self.settings

    def may_send(self, letters) -> dict:
        """{letter id: whether its author may still send from this mailbox in its project} (the sender rule's
        may_use), with the rule's rows read once per mailbox read and each author once."""
        from portal.models import Employee
        from portal.sender import EmployeeRow, ProjectRow, load_candidate, may_use

        if self.candidate is None:
            self.candidate = load_candidate(self.mailbox)
        people = [letter for letter in letters if letter.origin != "portal"]  # the portal's own mail: always
        wanted = {(letter.author_id, letter.project_id) for letter in people} - set(self.allowed)
        if wanted:
            authors = {row[0]: EmployeeRow(id=row[0], name=row[1], department=row[2] or "") for row in
                       Employee.select(Employee.id, Employee.name, Employee.department)
                       .where(Employee.id.in_({author for author, _ in wanted})).tuples()}
            for author, project in wanted:
                self.allowed[author, project] = author in authors and may_use(
                    authors[author], self.candidate, ProjectRow(project) if project is not None else None)
        return {letter.id: letter.origin == "portal" or self.allowed[letter.author_id, letter.project_id]
                for letter in letters}

    def drop(self) -> None:
        self.stack.close()
        self.smtp = None


class _Connections(dict):
    """The pass's open SMTP sessions by mailbox id; every one is closed (QUIT) when the pass ends."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for connection in self.values():
            connection.drop()
        self.clear()

    def keep_only(self, mailbox_ids) -> None:
        """Close the sessions of mailboxes the next batch does not use: no idle connections pile up."""
        for mailbox_id in [m for m in self if m not in mailbox_ids]:
            self.pop(mailbox_id).drop()

    def of(self, mailbox_id) -> _Connection:
        if mailbox_id not in self:
            self[mailbox_id] = _Connection()
        return self[mailbox_id]


def _send_group(mailbox_id, letters, lease, recipients, mail_config, policy, clock, settings_for, recorder,
                connections, run):
    """Send one mailbox's claimed letters over its connection (reconnecting once after a drop)."""
    token = lease.token
    now = clock()
    fresh = []
    for letter in letters:
        if letter.phase == REACHED_DATA:
            # Claimed again after a lease ran out mid-DATA: it may have arrived. Never send it twice.
            recorder.add(letter, Delivery("uncertain", queue_problem(WORKER_LOST)), now, token,
                         number=letter.attempts, outcome_label="lost")
        else:
            fresh.append(letter)
    if not fresh:
        return
    connection = connections.of(mailbox_id)
    try:
        mailbox, settings = connection.load(mailbox_id, settings_for) if mailbox_id else (None, None)
    except Exception as error:  # a secret that no key opens any more, or broken stored settings
        connections.pop(mailbox_id).drop()
        problem = Problem(code=SETTINGS_UNREADABLE, stage="smtp.send", server_reply=type(error).__name__)
        for letter in fresh:
            recorder.add(letter, Delivery("failed", problem), now, token)
        return
    if mailbox is None:
        for letter in fresh:
            recorder.add(letter, Delivery("failed", queue_problem(MAILBOX_GONE)), now, token)
        return
    waits_for, until = connection.waits_for, now + datetime.timedelta(seconds=policy.retry_base)
    if not waits_for and mailbox.stalled_until is not None and mailbox.stalled_until > now:
        waits_for, until = MAILBOX_STALLED, mailbox.stalled_until
    if waits_for:
        # Paused, changed since its last passed test, or its server stalled a moment ago: the letters wait (a
        # person resumes or tests the mailbox, the back-off passes), up to the age budget.
        for letter in fresh:
            hold(letter, token, waits_for, until, now, policy, recorder.report)
        return
    allowed = connection.may_send(fresh)
    if not all(allowed.values()):
        # The author lost the right to this mailbox (access, project, ownership): that will not pass by
        # itself, so the letter fails at once with the reason; Retry checks again.
        for letter in [letter for letter in fresh if not allowed[letter.id]]:
            recorder.add(letter, Delivery("failed", queue_problem(SENDER_NOT_ALLOWED)), now, token,
                         number=letter.attempts, outcome_label="failed")
        fresh = [letter for letter in fresh if allowed[letter.id]]
        if not fresh:
            return

    limits = Limits.load(mailbox.id, [r.address for letter in fresh for r in recipients[letter.id]], now, policy)
    for index, letter in enumerate(fresh):
        if run.over(recorder.report):
            return  # the rest is given back by the pass
        now = clock()
        if not lease.holds(letter.id, now):
            # Another worker claimed it after this one's lease ran out: it is theirs to send. Nothing is
            # written, not even a result (the token no longer matches).
            recorder.report.add(letter.id, LEASE_LOST)
            continue
        pending = [r for r in recipients[letter.id] if r.status != "accepted" and r.status != "refused"]
        if not pending:
            # Nothing left to send (a retry of a letter every recipient answered): the state follows the
            # recipients' answers, and no attempt is counted, since none was made.
            if any(r.status == "accepted" for r in recipients[letter.id]):
                recorder.add(letter, Delivery("sent"), now, token, number=letter.attempts)
            else:
                recorder.add(letter, Delivery("failed", queue_problem(ALL_REFUSED)), now, token,
                             number=letter.attempts, outcome_label="failed")
            continue
        held = limits.hold_until([r.address for r in pending], now)
        if held is not None:
            reason, until = held
            hold(letter, token, reason, until, now, policy, recorder.report)
            continue
        if connection.smtp is None:
            try:
                if connection.refused is not None:  # one attempt per pass: no second try after a failure
                    raise MailError(connection.refused)
                session = open_smtp(settings, mail_config, deadline=run.sessions)
                connection.smtp = connection.stack.enter_context(session)
                recorder.report.connections += 1
                no_delay(connection.smtp)
                if mailbox.sign_in_failures:
                    mailbox_health.signed_in(mailbox)
            except MailError as error:
                # The server cannot be reached or refuses the sign-in: the same for every letter left.
                connection.drop()
                problem, first = error.problem, connection.refused is None
                connection.refused = problem
                sign_in = problem.stage == "smtp.login"
                token_waits = _token_refused(mailbox, settings) if first and sign_in and settings.smtp.sasl else None
                if token_waits:
                    # The provider no longer honours the grant: the letters wait for its owner to reconnect
                    # (up to the age budget), without counting attempts.
                    until = clock() + datetime.timedelta(seconds=policy.retry_base)
                    for rest in fresh[index:]:
                        hold(rest, token, token_waits, until, clock(), policy, recorder.report)
                    return
                for rest in fresh[index:]:
                    # A refused sign-in is the mailbox's problem, not the letter's: the letters wait for it.
                    kind = "deferred" if problem.temporary or sign_in else "failed"
                    recorder.add(rest, Delivery(kind, problem, connection_broken=True), clock(), token,
                                 mailbox=mailbox)
                if first and mailbox_health.is_refused_sign_in(problem, token=bool(settings.smtp.sasl)):
                    # Counted with the background checks' refusals: the third in a row pauses the mailbox.
                    mailbox_health.sign_in_refused(mailbox, problem, clock())
                elif first and problem.code == "timeout":
                    _stalled(mailbox, clock(), policy)
                return
        result = deliver(connection.smtp, letter.from_address, [r.address for r in pending],
                         letter.raw_message.encode("ascii"), lambda: lease.mark(letter.id))
        if result.outcome == LEASE_LOST:
            recorder.report.add(letter.id, LEASE_LOST)
            connection.drop()
            continue
        limits.count(result.accepted, now)
        recorder.add(letter, result, clock(), token, mailbox=mailbox, recipients=pending)
        if not result.connection_broken:
            continue
        connection.drop()
        stalled = run.sessions.expired or (result.problem is not None and result.problem.code == "timeout")
        if stalled:
            # The server stalled (a read timed out, or it trickled past the pass's deadline): the mailbox backs
            # off on its own, and its other letters wait for it instead of holding a worker thread.
            until = _stalled(mailbox, clock(), policy)
            for rest in fresh[index + 1:]:
                hold(rest, token, MAILBOX_STALLED, until, clock(), policy, recorder.report)
            return
        connection.reconnects += 1
        if connection.reconnects > 1:
            # A second drop in one pass: the rest waits for a later pass instead of hammering the server.
            lease.release([rest.id for rest in fresh[index + 1:]], now + datetime.timedelta(seconds=policy.retry_base))
            return


def _stalled(mailbox, now, policy) -> datetime.datetime:
    """Give the mailbox a back-off of its own; returns when it ends."""
    until = now + datetime.timedelta(seconds=policy.stall_backoff)
    Mailbox.update(stalled_until=until).where(Mailbox.id == mailbox.id).execute()
    mailbox.stalled_until = until
    return until


def _token_refused(mailbox, settings) -> str | None:
    """The server refused the mailbox's token: refresh it once; what the letters wait for if that cannot help."""
    try:
        grants.token_refused(mailbox, settings)
    except grants.NeedsReconnecting:
        return grants.NEEDS_RECONNECT
    except grants.TokenUnavailable:
        return grants.TOKEN_UNAVAILABLE
    return None


def tested_for(mailbox, settings) -> bool:
    """Whether the mailbox passed its account test with exactly these settings (the digest Test account stored)."""
    from portal.mailboxes import canonical_settings
    from portal.secret_box import active_box

    if not mailbox.tested or settings is None:
        return False
    return active_box().matches(mailbox.tested_settings_digest, canonical_settings(settings))
