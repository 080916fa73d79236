"""The sending core: claim due letters under a lease, send them over one SMTP connection per mailbox, record what happened.

States: queued -> sending -> sent | deferred | failed | uncertain. A letter is claimed by
setting it to "sending" with a lease; a worker that dies leaves the lease to expire and the
next pass takes the letter again. Just before the final dot of DATA the letter is marked
``phase="data"``: a letter found that way with an expired lease may have arrived, so it becomes
"uncertain" instead of being sent twice. Temporary failures (4xx, timeouts, dropped connections)
are retried with exponential back-off and jitter within an attempt and age budget; permanent
ones (5xx, a refused destination) fail at once. Sending limits hold letters back (deferred,
no attempt counted) rather than refusing them. No Flask here: huey tasks, the CLI and the
tests call ``process_due_letters`` directly.
"""
from __future__ import annotations

import datetime
import random
import re
import select
import smtplib
import socket
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from peewee import fn

from portal.db import database
from portal.mail.connection import open_smtp
from portal.mail.errors import MailError
from portal.mail.problems import Problem, classify, classify_reply
from portal.mail.settings import MailConfig
from portal.models import Letter, LetterAttempt, LetterRecipient, Mailbox, utcnow

STAGE = "smtp.send"
ACCEPTED = (250, 251)

# Codes of situations the queue itself names (the engine's catalogue names the servers' problems).
UNCERTAIN = "delivery_uncertain"  # the connection dropped after the final dot
WORKER_LOST = "worker_lost"  # a worker stopped after the final dot and its lease ran out
MAILBOX_GONE = "mailbox_gone"
MAILBOX_PAUSED = "mailbox_paused"
SETTINGS_UNREADABLE = "settings_unreadable"
GAVE_UP = "gave_up"  # the attempt or age budget ran out on a temporary problem


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
    # How long to listen for a hang-up after the body and before the final dot. A server that drops
    # the connection right after "354" is then seen before the dot leaves, so the letter is simply
    # retried instead of becoming "uncertain". A fraction of a millisecond per letter.
    hang_up_wait: float = 0.0003

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

    def add(self, letter_id: int, outcome: str) -> None:
        self.outcomes[outcome] += 1
        self.letters[outcome].append(letter_id)

    def wake_at(self, when: datetime.datetime) -> None:
        if self.next_due is None or when < self.next_due:
            self.next_due = when

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())


@dataclass
class _Result:
    """One attempt's outcome for one letter, before it is written down."""

    outcome: str  # sent | deferred | failed | uncertain
    problem: Problem | None = None
    accepted: list = field(default_factory=list)  # addresses
    refused: dict = field(default_factory=dict)  # address -> (code, reply, problem)
    reply: str = ""
    connection_broken: bool = False


def _due(now: datetime.datetime):
    waiting = Letter.state.in_(("queued", "deferred")) & (Letter.next_attempt_at <= now)
    abandoned = (Letter.state == "sending") & (Letter.lease_expires_at < now)
    return waiting | abandoned


def claim_due_letters(policy: QueuePolicy, *, now: datetime.datetime, mailbox_id: int | None = None,
                      limit: int | None = None) -> tuple[str, list]:
    """Take up to a batch of due letters under a new lease; returns (lease token, letters)."""
    condition = _due(now)
    if mailbox_id is not None:
        condition &= Letter.mailbox == mailbox_id
    size = min(policy.batch_size, limit) if limit else policy.batch_size
    ids = Letter.select(Letter.id).where(condition).order_by(Letter.next_attempt_at, Letter.id).limit(size)
    token = uuid.uuid4().hex
    # The condition is checked again inside the UPDATE: of two workers racing for a row, one wins.
    claimed = (Letter.update(state="sending", lease_token=token,
                             lease_expires_at=now + datetime.timedelta(seconds=policy.lease))
               .where(Letter.id.in_([row.id for row in ids]) & condition).execute())
    if not claimed:
        return token, []
    letters = list(Letter.select().where(Letter.lease_token == token).order_by(Letter.next_attempt_at, Letter.id))
    return token, letters


