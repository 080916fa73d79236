"""The sending core: claim due letters under a lease, send them over one SMTP connection per mailbox, record
what happened.

States: queued -> sending -> sent | deferred | failed | uncertain. A letter is claimed by
setting it to "sending" with a lease; a worker that dies leaves the lease to expire and the
next pass takes the letter again. Once DATA is sent, before the body and final dot can leave,
the letter is marked (committed at once; see ``portal.letters.marks``): a letter found marked
after its lease ran out may have arrived, so it becomes "uncertain" instead of being sent twice.
Temporary failures (4xx, timeouts, dropped connections) are retried with exponential back-off
and jitter within an attempt and age budget; permanent ones (5xx, a refused destination) fail
at once. Sending limits hold letters back (deferred,
no attempt counted) rather than refusing them. No Flask here: huey tasks, the CLI and the
tests call ``process_due_letters`` directly.
"""
from __future__ import annotations

import datetime
import random
import smtplib
import time
import uuid
from collections import Counter, defaultdict, namedtuple
from contextlib import ExitStack
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from functools import lru_cache, partial
from typing import Any, Callable, Mapping

from peewee import fn

from portal.db import database, writing
from portal.letters.marks import LAPSED, REACHED_DATA, data_marks
from portal.letters.statements import insert_rows, update_rows, update_rows_held
from portal.letters.deliver import LEASE_LOST, STAGE, Delivery, deliver, no_delay
from portal.mail.connection import open_smtp
from portal.mail.errors import MailError
from portal.mail.problems import Problem
from portal.mail.settings import MailConfig
from portal.models import Letter, LetterAttempt, LetterRecipient, Mailbox, utcnow


# Codes of situations the queue itself names (the engine's catalogue names the servers' problems).
WORKER_LOST = "worker_lost"  # a worker stopped after the final dot and its lease ran out
MAILBOX_GONE = "mailbox_gone"
MAILBOX_PAUSED = "mailbox_paused"
MAILBOX_UNTESTED = "mailbox_untested"  # settings changed since the last passed test: waits for a new one
SENDER_NOT_ALLOWED = "sender_not_allowed"  # the author may no longer send from this mailbox in this project
SETTINGS_UNREADABLE = "settings_unreadable"
GAVE_UP = "gave_up"  # the attempt or age budget ran out on a temporary problem
ALL_REFUSED = "all_refused"  # every recipient refused the letter for good: nobody is left to send it to
SIGN_IN_FAILURES_PAUSE = 3  # refused sign-ins in a row after which the mailbox pauses itself


@dataclass(frozen=True)
class QueuePolicy:
    """How hard and how fast the queue tries: retry budget, back-off, lease and sending limits."""

    max_attempts: int = 8
    max_age: float = 24 * 3600.0  # seconds since the letter was queued
    retry_base: float = 60.0  # first back-off, doubled per attempt
    retry_max: float = 3600.0
    lease: float = 300.0
    mailbox_per_minute: int = 20  # 0: no limit
    recipient_limit: int = 50  # letters to one address ...
    recipient_window: float = 600.0  # ... per this many seconds; 0: no limit
    batch_size: int = 200
    linger: float = 0.0  # seconds a pass that sent letters keeps looking for more before it hangs up; 0: at once

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> "QueuePolicy":
        """Read PORTAL_LETTER_* and the limit settings from a plain mapping (e.g. Flask's config)."""
        names = {
            "max_attempts": ("PORTAL_LETTER_MAX_ATTEMPTS", int),
            "max_age": ("PORTAL_LETTER_MAX_AGE", float),
            "retry_base": ("PORTAL_LETTER_RETRY_BASE", float),
            "retry_max": ("PORTAL_LETTER_RETRY_MAX", float),
            "lease": ("PORTAL_LETTER_LEASE", float),
            "mailbox_per_minute": ("PORTAL_MAILBOX_LETTERS_PER_MINUTE", int),
            "recipient_limit": ("PORTAL_RECIPIENT_LETTERS_LIMIT", int),
            "recipient_window": ("PORTAL_RECIPIENT_LIMIT_WINDOW", float),
            "batch_size": ("PORTAL_LETTER_BATCH_SIZE", int),
            "linger": ("PORTAL_LETTER_LINGER", float),
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


LINGER_STEP = 0.005  # seconds between two looks while a pass lingers


@dataclass
class SendReport:
    """What one pass did: how many letters ended in each state, and when the next one is due."""

    outcomes: Counter = field(default_factory=Counter)
    letters: dict = field(default_factory=lambda: defaultdict(list))
    connections: int = 0
    next_due: datetime.datetime | None = None

    def add(self, letter_id: int, outcome: str) -> None:
        self.outcomes[outcome] += 1
        self.letters[outcome].append(letter_id)

    def wake_at(self, when: datetime.datetime) -> None:
        if self.next_due is None or when < self.next_due:
            self.next_due = when

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())


