"""One SMTP transaction: a letter's MAIL, RCPT for each recipient still waiting, DATA, and what the server said.

Which refusal belongs to whom matters as much as the refusal itself. A 4xx or 5xx reply to this
letter's own MAIL, RCPT or DATA is the letter's (temporary or for good); a protocol-state error
(503 "bad sequence of commands") or a reply the command cannot have is the session's: the
letter waits, the connection is dropped and the next letter connects anew. After any refusal the
transaction is reset (RSET) before the next letter on the same connection: Postfix answers the
next MAIL after its own 451 at the end of DATA with "503 nested MAIL command" otherwise. A
refusal at DATA is the answer for every recipient the server had accepted. No Flask, no database
but the "data" mark, written through ``mark(letter id)`` before the final dot can leave.
"""
from __future__ import annotations

import re
import select
import smtplib
import socket
from dataclasses import dataclass, field
from typing import Callable

from portal.mail.problems import Problem, classify, classify_reply

STAGE = "smtp.send"
ACCEPTED = (250, 251)

UNCERTAIN = "delivery_uncertain"  # the connection dropped after the final dot
OUT_OF_STEP = "session_out_of_step"  # a 503 or a reply the command cannot have: the session's problem
LEASE_LOST = "lease_lost"  # another worker took the letter over; this one left it alone


@dataclass
class Delivery:
    """One attempt's outcome for one letter, before it is written down."""

    outcome: str  # sent | deferred | failed | uncertain | lease_lost
    problem: Problem | None = None
    accepted: list = field(default_factory=list)  # addresses
    refused: dict = field(default_factory=dict)  # address -> (code, reply, problem)
    reply: str = ""
    connection_broken: bool = False


def deliver(smtp: smtplib.SMTP, from_address: str, addresses: list, payload: bytes, mark: Callable[[], bool]
            ) -> Delivery:
    """Send one letter over a signed-in session; returns what happened (writes nothing but the mark).

    ``mark()`` writes the "data" mark and says whether the letter is still this worker's; if not, the
    session is cut before the body, so the server drops the letter (LEASE_LOST).
    """
    try:
        # The addresses were checked and stored in plain form when the letter was made, so the envelope
        # commands are written directly: smtplib's mail() and rcpt() parse each address again per letter.
        code, reply = _command(smtp, "mail", f"FROM:<{from_address}>")
        if code not in ACCEPTED:
            return _refused(smtp, code, reply, "MAIL")
        refused, accepted = {}, []
        for address in addresses:
            code, reply = _command(smtp, "rcpt", f"TO:<{address}>")
            if code in ACCEPTED:
                accepted.append(address)
                continue
            problem = own_refusal(code, reply, "RCPT")
            refused[address] = (code, _text(reply), problem)
            if problem.code == OUT_OF_STEP:  # the server lost the transaction: no answer about the rest
                return Delivery("deferred", problem, refused=refused, connection_broken=True)
        if not accepted:
            worst = _first_temporary(refused) or next(iter(refused.values()))[2]
            return _reset(smtp, Delivery("deferred" if worst.temporary else "failed", worst, refused=refused))
        smtp.putcmd("data")
        # Marked, and committed, while the server answers DATA and before the final dot can leave: if this
        # worker dies from here on, the letter may have arrived and the next claim makes it "uncertain".
        if not mark():
            smtp.close()  # no final dot ever leaves: the server discards the unfinished letter
            return Delivery(LEASE_LOST, connection_broken=True)
        code, reply = smtp.getreply()
        if code != 354:
            return _refused(smtp, code, reply, "DATA", accepted, refused)
    except (OSError, smtplib.SMTPException) as error:
        # Nothing past the body has gone out: the letter cannot have been accepted, so a retry is safe.
        problem = classify(error, stage=STAGE)
        kind = "deferred" if problem.temporary or problem.code == "connection_dropped" else "failed"
        return Delivery(kind, problem, connection_broken=True)
    if _server_hung_up(smtp):
        # The server spoke or hung up after "354" (a drop during DATA): the dot never leaves, a retry is safe.
        problem = Problem(code="connection_dropped", stage=STAGE, server_reply="connection closed during DATA")
        return Delivery("deferred", problem, connection_broken=True)
    try:
        # Body and final dot in one write, as smtplib.sendmail does. If the write fails, its end (the dot)
        # did not leave, so the server cannot have taken the letter.
        smtp.send(dot_stuffed(payload) + b".\r\n")
    except (OSError, smtplib.SMTPException) as error:
        problem = classify(error, stage=STAGE)
        return Delivery("deferred", Problem(code="connection_dropped", stage=STAGE,
                                            server_reply=problem.server_reply), connection_broken=True)
    try:
        code, reply = smtp.getreply()
    except (OSError, smtplib.SMTPException) as error:
        problem = classify(error, stage=STAGE)
        return Delivery("uncertain", Problem(code=UNCERTAIN, stage=STAGE, server_reply=problem.server_reply),
                        accepted=accepted, refused=refused, connection_broken=True)
    if code in ACCEPTED:
        return Delivery("sent", accepted=accepted, refused=refused, reply=f"{code} {_text(reply)}")
    if code // 100 not in (4, 5):
        # Neither taken nor refused: whether it arrives cannot be known, so it is not sent again on its own.
        problem = Problem(code=UNCERTAIN, stage=STAGE, server_reply=f"{code} {_text(reply)}")
        return Delivery("uncertain", problem, accepted=accepted, refused=refused, connection_broken=True)
    return _refused(smtp, code, reply, "DATA", accepted, refused)