def process_due_letters(mail_config: MailConfig, policy: QueuePolicy | None = None, *,
                        mailbox_id: int | None = None, clock: Callable[[], datetime.datetime] = utcnow,
                        settings_for: Callable[[Mailbox], Any] | None = None, rng: Any = random,
                        limit: int | None = None) -> SendReport:
    """Send every letter that is due now (optionally only one mailbox's); returns what happened.

    ``clock`` gives naive-UTC "now" (tests move it forward instead of sleeping);
    ``settings_for(mailbox)`` gives its MailboxSettings (default ``mailbox.to_settings()``).
    """
    policy = policy or QueuePolicy()
    settings_for = settings_for or (lambda mailbox: mailbox.to_settings())
    report = SendReport()
    while limit is None or report.total < limit:
        with database.connection_context():
            token, letters = claim_due_letters(policy, now=clock(), mailbox_id=mailbox_id,
                                               limit=None if limit is None else limit - report.total)
            if not letters:
                break
            groups: dict[int | None, list] = defaultdict(list)
            for letter in letters:
                groups[letter.mailbox_id].append(letter)
            for group_mailbox, group in groups.items():
                _send_group(group_mailbox, group, token, mail_config, policy, clock, settings_for, rng, report)
    with database.connection_context():
        upcoming = (Letter.select(fn.MIN(Letter.next_attempt_at))
                    .where(Letter.state.in_(("queued", "deferred"))).scalar())
    if upcoming is not None:
        report.wake_at(upcoming)
    return report


def _send_group(mailbox_id, letters, token, mail_config, policy, clock, settings_for, rng, report):
    """Send one mailbox's claimed letters over one connection (reconnecting once after a drop)."""
    now = clock()
    fresh = []
    for letter in letters:
        if letter.phase == "data":
            # Claimed again after a lease ran out mid-DATA: it may have arrived. Never send it twice.
            _finish(letter, _Result("uncertain", _queue_problem(WORKER_LOST)), now, policy, rng, report,
                    number=letter.attempts, outcome_label="lost")
        else:
            fresh.append(letter)
    if not fresh:
        return
    mailbox = Mailbox.get_or_none(Mailbox.id == mailbox_id) if mailbox_id else None
    if mailbox is None:
        for letter in fresh:
            _finish(letter, _Result("failed", _queue_problem(MAILBOX_GONE)), now, policy, rng, report)
        return
    if not mailbox.active:
        for letter in fresh:
            _hold(letter, MAILBOX_PAUSED, now + datetime.timedelta(seconds=policy.retry_base), now, policy, report)
        return
    try:
        settings = settings_for(mailbox)
    except Exception as error:  # a secret that no key opens any more, or broken stored settings
        problem = Problem(code=SETTINGS_UNREADABLE, stage=STAGE, server_reply=type(error).__name__)
        for letter in fresh:
            _finish(letter, _Result("failed", problem), now, policy, rng, report)
        return

    recipients = defaultdict(list)
    for row in LetterRecipient.select().where(LetterRecipient.letter.in_([letter.id for letter in fresh])):
        recipients[row.letter_id].append(row)
    limits = _Limits.load(mailbox.id, [r.address for rows in recipients.values() for r in rows], now, policy)
    lease_until = now + datetime.timedelta(seconds=policy.lease)

    with ExitStack() as stack:
        smtp = None
        reconnects = 0
        for index, letter in enumerate(fresh):
            now = clock()
            if lease_until - now < datetime.timedelta(seconds=policy.lease / 2):
                lease_until = now + datetime.timedelta(seconds=policy.lease)
                Letter.update(lease_expires_at=lease_until).where(Letter.lease_token == token).execute()
            pending = [r for r in recipients[letter.id] if r.status != "accepted" and r.status != "refused"]
            if not pending:
                _finish(letter, _Result("sent"), now, policy, rng, report)
                continue
            held = limits.hold_until(mailbox.id, [r.address for r in pending], now)
            if held is not None:
                reason, until = held
                _hold(letter, reason, until, now, policy, report)
                continue
            if smtp is None:
                try:
                    smtp = stack.enter_context(open_smtp(settings, mail_config))
                    report.connections += 1
                    _no_delay(smtp)
                except MailError as error:
                    # The server cannot be reached or refuses the sign-in: the same for every letter left.
                    for rest in fresh[index:]:
                        kind = "deferred" if error.problem.temporary else "failed"
                        _finish(rest, _Result(kind, error.problem, connection_broken=True), clock(), policy,
                                rng, report, mailbox=mailbox)
                    return
            result = _deliver(smtp, letter, pending, policy.hang_up_wait)
            limits.count(mailbox.id, result.accepted, now)
            _finish(letter, result, clock(), policy, rng, report, mailbox=mailbox, recipients=pending)
            if result.connection_broken:
                stack.close()
                smtp = None
                reconnects += 1
                if reconnects > 1:
                    # A second drop in one pass: leave the rest for the next pass instead of hammering.
                    for rest in fresh[index + 1:]:
                        Letter.update(state="queued", lease_token=None, lease_expires_at=None,
                                      next_attempt_at=now + datetime.timedelta(seconds=policy.retry_base)
                                      ).where(Letter.id == rest.id).execute()
                    return