def _column(field) -> str:
    return '"' + field.column_name + '"'


@lru_cache(maxsize=None)
def _due_condition(param: str, by_mailbox: bool) -> str:
    """Which letters are due: queued or deferred and their time has come, or "sending" under a lease run out.
    Its parameters: [mailbox id,] now, [mailbox id,] now."""
    state, due_at, expires = _column(Letter.state), _column(Letter.next_attempt_at), _column(Letter.lease_expires_at)
    # One mailbox's: the mailbox in each branch of the OR, so that each reads its part of letter_mailbox_due.
    mailbox = f"{_column(Letter.mailbox)} = {param} AND " if by_mailbox else ""
    return (f"(({mailbox}{state} IN ('queued', 'deferred') AND {due_at} <= {param}) "
            f"OR ({mailbox}{state} = 'sending' AND {expires} < {param}))")


def _due_params(now, mailbox_id) -> list:
    stamp = Letter.next_attempt_at.db_value(now)
    return [mailbox_id, stamp, mailbox_id, stamp] if mailbox_id is not None else [stamp, stamp]


@lru_cache(maxsize=None)
def _anything_due_sql(param: str, by_mailbox: bool) -> str:
    return f'SELECT 1 FROM "{Letter._meta.table_name}" WHERE {_due_condition(param, by_mailbox)} LIMIT 1'


def _anything_due(now, mailbox_id) -> bool:
    """Whether a claim would find a letter: a read, which unlike the claim's UPDATE takes no write lock."""
    sql = _anything_due_sql(database.param, mailbox_id is not None)
    return database.execute_sql(sql, _due_params(now, mailbox_id)).fetchone() is not None


@lru_cache(maxsize=None)
def _claim_sql(param: str, by_mailbox: bool) -> tuple[str, str, str]:
    """The claim's three statements, written once: take a batch, read it back, read its recipients.

    Fixed text (no list of ids spelled out) so they are built once per process: peewee spent more
    time writing these than the database running them, once per batch, and a worker keeping up with
    the page claims small batches often.
    """
    letter, recipient = f'"{Letter._meta.table_name}"', f'"{LetterRecipient._meta.table_name}"'
    state, due_at, expires = _column(Letter.state), _column(Letter.next_attempt_at), _column(Letter.lease_expires_at)
    token, key = _column(Letter.lease_token), _column(Letter.id)
    due = _due_condition(param, by_mailbox)
    # The condition is checked again on the rows the UPDATE takes: of two workers racing for a row, one wins.
    # A letter taken over from a lease that ran out is marked "lapsed" by the same statement: whether it
    # reached its final dot is looked up once the claim has committed (portal.letters.marks says why then).
    phase = _column(Letter.phase)
    take = (f"UPDATE {letter} SET {state} = 'sending', {token} = {param}, {expires} = {param}, "
            f"{phase} = CASE WHEN {state} = 'sending' AND {phase} = '' THEN '{LAPSED}' ELSE {phase} END "
            f"WHERE {key} IN (SELECT {key} FROM {letter} WHERE {due} ORDER BY {due_at}, {key} LIMIT {param}) "
            f"AND {due}")
    read = (f"SELECT {', '.join(_column(f) for f in _CLAIMED_COLUMNS)} FROM {letter} WHERE {token} = {param} "
            f"ORDER BY {due_at}, {key}")
    recipients = (f"SELECT {', '.join(_column(f) for f in _RECIPIENT_COLUMNS)} FROM {recipient} "
                  f"WHERE {_column(LetterRecipient.letter)} IN (SELECT {key} FROM {letter} WHERE {token} = {param})")
    return take, read, recipients


def claim_due_letters(policy: QueuePolicy, *, now: datetime.datetime, mailbox_id: int | None = None,
                      limit: int | None = None) -> tuple[str, list]:
    """Take up to a batch of due letters under a new lease; returns (lease token, letters).

    The letters carry only the columns sending needs.
    """
    lease, letters = _claim(policy, now, mailbox_id, limit)
    return lease.token, letters


def _claim(policy, now, mailbox_id, limit) -> tuple["_Lease", list]:
    """claim_due_letters, with the lease as the claim wrote it (its real expiry, not one guessed later)."""
    size = min(policy.batch_size, limit) if limit else policy.batch_size
    lease = _Lease(uuid.uuid4().hex, now + datetime.timedelta(seconds=policy.lease), policy)
    take, read, _ = _claim_sql(database.param, mailbox_id is not None)
    due = _due_params(now, mailbox_id)
    claimed = database.execute_sql(take, [lease.token, Letter.lease_expires_at.db_value(lease.expires),
                                          *due, size, *due]).rowcount
    if not claimed:
        return lease, []
    queued_at = Letter.queued_at.python_value
    letters = [ClaimedLetter(*row[:_QUEUED_AT], queued_at(row[_QUEUED_AT]), *row[_QUEUED_AT + 1:])
               for row in database.execute_sql(read, [lease.token]).fetchall()]
    return lease, letters