def own_refusal(code: int, reply, command: str) -> Problem:
    """The problem a reply to this letter's ``command`` names; a 503 or a reply the command cannot have is the
    session's problem (OUT_OF_STEP, temporary), never a refusal of the letter."""
    if code == 503 or code // 100 not in (4, 5):
        return Problem(code=OUT_OF_STEP, stage=STAGE, server_reply=f"{code} {_text(reply)}".strip())
    return classify_reply(code, reply, stage=STAGE, command=command)


def _refused(smtp, code, reply, command, accepted=(), refused=None) -> Delivery:
    """A refusal of the whole letter (MAIL or DATA): the answer of every recipient the server had taken."""
    problem = own_refusal(code, reply, command)
    refused = dict(refused or {})
    refused.update({address: (code, _text(reply), problem) for address in accepted})
    result = Delivery("deferred" if problem.temporary else "failed", problem, refused=refused)
    if problem.code == OUT_OF_STEP:
        result.connection_broken = True
        return result
    return _reset(smtp, result)


def _reset(smtp, result: Delivery) -> Delivery:
    """RSET after a refusal, so that the next letter starts a clean transaction; a session that cannot is dropped."""
    if result.problem is not None and result.problem.smtp_code == 421:
        result.connection_broken = True
        return result
    try:
        code, _ = smtp.rset()
        result.connection_broken = code != 250
    except (OSError, smtplib.SMTPException):
        result.connection_broken = True
    return result


_LEADING_DOT = re.compile(rb"(?m)^\.")


def dot_stuffed(payload: bytes) -> bytes:
    """The letter as DATA carries it: a line starting with a dot doubled (RFC 5321), ending with CRLF."""
    if payload.startswith(b".") or b"\n." in payload:
        payload = _LEADING_DOT.sub(b"..", payload)
    return payload if payload.endswith(b"\r\n") else payload + b"\r\n"


def _command(smtp: smtplib.SMTP, verb: str, argument: str):
    """One envelope command and the server's answer."""
    smtp.putcmd(verb, argument)
    return smtp.getreply()


def no_delay(smtp: smtplib.SMTP) -> None:
    """Send each command at once, never held back by Nagle waiting for an ACK."""
    try:
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


def _server_hung_up(smtp: smtplib.SMTP) -> bool:
    """Whether the server already spoke or hung up after "354" (a look without waiting: no pause per letter)."""
    sock = smtp.sock
    if sock is None:
        return True
    try:
        if getattr(sock, "pending", None) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _first_temporary(refused: dict) -> Problem | None:
    for _, _, problem in refused.values():
        if problem.temporary:
            return problem
    return None


def _text(reply) -> str:
    return " ".join((reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)).split())