def _deliver(smtp: smtplib.SMTP, letter: Letter, recipients: list, hang_up_wait: float = 0.0) -> _Result:
    """MAIL, RCPT for each pending recipient, DATA; returns the outcome without writing anything."""
    try:
        code, reply = smtp.mail(letter.from_address)
        if code not in ACCEPTED:
            problem = classify_reply(code, reply, stage=STAGE, command="MAIL")
            return _envelope_refused(smtp, problem)
        refused, accepted = {}, []
        for recipient in recipients:
            code, reply = smtp.rcpt(recipient.address)
            if code in ACCEPTED:
                accepted.append(recipient.address)
            else:
                refused[recipient.address] = (code, _text(reply),
                                              classify_reply(code, reply, stage=STAGE, command="RCPT"))
        if not accepted:
            worst = _first_temporary(refused) or next(iter(refused.values()))[2]
            result = _envelope_refused(smtp, worst)
            result.refused = refused
            return result
        code, reply = smtp.docmd("DATA")
        if code != 354:
            problem = classify_reply(code, reply, stage=STAGE, command="DATA")
            result = _envelope_refused(smtp, problem)
            result.refused = refused
            return result
        payload = re.sub(rb"(?m)^\.", b"..", letter.raw_message.encode("ascii"))
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        smtp.send(payload)
    except (OSError, smtplib.SMTPException) as error:
        # Nothing past the body has gone out: the letter cannot have been accepted, so a retry is safe.
        problem = classify(error, stage=STAGE)
        kind = "deferred" if problem.temporary or problem.code == "connection_dropped" else "failed"
        return _Result(kind, problem, connection_broken=True)
    # Marked before the dot may leave: if this worker dies from here on, the letter may have arrived.
    Letter.update(phase="data").where(Letter.id == letter.id).execute()
    if _server_hung_up(smtp, hang_up_wait):
        problem = Problem(code="connection_dropped", stage=STAGE, server_reply="connection closed during DATA")
        return _Result("deferred", problem, connection_broken=True)
    try:
        smtp.send(b".\r\n")
        code, reply = smtp.getreply()
    except (OSError, smtplib.SMTPException) as error:
        problem = classify(error, stage=STAGE)
        return _Result("uncertain", Problem(code=UNCERTAIN, stage=STAGE, server_reply=problem.server_reply),
                       accepted=accepted, refused=refused, connection_broken=True)
    if code in ACCEPTED:
        return _Result("sent", accepted=accepted, refused=refused, reply=f"{code} {_text(reply)}")
    problem = classify_reply(code, reply, stage=STAGE, command="DATA")
    return _Result("deferred" if problem.temporary else "failed", problem, refused=refused,
                   connection_broken=code == 421)


def _no_delay(smtp: smtplib.SMTP) -> None:
    """Send each command at once: body then final dot are two writes, and Nagle would hold the dot for an ACK."""
    try:
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


def _server_hung_up(smtp: smtplib.SMTP, wait: float) -> bool:
    """Whether the server spoke or hung up before our final dot (then the dot is never sent)."""
    sock = smtp.sock
    if sock is None:
        return True
    try:
        if getattr(sock, "pending", None) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], wait)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _envelope_refused(smtp: smtplib.SMTP, problem: Problem) -> _Result:
    broken = problem.smtp_code == 421
    if not broken:
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            broken = True
    return _Result("deferred" if problem.temporary else "failed", problem, connection_broken=broken)


def _first_temporary(refused: dict) -> Problem | None:
    for _, _, problem in refused.values():
        if problem.temporary:
            return problem
    return None


def _text(reply) -> str:
    return " ".join((reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)).split())


def _queue_problem(code: str, reply: str = "") -> Problem:
    return Problem(code=code, stage=STAGE, server_reply=reply)