class _Lease:
    """One claim batch's lease: its token, when it runs out in the database, and which letters it still holds.

    Renewed before a letter once less than half of it is left, by an UPDATE on the token whose
    count says whether the letters are still ours: a worker slower than its lease (a stalled
    server, a paused process) finds out there, before sending, and leaves alone every letter
    another worker has claimed since. The "data" mark and every result write check the token too.
    """

    def __init__(self, token: str, expires: datetime.datetime, policy: QueuePolicy):
        self.token, self.expires, self.policy = token, expires, policy
        self.held: set | None = None  # None: all the claim took; else the ids still under the token at renewal

    def holds(self, letter_id: int, now: datetime.datetime, recorder: "_Recorder") -> bool:
        """Whether this worker may still send the letter, renewing the lease first when half of it is gone."""
        if self.expires - now < datetime.timedelta(seconds=self.policy.lease / 2):
            self.renew(now, recorder)
        return self.held is None or letter_id in self.held

    def renew(self, now: datetime.datetime, recorder: "_Recorder") -> None:
        """Extend the lease from now; afterwards ``held`` names the letters the database still gives this worker."""
        # Outcomes noted so far are written first, while the lease most likely still holds them; after
        # that, the rows under this token are the letters not yet dealt with (and the one just sent, whose
        # outcome is noted once the next MAIL FROM has left).
        recorder.flush()
        until = now + datetime.timedelta(seconds=self.policy.lease)
        renew, read = _lease_sql(database.param)
        renewed = database.execute_sql(renew, [Letter.lease_expires_at.db_value(until), self.token]).rowcount
        self.held = ({letter_id for (letter_id,) in database.execute_sql(read, [self.token]).fetchall()}
                     if renewed else set())
        self.expires = until


@lru_cache(maxsize=None)
def _lease_sql(param: str) -> tuple[str, str]:
    """Renew a lease (its count: how many letters are still ours), and read which ones they are."""
    letter, token = f'"{Letter._meta.table_name}"', _column(Letter.lease_token)
    return (f"UPDATE {letter} SET {_column(Letter.lease_expires_at)} = {param} WHERE {token} = {param}",
            f"SELECT {_column(Letter.id)} FROM {letter} WHERE {token} = {param}")


def claimed_recipients(token: str) -> dict:
    """The recipients of the letters claimed under this lease, by letter id."""
    _, _, sql = _claim_sql(database.param, False)
    found = defaultdict(list)
    for row in database.execute_sql(sql, [token]).fetchall():
        recipient = _Recipient(*row)
        found[recipient.letter].append(recipient)
    return found


@dataclass(slots=True)
class ClaimedLetter:
    """What sending needs of a claimed letter; the rest (body text, headers shown in the Outbox, six
    timestamps to parse) stays in the database. A plain object: a peewee model instance per letter cost
    the worker more than reading the row."""

    id: int
    mailbox_id: int | None
    author_id: int
    project_id: int | None
    from_address: str
    raw_message: str
    phase: str
    attempts: int
    round_start: int
    queued_at: datetime.datetime
    waiting_for: str


_CLAIMED_COLUMNS = tuple(Letter._meta.columns[f.name] for f in dataclass_fields(ClaimedLetter))
_QUEUED_AT = [f.name for f in dataclass_fields(ClaimedLetter)].index("queued_at")
_RECIPIENT_COLUMNS = (LetterRecipient.id, LetterRecipient.letter, LetterRecipient.address, LetterRecipient.status)
_Recipient = namedtuple("_Recipient", "id letter address status")


