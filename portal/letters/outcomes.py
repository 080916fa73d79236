"""Recording what happened to a letter: its state, a line of history, each recipient's answer; retry and cancel.

Every write about a claimed letter checks that the letter is still under the lease it was sent
under (a letter another worker took over is theirs), and writing the outcome takes the "data"
mark back (``phase``) in the same statement.
"""
from __future__ import annotations

import datetime
from typing import Any

from portal import events
from portal.db import writing
from portal.letters.deliver import STAGE, Delivery
from portal.mail.problems import Problem
from portal.models import Letter, LetterAttempt, LetterRecipient, utcnow

# Codes of situations the queue itself names (portal/mail/problems.toml explains each).
WORKER_LOST = "worker_lost"  # a worker stopped after the final dot and its lease ran out
MAILBOX_GONE = "mailbox_gone"
MAILBOX_PAUSED = "mailbox_paused"
MAILBOX_UNTESTED = "mailbox_untested"  # settings changed since the last passed test: waits for a new one
MAILBOX_STALLED = "mailbox_stalled"  # its server stalled a moment ago: the mailbox backs off on its own
SENDER_NOT_ALLOWED = "sender_not_allowed"  # the author may no longer send from this mailbox in this project
SETTINGS_UNREADABLE = "settings_unreadable"
GAVE_UP = "gave_up"  # the attempt or age budget ran out on a temporary problem
ALL_REFUSED = "all_refused"  # every recipient refused the letter for good: nobody is left to send it to
LEASE_LOST = "lease_lost"  # a report outcome: another worker took the letter over; this one left it alone


def queue_problem(code: str, reply: str = "") -> Problem:
    """A problem the queue names itself."""
    return Problem(code=code, stage=STAGE, server_reply=reply)


class Recorder:
    """Writes each attempt's outcome as it comes: the letter's state, its history line, the recipients' answers."""

    def __init__(self, policy, rng: Any, report):
        self.policy, self.rng, self.report = policy, rng, report

    def add(self, letter, result: Delivery, now, token, *, mailbox=None, recipients=(), number=None,
            outcome_label=None) -> str:
        """Write one attempt's outcome if the letter is still under ``token``; returns the state written (or
        LEASE_LOST)."""
        policy = self.policy
        attempt = number if number is not None else letter.attempts + 1
        refused_for_good = {a for a, (_, _, p) in result.refused.items() if not p.temporary}
        refused_for_now = {a for a, (_, _, p) in result.refused.items() if p.temporary}
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
        rows = {r.address: r.id for r in recipients}
        accepted = result.accepted if result.outcome == "sent" else []
        accepted_ids = [rows[address] for address in accepted if address in rows]  # read with the claim
        answers = [(address, dict(status="accepted", accepted_at=now, smtp_code=250, server_reply=result.reply,
                                  problem_code="")) for address in accepted if address not in rows]
        for address, (code, reply, recipient_problem) in result.refused.items():
            answers.append((address, dict(status="refused" if address in refused_for_good else "deferred",
                                          smtp_code=code, server_reply=reply, problem_code=recipient_problem.code)))
        with writing():
            if not Letter.update(**fields).where((Letter.id == letter.id) & (Letter.lease_token == token)).execute():
                self.report.add(letter.id, LEASE_LOST)
                return LEASE_LOST
            LetterAttempt.insert(
                letter=letter.id, number=attempt, started_at=now, finished_at=now,
                outcome=outcome_label or result.outcome, stage=problem.stage if problem else STAGE,
                problem_code=problem.code if problem else "",
                server_reply=(problem.server_reply if problem else result.reply),
                smtp_code=problem.smtp_code if problem else None,
                mailbox_address=mailbox.address if mailbox else "").execute()
            if accepted_ids:  # one statement for every recipient the server accepted
                LetterRecipient.update(status="accepted", accepted_at=now, smtp_code=250, server_reply=result.reply,
                                       problem_code="").where(LetterRecipient.id.in_(accepted_ids)).execute()
            for address, answer in answers:
                which = (LetterRecipient.id == rows[address] if address in rows
                         else (LetterRecipient.letter == letter.id) & (LetterRecipient.address == address))
                LetterRecipient.update(**answer).where(which).execute()
        self.report.add(letter.id, state)
        if state == "sent":
            events.letter_sent.send(letter)
        elif state == "failed":
            events.letter_failed.send(letter, problem=fields.get("problem_code", ""))
        return state


def hold(letter, token, reason, until, now, policy, report):
    """Put a letter back to wait (a sending limit, a paused, untested or stalled mailbox; no attempt counted);
    fail it once it is too old. Written only while the letter is still under ``token``."""
    held = (Letter.id == letter.id) & (Letter.lease_token == token)
    if (now - letter.queued_at).total_seconds() >= policy.max_age:
        with writing():
            if not Letter.update(state="failed", problem_code=reason, problem_stage=GAVE_UP, server_reply="",
                                 smtp_code=None, finished_at=now, failure_seen=False, lease_token=None,
                                 lease_expires_at=None, waiting_for="", phase="").where(held).execute():
                report.add(letter.id, LEASE_LOST)
                return
            LetterAttempt.create(letter=letter.id, started_at=now, finished_at=now, outcome="failed",
                                 stage=GAVE_UP, problem_code=reason)
        report.add(letter.id, "failed")
        events.letter_failed.send(letter, problem=reason)
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
    with writing():
        changed = (Letter.update(state="queued", next_attempt_at=now, queued_at=now, round_start=Letter.attempts,
                                 waiting_for="", failure_seen=True, phase="", finished_at=None)
                   .where((Letter.id == letter.id)
                          & Letter.state.in_(("deferred", "failed", "uncertain", "cancelled"))).execute())
        if changed:
            LetterRecipient.update(status="pending").where(
                (LetterRecipient.letter == letter.id) & (LetterRecipient.status == "deferred")).execute()
    return bool(changed)


def cancel_letter(letter: Letter, *, now: datetime.datetime | None = None) -> bool:
    """Stop a letter that has not gone out yet (queued or deferred); a letter being sent cannot be stopped."""
    now = now or utcnow()
    with writing():
        changed = (Letter.update(state="cancelled", finished_at=now, lease_token=None, waiting_for="")
                   .where((Letter.id == letter.id) & Letter.state.in_(("queued", "deferred"))).execute())
        if changed:
            LetterAttempt.create(letter=letter.id, started_at=now, finished_at=now, outcome="cancelled", stage="")
    return bool(changed)