def _finish(letter, result: _Result, now, policy, rng, report, *, mailbox=None, recipients=(), number=None,
            outcome_label=None):
    """Write one attempt's outcome: the letter's state, the history row and each recipient's answer."""
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
            when = now + datetime.timedelta(seconds=policy.retry_delay(attempt - letter.round_start, rng))
            fields["next_attempt_at"] = when
            report.wake_at(when)
    if state == "sent":
        fields.update(sent_at=now, finished_at=now, problem_code="", problem_stage="", server_reply="", smtp_code=None)
    elif problem is not None:
        fields.update(problem_code=problem.code, server_reply=problem.server_reply, smtp_code=problem.smtp_code)
        fields.setdefault("problem_stage", problem.stage)
    if state in ("failed", "uncertain"):
        fields.update(finished_at=now, failure_seen=False)
    fields["state"] = state
    with database.atomic():
        Letter.update(**fields).where(Letter.id == letter.id).execute()
        LetterAttempt.create(
            letter=letter.id, number=attempt, started_at=now, finished_at=now,
            outcome=outcome_label or result.outcome, stage=problem.stage if problem else STAGE,
            problem_code=problem.code if problem else "", server_reply=(problem.server_reply if problem else result.reply),
            smtp_code=problem.smtp_code if problem else None, mailbox_address=mailbox.address if mailbox else "",
        )
        if result.accepted and result.outcome in ("sent", "uncertain"):
            status = "accepted" if result.outcome == "sent" else "pending"
            if status == "accepted":
                (LetterRecipient.update(status="accepted", accepted_at=now, smtp_code=250, server_reply=result.reply,
                                        problem_code="")
                 .where((LetterRecipient.letter == letter.id) & LetterRecipient.address.in_(result.accepted))
                 .execute())
        for address, (code, reply, recipient_problem) in result.refused.items():
            (LetterRecipient.update(status="refused" if address in refused_for_good else "deferred",
                                    smtp_code=code, server_reply=reply, problem_code=recipient_problem.code)
             .where((LetterRecipient.letter == letter.id) & (LetterRecipient.address == address)).execute())
    for key, value in fields.items():
        setattr(letter, key, value)
    report.add(letter.id, state)


def _hold(letter, reason, until, now, policy, report):
    """Put a letter back to wait for a sending limit (no attempt counted); fail it once it is too old."""
    if (now - letter.queued_at).total_seconds() >= policy.max_age:
        problem = Problem(code=reason, stage=GAVE_UP, server_reply="")
        with database.atomic():
            Letter.update(state="failed", problem_code=reason, problem_stage=GAVE_UP, server_reply="",
                          smtp_code=None, finished_at=now, failure_seen=False, lease_token=None,
                          lease_expires_at=None, waiting_for="").where(Letter.id == letter.id).execute()
            LetterAttempt.create(letter=letter.id, started_at=now, finished_at=now, outcome="failed",
                                 stage=GAVE_UP, problem_code=problem.code)
        report.add(letter.id, "failed")
        return
    with database.atomic():
        if letter.waiting_for != reason:  # one history line per wait, not one per pass
            LetterAttempt.create(letter=letter.id, started_at=now, finished_at=now, outcome="limited",
                                 stage="limit", problem_code=reason)
        Letter.update(state="deferred", waiting_for=reason, next_attempt_at=until, lease_token=None,
                      lease_expires_at=None).where(Letter.id == letter.id).execute()
    report.add(letter.id, "held")
    report.wake_at(until)


@dataclass
class _Limits:
    """Sending counts in the current windows, read once per group and kept up to date in memory."""

    policy: QueuePolicy
    mailbox_sends: list  # datetimes of letters accepted through the mailbox in the last minute
    recipient_sends: dict  # address -> datetimes of acceptances in the recipient window

    @classmethod
    def load(cls, mailbox_id, addresses, now, policy):
        mailbox_sends = []
        if policy.mailbox_per_minute > 0:
            since = now - datetime.timedelta(seconds=60)
            mailbox_sends = sorted(row.sent_at for row in Letter.select(Letter.sent_at).where(
                (Letter.mailbox == mailbox_id) & (Letter.sent_at >= since)))
        recipient_sends: dict = defaultdict(list)
        if policy.recipient_limit > 0 and policy.recipient_window > 0 and addresses:
            since = now - datetime.timedelta(seconds=policy.recipient_window)
            unique = sorted(set(addresses))
            for start in range(0, len(unique), 500):
                rows = (LetterRecipient.select(LetterRecipient.address, LetterRecipient.accepted_at)
                        .where(LetterRecipient.address.in_(unique[start:start + 500])
                               & (LetterRecipient.accepted_at >= since)).tuples())
                for address, at in rows:
                    recipient_sends[address].append(at)
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


def retry_letter(letter: Letter, *, now: datetime.datetime | None = None) -> bool:
    """Queue a deferred, failed, uncertain or cancelled letter again now, with a fresh attempt budget."""
    now = now or utcnow()
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