def process_due_letters(mail_config: MailConfig, policy: QueuePolicy | None = None, *,
                        mailbox_id: int | None = None, clock: Callable[[], datetime.datetime] = utcnow,
                        settings_for: Callable[[Mailbox], Any] | None = None, rng: Any = random,
                        limit: int | None = None, others_waiting: Callable[[], bool] | None = None) -> SendReport:
    """Send every letter that is due now (optionally only one mailbox's); returns what happened.

    ``clock`` gives naive-UTC "now" (tests move it forward instead of sleeping);
    ``settings_for(mailbox)`` gives its MailboxSettings (default ``mailbox.to_settings()``).
    Claims come in batches; a mailbox's SMTP connection stays open from one batch to the next,
    and outcomes are written together, one transaction per batch. Once nothing is due, a pass
    that sent letters looks again for ``policy.linger`` seconds before it hangs up: letters
    written one after another (a person at the New letter page, a CRM through the API) leave
    over the connection already open instead of each waiting for a wake-up and a new one.
    While it lingers it only reads, and it stops as soon as ``others_waiting()`` says other work
    is queued for this worker.
    """
    policy = policy or QueuePolicy()
    settings_for = settings_for or (lambda mailbox: mailbox.to_settings())
    report = SendReport()
    with database.connection_context(), data_marks() as marks, _Connections() as connections:
        recorder = _Recorder(policy, rng, report, marks)
        idle_since = None
        while limit is None or report.total < limit:
            if idle_since is not None and not _anything_due(clock(), mailbox_id):
                if time.monotonic() - idle_since >= policy.linger or (others_waiting and others_waiting()):
                    break
                time.sleep(LINGER_STEP)
                continue
            lease, letters = _claim(policy, clock(), mailbox_id, None if limit is None else limit - report.total)
            if not letters:
                if not report.total or policy.linger <= 0:
                    break
                idle_since = idle_since or time.monotonic()
                continue
            idle_since = None
            groups: dict[int | None, list] = defaultdict(list)
            for letter in letters:
                groups[letter.mailbox_id].append(letter)
            connections.keep_only(groups)
            recipients = claimed_recipients(lease.token)
            try:
                for group_mailbox, group in groups.items():
                    _send_group(group_mailbox, group, lease, recipients, mail_config, policy, clock, settings_for,
                                recorder, connections)
            finally:
                recorder.flush()
        upcoming = (Letter.select(fn.MIN(Letter.next_attempt_at))
                    .where(Letter.state.in_(("queued", "deferred"))).scalar())
    if upcoming is not None:
        report.wake_at(upcoming)
    return report


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
            settings = settings_for(self.mailbox) if self.mailbox is not None and self.mailbox.active else None
            if self.smtp is not None and settings != self.settings:
                self.drop()
            self.settings, self.read_at = settings, time.monotonic()
            self.waits_for, self.candidate, self.allowed = None, None, {}
            if self.mailbox is not None:
                if not self.mailbox.active:
                    self.waits_for = MAILBOX_PAUSED
                elif not _tested_for(self.mailbox, settings):
                    self.waits_for = MAILBOX_UNTESTED
        return self.mailbox, self.settings

    def may_send(self, letters) -> dict:
        """{letter id: whether its author may still send from this mailbox in its project} (the sender rule's
        may_use), with the rule's rows read once per mailbox read and each author once."""
        from portal.models import Employee, MailboxAccess, MailboxProject
        from portal.sender import EmployeeRow, ProjectRow, candidate_from_mailbox, may_use

        if self.candidate is None:
            projects = [p for (p,) in MailboxProject.select(MailboxProject.project)
                        .where(MailboxProject.mailbox == self.mailbox.id).tuples()]
            access = list(MailboxAccess.select(MailboxAccess.employee, MailboxAccess.department)
                          .where(MailboxAccess.mailbox == self.mailbox.id).tuples())
            self.candidate = candidate_from_mailbox(self.mailbox, projects=projects, access=access)
        wanted = {(letter.author_id, letter.project_id) for letter in letters} - set(self.allowed)
        if wanted:
            authors = {row[0]: EmployeeRow(id=row[0], name=row[1], department=row[2] or "") for row in
                       Employee.select(Employee.id, Employee.name, Employee.department)
                       .where(Employee.id.in_({author for author, _ in wanted})).tuples()}
            for author, project in wanted:
                self.allowed[author, project] = author in authors and may_use(
                    authors[author], self.candidate, ProjectRow(project) if project is not None else None)
        return {letter.id: self.allowed[letter.author_id, letter.project_id] for letter in letters}

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
                connections):
    """Send one mailbox's claimed letters over its connection (reconnecting once after a drop).

    The lease is the batch's, shared by every mailbox's group: its expiry is the one the claim
    wrote, however long the groups before this one took.
    """
    token = lease.token
    now = clock()
    fresh = []
    found = recorder.marks.found([letter.id for letter in letters if letter.phase == LAPSED])
    marked = {letter_id for letter_id, _ in found}
    for letter in letters:
        if letter.phase == REACHED_DATA or letter.id in marked:
            # Claimed again after a lease ran out mid-DATA: it may have arrived. Never send it twice.
            recorder.add(letter, Delivery("uncertain", _queue_problem(WORKER_LOST)), now, token, number=letter.attempts,
                         outcome_label="lost", marks_found=[pair for pair in found if pair[0] == letter.id])
        else:
            fresh.append(letter)
    if not fresh:
        return
    connection = connections.of(mailbox_id)
    try:
        mailbox, settings = connection.load(mailbox_id, settings_for) if mailbox_id else (None, None)
    except Exception as error:  # a secret that no key opens any more, or broken stored settings
        connections.pop(mailbox_id).drop()
        problem = Problem(code=SETTINGS_UNREADABLE, stage=STAGE, server_reply=type(error).__name__)
        for letter in fresh:
            recorder.add(letter, Delivery("failed", problem), now, token)
        return
    if mailbox is None:
        for letter in fresh:
            recorder.add(letter, Delivery("failed", _queue_problem(MAILBOX_GONE)), now, token)
        return
    if connection.waits_for:
        # Paused, or changed since its last passed test: the letters wait (a person resumes or tests the
        # mailbox), up to the age budget, instead of leaving through settings nobody checked.
        for letter in fresh:
            _hold(letter, token, connection.waits_for, now + datetime.timedelta(seconds=policy.retry_base), now,
                  policy, recorder.report)
        return
    allowed = connection.may_send(fresh)
    if not all(allowed.values()):
        # The author lost the right to this mailbox (access, project, ownership): that will not pass by
        # itself, so the letter fails at once with the reason; Retry checks again.
        for letter in [letter for letter in fresh if not allowed[letter.id]]:
            recorder.add(letter, Delivery("failed", _queue_problem(SENDER_NOT_ALLOWED)), now, token,
                         number=letter.attempts, outcome_label="failed")
        fresh = [letter for letter in fresh if allowed[letter.id]]
        if not fresh:
            return

    limits = _Limits.load(mailbox.id, token, now, policy)
    # A sent letter's outcome is noted while the server answers the next letter's MAIL FROM rather than
    # before that command leaves: the bookkeeping then costs the letter's round trips nothing. Whatever
    # happens, it is noted before this group is done (the finally below).
    previous = None

    def note_previous():
        nonlocal previous
        if previous is not None:
            note, previous = previous, None
            note()

    try:
        for index, letter in enumerate(fresh):
            now = clock()
            if not lease.holds(letter.id, now, recorder):
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
                    recorder.add(letter, Delivery("failed", _queue_problem(ALL_REFUSED)), now, token,
                                 number=letter.attempts, outcome_label="failed")
                continue
            held = limits.hold_until(mailbox.id, [r.address for r in pending], now)
            if held is not None:
                reason, until = held
                _hold(letter, token, reason, until, now, policy, recorder.report)
                continue
            if connection.smtp is None:
                try:
                    if connection.refused is not None:  # one attempt per pass: no second try after a failure
                        raise MailError(connection.refused)
                    connection.smtp = connection.stack.enter_context(open_smtp(settings, mail_config))
                    recorder.report.connections += 1
                    no_delay(connection.smtp)
                    if mailbox.sign_in_failures:
                        _signed_in(mailbox)
                except MailError as error:
                    # The server cannot be reached or refuses the sign-in: the same for every letter left.
                    connection.drop()
                    problem, first = error.problem, connection.refused is None
                    connection.refused = problem
                    sign_in = problem.stage == "smtp.login"
                    for rest in fresh[index:]:
                        # A refused sign-in is the mailbox's problem, not the letter's: the letters wait for it.
                        kind = "deferred" if problem.temporary or sign_in else "failed"
                        recorder.add(rest, Delivery(kind, problem, connection_broken=True), clock(), token,
                                     mailbox=mailbox)
                    if first and sign_in and (problem.smtp_code or 0) // 100 == 5:
                        _sign_in_refused(mailbox, problem, clock())
                    return
            result = deliver(connection.smtp, letter.from_address, [r.address for r in pending],
                             letter.raw_message.encode("ascii"), partial(recorder.marks.mark, letter.id, token),
                             meanwhile=note_previous)
            if result.outcome == LEASE_LOST:
                recorder.report.add(letter.id, LEASE_LOST)
                connection.drop()
                continue
            limits.count(mailbox.id, result.accepted, now)
            if not result.connection_broken:
                previous = partial(recorder.add, letter, result, clock(), token, mailbox=mailbox, recipients=pending)
                continue
            recorder.add(letter, result, clock(), token, mailbox=mailbox, recipients=pending)
            connection.drop()
            connection.reconnects += 1
            if connection.reconnects > 1:
                # A second drop in one pass: leave the rest for the next pass instead of hammering.
                rest = [r.id for r in fresh[index + 1:]]
                if rest:
                    Letter.update(state="queued", lease_token=None, lease_expires_at=None, phase="",
                                  next_attempt_at=now + datetime.timedelta(seconds=policy.retry_base)
                                  ).where(Letter.id.in_(rest) & (Letter.lease_token == token)).execute()
                return
    finally:
        note_previous()


