"""Which worker may send which letter: claiming due letters under a lease, renewing it, and the "data" mark.

A claim sets due letters to "sending" under a new lease token in one UPDATE; on PostgreSQL the rows
are picked with ``SELECT ... FOR UPDATE SKIP LOCKED``, so workers on several machines never wait on
each other, and on SQLite the UPDATE holds the one write lock. The "data" mark is the letter row's
``phase`` column, set by an UPDATE that also checks the lease token, so marking and checking the
lease are one atomic step: a worker whose lease another worker has taken cannot mark, and the
next claim of a marked letter sees the mark (and makes the letter "uncertain" instead of sending
it twice). Writing the letter's outcome resets the phase.
"""
from __future__ import annotations

import datetime
import uuid
from collections import defaultdict
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields

from portal.db import database, writing
from portal.models import Letter, LetterRecipient

REACHED_DATA = "data"  # phase: a worker marked the letter before its final dot could leave
NO_MAILBOX = 0  # as a mailbox id: the letters whose mailbox was deleted (each fails with the reason)


@dataclass(slots=True)
class ClaimedLetter:
    """What sending needs of a claimed letter; the rest (body text, headers shown in the Outbox) stays in the
    database."""

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
    origin: str  # "portal": the portal's own mail, sent whoever it is addressed to (no person's right checked)


@dataclass(frozen=True)
class ClaimedRecipient:
    """A recipient of a claimed letter, with the answer recorded so far."""

    id: int
    letter: int
    address: str
    status: str


_CLAIMED_FIELDS = tuple(Letter._meta.columns[f.name] for f in dataclass_fields(ClaimedLetter))


def due(now: datetime.datetime, mailbox_id: int | None = None):
    """Which letters are due: queued or deferred and their time has come, or "sending" under a lease run out.

    One mailbox's: the mailbox in each branch of the OR, so that each reads its part of letter_mailbox_due.
    """
    waiting = Letter.state.in_(("queued", "deferred")) & (Letter.next_attempt_at <= now)
    lapsed = (Letter.state == "sending") & (Letter.lease_expires_at < now)
    if mailbox_id is not None:
        mine = Letter.mailbox.is_null() if mailbox_id == NO_MAILBOX else Letter.mailbox == mailbox_id
        waiting, lapsed = mine & waiting, mine & lapsed
    return waiting | lapsed


class Lease:
    """One claim's lease: its token, when it runs out in the database, and which letters it still holds.

    Renewed before a letter once less than half of it is left, by an UPDATE on the token whose count says
    whether the letters are still ours: a worker slower than its lease (a stalled server, a paused process)
    finds out there, before sending, and leaves alone every letter another worker has claimed since.
    """

    def __init__(self, token: str, expires: datetime.datetime, seconds: float):
        self.token, self.expires, self.seconds = token, expires, seconds
        self.held: set | None = None  # None: all the claim took; else the ids still under the token at renewal

    def holds(self, letter_id: int, now: datetime.datetime) -> bool:
        """Whether this worker may still send the letter, renewing the lease first when half of it is gone."""
        if self.expires - now < datetime.timedelta(seconds=self.seconds / 2):
            self.renew(now)
        return self.held is None or letter_id in self.held

    def renew(self, now: datetime.datetime) -> None:
        """Extend the lease from now; afterwards ``held`` names the letters the database still gives this worker."""
        until = now + datetime.timedelta(seconds=self.seconds)
        renewed = Letter.update(lease_expires_at=until).where(Letter.lease_token == self.token).execute()
        self.held = ({letter_id for (letter_id,) in Letter.select(Letter.id).where(
            Letter.lease_token == self.token).tuples()} if renewed else set())
        self.expires = until

    def mark(self, letter_id: int) -> bool:
        """Mark the letter as past DATA while it is under this lease (committed at once); whether it still was."""
        return Letter.update(phase=REACHED_DATA).where(
            (Letter.id == letter_id) & (Letter.lease_token == self.token)).execute() == 1

    def release(self, letter_ids, due_at: datetime.datetime) -> int:
        """Give back these letters, due at ``due_at``, with no attempt counted (a stopping worker, a pass past its
        deadline); only those still under this lease and not marked."""
        ids = list(letter_ids)
        if not ids:
            return 0
        return (Letter.update(state="queued", lease_token=None, lease_expires_at=None, next_attempt_at=due_at)
                .where(Letter.id.in_(ids) & (Letter.lease_token == self.token) & (Letter.phase == "")).execute())


def claim(seconds: float, size: int, *, now: datetime.datetime, mailbox_id: int | None = None
          ) -> tuple[Lease, list[ClaimedLetter]]:
    """Take up to ``size`` due letters under a new lease of ``seconds``; returns the lease and the letters."""
    lease = Lease(uuid.uuid4().hex, now + datetime.timedelta(seconds=seconds), seconds)
    condition = due(now, mailbox_id)
    batch = Letter.select(Letter.id).where(condition).order_by(Letter.next_attempt_at, Letter.id).limit(size)
    if database.for_update:
        batch = batch.for_update("FOR UPDATE SKIP LOCKED")  # another worker's rows: not waited for, left to it
    # Two statements in one transaction: PostgreSQL may run a LIMIT ... SKIP LOCKED subquery inside an UPDATE more
    # than once and take more rows than the limit. The rows read stay locked (SQLite: the write lock) until the
    # UPDATE commits, and the condition is checked again on them.
    with writing():
        ids = [letter_id for (letter_id,) in batch.tuples()]
        taken = ids and (Letter.update(state="sending", lease_token=lease.token, lease_expires_at=lease.expires)
                         .where(Letter.id.in_(ids) & condition).execute())
    if not taken:
        return lease, []
    letters = [ClaimedLetter(*row) for row in Letter.select(*_CLAIMED_FIELDS)
               .where(Letter.lease_token == lease.token).order_by(Letter.next_attempt_at, Letter.id).tuples()]
    return lease, letters


def claim_due_letters(policy, *, now: datetime.datetime, mailbox_id: int | None = None,
                      limit: int | None = None) -> tuple[str, list[ClaimedLetter]]:
    """Take up to a batch of due letters under a new lease; returns (lease token, letters)."""
    size = min(policy.batch_size, limit) if limit else policy.batch_size
    lease, letters = claim(policy.lease, size, now=now, mailbox_id=mailbox_id)
    return lease.token, letters


def claimed_recipients(token: str) -> dict:
    """The recipients of the letters claimed under this lease, by letter id."""
    found = defaultdict(list)
    query = (LetterRecipient.select(LetterRecipient.id, LetterRecipient.letter, LetterRecipient.address,
                                    LetterRecipient.status)
             .join(Letter).where(Letter.lease_token == token).tuples())
    for row in query:
        recipient = ClaimedRecipient(*row)
        found[recipient.letter].append(recipient)
    return found