def _signed_in(mailbox) -> None:
    """The provider took the sign-in: refusals are counted from nought again."""
    Mailbox.update(sign_in_failures=0).where(Mailbox.id == mailbox.id).execute()


def _sign_in_refused(mailbox, problem: Problem, now) -> None:
    """Count a refused sign-in; the third in a row pauses the mailbox, with the reason its owner and the admins
    see, so that a changed password does not go on costing failures at the provider's fail2ban."""
    from portal.models import AuditEvent

    with writing():
        Mailbox.update(sign_in_failures=Mailbox.sign_in_failures + 1).where(Mailbox.id == mailbox.id).execute()
        failures = Mailbox.select(Mailbox.sign_in_failures).where(Mailbox.id == mailbox.id).scalar() or 0
        if failures < SIGN_IN_FAILURES_PAUSE:
            return
        paused = (Mailbox.update(active=False, paused_problem=problem.code, paused_reply=problem.server_reply[:500],
                                 updated_at=now)
                  .where((Mailbox.id == mailbox.id) & Mailbox.active).execute())
        if paused:
            AuditEvent.create(mailbox=mailbox.id, address=mailbox.address, actor=None, owner=mailbox.owner_id,
                              action="paused", changed_fields='["active"]', at=now,
                              detail=f"{failures} refused sign-ins in a row: {problem.server_reply}"[:500])


def _tested_for(mailbox, settings) -> bool:
    """Whether the mailbox passed its account test with exactly these settings (the digest Test account stored)."""
    from portal.mailboxes import canonical_settings
    from portal.secret_box import active_box

    if not mailbox.tested or settings is None:
        return False
    return mailbox.tested_settings_digest == active_box().digest(canonical_settings(settings))


def _queue_problem(code: str, reply: str = "") -> Problem:
    return Problem(code=code, stage=STAGE, server_reply=reply)


class _Recorder:
    """Outcomes of attempts, written together: one transaction and a few prepared statements for many letters.

    Flushed at the end of every claim batch, and sooner when FLUSH_LETTERS letters or FLUSH_SECONDS
    have gathered, so the Outbox sees progress. A worker that dies before a flush loses nothing but
    the record: its letters are still "sending" under a lease, and those that reached DATA carry
    the "data" mark, so the next claim makes them "uncertain" instead of sending them twice.
    """

    FLUSH_LETTERS = 200
    FLUSH_SECONDS = 1.0

    def __init__(self, policy: QueuePolicy, rng: Any, report: SendReport, marks):
        self.policy, self.rng, self.report, self.marks = policy, rng, report, marks
        self.letters: list = []  # (id, fields, lease token)
        self.attempts: list = []
        self.recipients: list = []  # (letter id, recipient id, fields)
        self.by_address: list = []  # (letter id, address, fields) for a recipient row not at hand
        self.marks_found: list = []  # (letter id, token): other workers' marks behind an "uncertain" noted here
        self.since: float | None = None

    def add(self, letter, result: Delivery, now, token, *, mailbox=None, recipients=(), number=None,
            outcome_label=None, marks_found=()):
        """Note one attempt's outcome: the letter's state, the history row and each recipient's answer.

        Written at the next flush only if the letter is still under ``token`` (the lease it was sent under);
        then this worker's mark and ``marks_found`` (other workers' marks that decided the outcome) go.
        """
        self.marks_found += marks_found
        policy = self.policy
        attempt = number if number is not None else letter.attempts + 1
        refused_for_good = {a for a, (c, _, p) in result.refused.items() if not p.temporary}
        refused_for_now = {a for a, (c, _, p) in result.refused.items() if p.temporary}
        state, problem = result.outcome, result.problem
        if state == "sent" and refused_for_now:
            state, problem = "deferred", result.refused[next(iter(refused_for_now))][2]
        fields: dict = dict(lease_token=None, lease_expires_at=None, phase="", waiting_for="", attempts=attempt)
        if state == "deferred":
            too_many = attempt - letter.round_start >= policy.max_attempts
            too_old = (now - letter.queued_at).total_seconds() >= policy.max_age
            if too_many or too_old:
                state = "failed"
                fields["problem_stage"] = GAVE_UP
            else:
                when = now + datetime.timedelta(seconds=policy.retry_delay(attempt - letter.round_start, self.rng))
                fields["next_attempt_at"] = when
                self.report.wake_at(when)
        if state == "sent":
            fields.update(sent_at=now, finished_at=now, problem_code="", problem_stage="", server_reply="",
                          smtp_code=None)
        elif problem is not None:
            fields.update(problem_code=problem.code, server_reply=problem.server_reply, smtp_code=problem.smtp_code)
            fields.setdefault("problem_stage", problem.stage)
        if state in ("failed", "uncertain"):
            fields.update(finished_at=now, failure_seen=False)
        fields["state"] = state
        self.letters.append((letter.id, fields, token))
        self.attempts.append(dict(
            letter=letter.id, number=attempt, started_at=now, finished_at=now,
            outcome=outcome_label or result.outcome, stage=problem.stage if problem else STAGE,
            problem_code=problem.code if problem else "",
            server_reply=(problem.server_reply if problem else result.reply),
            smtp_code=problem.smtp_code if problem else None, mailbox_address=mailbox.address if mailbox else "",
        ))
        rows = {r.address: r.id for r in recipients}
        answers = []
        if result.accepted and result.outcome == "sent":
            answers += [(address, dict(status="accepted", accepted_at=now, smtp_code=250, server_reply=result.reply,
                                       problem_code="")) for address in result.accepted]
        for address, (code, reply, recipient_problem) in result.refused.items():
            answers.append((address, dict(status="refused" if address in refused_for_good else "deferred",
                                          smtp_code=code, server_reply=reply, problem_code=recipient_problem.code)))
        for address, answer in answers:
            if address in rows:
                self.recipients.append((letter.id, rows[address], answer))
            else:
                self.by_address.append((letter.id, address, answer))
        if self.since is None:
            self.since = time.monotonic()
        if len(self.letters) >= self.FLUSH_LETTERS or time.monotonic() - self.since >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write everything noted so far in one transaction: one UPDATE statement per kind of outcome."""
        if not self.letters:
            return
        kinds: dict = defaultdict(list)
        for letter_id, fields, token in self.letters:
            kinds[tuple(sorted(fields))].append((letter_id, fields, token))
        with writing():
            # Each letter's row is written only while it is still under the lease it was sent under (the
            # UPDATE takes the row, so no claim can slip in before the commit); the history and the
            # recipients' answers only for the letters written.
            written = set()
            for names, rows in kinds.items():
                written |= update_rows_held(Letter, names, rows, "lease_token")
            insert_rows(LetterAttempt, [a for a in self.attempts if a["letter"] in written])
            answers: dict = defaultdict(list)
            for letter_id, recipient_id, fields in self.recipients:
                if letter_id in written:
                    answers[tuple(sorted(fields))].append((recipient_id, fields))
            for names, rows in answers.items():
                update_rows(LetterRecipient, names, rows)
            for letter_id, address, fields in self.by_address:
                if letter_id in written:
                    (LetterRecipient.update(**fields)
                     .where((LetterRecipient.letter == letter_id) & (LetterRecipient.address == address)).execute())
        for letter_id, fields, _ in self.letters:
            self.report.add(letter_id, fields["state"] if letter_id in written else LEASE_LOST)
        done = [(letter_id, token) for letter_id, _, token in self.letters if letter_id in written]
        done += [pair for pair in self.marks_found if pair[0] in written]
        self.letters, self.attempts, self.recipients, self.by_address, self.marks_found = [], [], [], [], []
        self.since = None
        # After the commit: until the outcome is written, the mark is what keeps the letter from a second copy.
        self.marks.clear(done)


def _hold(letter, token, reason, until, now, policy, report):
    """Put a letter back to wait for a sending limit (no attempt counted); fail it once it is too old.

    Written only while the letter is still under ``token``: a letter another worker took over is theirs.
    """
    held = (Letter.id == letter.id) & (Letter.lease_token == token)
    if (now - letter.queued_at).total_seconds() >= policy.max_age:
        problem = Problem(code=reason, stage=GAVE_UP, server_reply="")
        with writing():
            if not Letter.update(state="failed", problem_code=reason, problem_stage=GAVE_UP, server_reply="",
                                 smtp_code=None, finished_at=now, failure_seen=False, lease_token=None,
                                 lease_expires_at=None, waiting_for="", phase="").where(held).execute():
                report.add(letter.id, LEASE_LOST)
                return
            LetterAttempt.create(letter=letter.id, started_at=now, finished_at=now, outcome="failed",
                                 stage=GAVE_UP, problem_code=problem.code)
        report.add(letter.id, "failed")
        return
    with writing():
        if not Letter.update(state="deferred", waiting_for=reason, next_attempt_at=until, lease_token=None,
                             lease_expires_at=None, phase="").where(held).execute():
            report.add(letter.id, LEASE_LOST)
            return
        if letter.waiting_for != reason:  # one history line per wait, not one per pass
            LetterAttempt.create(letter=letter.id, started_at=now, finished_at=now, outcome="limited",
                                 stage="limit", problem_code=reason)
    report.add(letter.id, "held")
    report.wake_at(until)


@dataclass
class _Limits:
    """Sending counts in the current windows, read once per group and kept up to date in memory."""

    policy: QueuePolicy
    mailbox_sends: list  # datetimes of letters accepted through the mailbox in the last minute
    recipient_sends: dict  # address -> datetimes of acceptances in the recipient window

    @classmethod
    def load(cls, mailbox_id, token, now, policy):
        """The sends that count now: the mailbox's in the last minute, and those to this batch's recipients."""
        mailbox_sends = []
        if policy.mailbox_per_minute > 0:
            since = now - datetime.timedelta(seconds=60)
            sql = _limit_sql(database.param)[0]
            mailbox_sends = sorted(Letter.sent_at.python_value(at) for (at,) in database.execute_sql(
                sql, [mailbox_id, Letter.sent_at.db_value(since)]).fetchall())
        recipient_sends: dict = defaultdict(list)
        if policy.recipient_limit > 0 and policy.recipient_window > 0:
            since = now - datetime.timedelta(seconds=policy.recipient_window)
            sql = _limit_sql(database.param)[1]
            for address, at in database.execute_sql(sql, [LetterRecipient.accepted_at.db_value(since), token]):
                recipient_sends[address].append(LetterRecipient.accepted_at.python_value(at))
            for times in recipient_sends.values():
                times.sort()
        return cls(policy, mailbox_sends, recipient_sends)

    def hold_until(self, mailbox_id, addresses, now):
        """(reason, until) when a limit holds this letter back now, else None."""
        policy = self.policy
        if policy.mailbox_per_minute > 0:
            since = now - datetime.timedelta(seconds=60)
            self.mailbox_sends = [t for t in self.mailbox_sends if t >= since]
            if len(self.mailbox_sends) >= policy.mailbox_per_minute:
                return "mailbox_limit", self.mailbox_sends[0] + datetime.timedelta(seconds=60, milliseconds=10)
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
                return "recipient_limit", latest + datetime.timedelta(milliseconds=10)
        return None

    def count(self, mailbox_id, accepted, now):
        if accepted:
            self.mailbox_sends.append(now)
            for address in accepted:
                self.recipient_sends[address].append(now)


@lru_cache(maxsize=None)
def _limit_sql(param: str) -> tuple[str, str]:
    """The sending limits' two reads, written once (fixed text: the batch's addresses come from its lease)."""
    letter, recipient = f'"{Letter._meta.table_name}"', f'"{LetterRecipient._meta.table_name}"'
    address, accepted = _column(LetterRecipient.address), _column(LetterRecipient.accepted_at)
    mailbox = (f"SELECT {_column(Letter.sent_at)} FROM {letter} WHERE {_column(Letter.mailbox)} = {param} "
               f"AND {_column(Letter.sent_at)} >= {param}")
    recipients = (f"SELECT {address}, {accepted} FROM {recipient} WHERE {accepted} >= {param} AND {address} IN "
                  f"(SELECT {address} FROM {recipient} WHERE {_column(LetterRecipient.letter)} IN "
                  f"(SELECT {_column(Letter.id)} FROM {letter} WHERE {_column(Letter.lease_token)} = {param}))")
    return mailbox, recipients


def nobody_left(letter_ids) -> set:
    """Of these letters, those whose every recipient accepted the letter or refused it for good: sending them
    again would change nothing."""
    ids = list(letter_ids)
    if not ids:
        return set()
    left = {letter_id for (letter_id,) in LetterRecipient.select(LetterRecipient.letter).where(
        LetterRecipient.letter.in_(ids) & LetterRecipient.status.in_(("pending", "deferred"))).distinct().tuples()}
    return set(ids) - left


def retry_letter(letter: Letter, *, now: datetime.datetime | None = None) -> bool:
    """Queue a deferred, failed, uncertain or cancelled letter again now, with a fresh attempt budget.

    Refused (False) when nobody is left to send it to (see ``nobody_left``), as when it cannot be retried.
    """
    now = now or utcnow()
    if nobody_left([letter.id]):
        return False
    changed = (Letter.update(state="queued", next_attempt_at=now, queued_at=now, round_start=Letter.attempts,
                             waiting_for="", failure_seen=True, phase="", finished_at=None)
               .where((Letter.id == letter.id) & Letter.state.in_(("deferred", "failed", "uncertain", "cancelled")))
               .execute())
    if changed:
        LetterRecipient.update(status="pending").where(
            (LetterRecipient.letter == letter.id) & (LetterRecipient.status == "deferred")).execute()
    return bool(changed)


def cancel_letter(letter: Letter, *, now: datetime.datetime | None = None) -> bool:
    """Stop a letter that has not gone out yet (queued or deferred); a letter being sent cannot be stopped."""
    now = now or utcnow()
    changed = (Letter.update(state="cancelled", finished_at=now, lease_token=None, waiting_for="")
               .where((Letter.id == letter.id) & Letter.state.in_(("queued", "deferred"))).execute())
    if changed:
        LetterAttempt.create(letter=letter.id, started_at=now, finished_at=now, outcome="cancelled", stage="")
    return bool(changed)
