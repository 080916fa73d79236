"""Check a mailbox against its real servers, stage by stage ("Test account")."""
from __future__ import annotations

import secrets
import smtplib
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Callable

from .connection import open_incoming, open_smtp
from .deadline import Deadline
from .details import detail
from .errors import MailError
from .presets import provider_for
from .problems import Problem
from .remedies import with_remedy
from .settings import MailboxSettings, MailConfig
from .stages import Stage, StageLog, stage_label

__all__ = ["check_account", "CheckResult", "Stage", "stage_label", "test_letter"]

# The envelope stage's outside recipient: any domain the server does not deliver to itself. Only RCPT is
# offered (then RSET), so nothing reaches it; a well-known domain, so a server that checks the domain finds it.
OUTSIDE_RECIPIENT = "postmaster@gmail.com"
# The ownership proof: the test letter carries a one-time code the incoming side looks for.
CODE_HEADER = "X-Portal-Check"
ROUND_TRIP_SECONDS = 60.0  # how long after sending the letter may take to arrive
ROUND_TRIP_POLL_SECONDS = 1.0
ROUND_TRIP_NEWEST = 30  # POP3 has no search: the newest letters' headers are read


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check: passed or not, every stage, and the first problem."""

    ok: bool
    stages: list[Stage]
    problem: Problem | None

    @property
    def certificate_fingerprint(self) -> str | None:
        """The SHA-256 fingerprint of the first certificate that was refused, to offer pinning it."""
        for stage in self.stages:
            if stage.fingerprint and not stage.ok:
                return stage.fingerprint
        return None

    @property
    def certificate_expires(self) -> str | None:
        """When the first of the servers' certificates ends (ISO, UTC), of those the check reached."""
        return min((stage.certificate_expires for stage in self.stages if stage.certificate_expires), default=None)

    def to_dict(self, lang: str = "en") -> dict:
        """The result as the JSON object the command line prints and the page may fetch."""
        return {"ok": self.ok, "problem": self.problem.to_dict(lang) if self.problem else None,
                "stages": [stage.to_dict() for stage in self.stages]}


def check_account(settings: MailboxSettings, config: MailConfig, *, send_test_letter: bool = False,
                  deadline: Deadline | float | None = None,
                  on_stage: Callable[[Stage], None] | None = None,
                  round_trip_seconds: float = ROUND_TRIP_SECONDS) -> CheckResult:
    """Run every stage of the outgoing and (if configured) incoming check concurrently and report them.

    Both sides together must be over by ``deadline`` (seconds, else PORTAL_MAIL_DEADLINE from now);
    ``on_stage`` hears of each stage as it finishes, from whichever thread ran it. With a test letter and
    incoming settings the check is an ownership proof: the letter carries a one-time code, and the incoming
    side waits up to ``round_trip_seconds`` after sending until it finds it (the deadline grows by that much).
    """
    provider = provider_for(settings)
    limit = deadline if isinstance(deadline, Deadline) else Deadline(deadline or config.deadline)
    try:
        return _check_both_sides(settings, config, send_test_letter, provider, limit, on_stage, round_trip_seconds)
    finally:
        if limit is not deadline:
            limit.close()


def _check_both_sides(settings: MailboxSettings, config: MailConfig, send_test_letter: bool, provider: str | None,
                      deadline: Deadline, on_stage: Callable[[Stage], None] | None,
                      round_trip_seconds: float = ROUND_TRIP_SECONDS) -> CheckResult:
    outgoing = StageLog("outgoing", provider, deadline=deadline, on_stage=on_stage)
    incoming = StageLog("incoming", provider, deadline=deadline, on_stage=on_stage)
    found: dict[str, Problem | None] = {}
    crashed: list[BaseException] = []
    letter = RoundTrip(seconds=round_trip_seconds) if send_test_letter and settings.incoming is not None else None

    def check_incoming() -> None:
        try:
            found["incoming"] = _check_incoming(settings, config, incoming, letter)
        except BaseException as exc:  # re-raised in the caller's thread, not lost in this one
            crashed.append(exc)

    worker = None
    if settings.incoming is not None:
        worker = threading.Thread(target=check_incoming, name="portal-mail-check-incoming", daemon=True)
        worker.start()
    try:
        found["outgoing"] = _check_outgoing(settings, config, outgoing, send_test_letter, letter)
    finally:
        if letter is not None:
            letter.sent.set()  # whatever happened, the incoming side stops waiting for it
    if worker is not None:
        worker.join()  # bounded: the deadline shuts down every socket the other side still waits on
    if crashed:
        raise crashed[0]
    problem = found["outgoing"] or found.get("incoming")
    if problem is not None:
        problem = with_remedy(problem, settings)
    return CheckResult(ok=problem is None, stages=outgoing.stages + incoming.stages, problem=problem)


def _check_outgoing(settings: MailboxSettings, config: MailConfig, log: StageLog,
                    send_test_letter: bool, letter: "RoundTrip | None") -> Problem | None:
    try:
        with open_smtp(settings, config, stages=log, deadline=log.deadline) as smtp:
            with log.step("smtp.envelope") as step:
                step.server_reply = step.detail = prove_relaying(smtp, settings.address)
            if send_test_letter:
                with log.step("smtp.test_letter") as step:
                    offer_envelope(smtp, settings.address)
                    code, reply = smtp.data(test_letter(settings, letter.code if letter else None).as_bytes())
                    if code != 250:
                        raise smtplib.SMTPDataError(code, reply)
                    step.server_reply = step.detail = f"{code} {reply.decode('utf-8', 'replace')}"
                    if letter is not None:
                        letter.sent_at = time.monotonic()
                        letter.sent.set()  # the incoming side starts looking now, not after QUIT
    except MailError as error:
        return error.problem
    return None


def _check_incoming(settings: MailboxSettings, config: MailConfig, log: StageLog,
                    letter: "RoundTrip | None" = None) -> Problem | None:
    protocol = settings.incoming.protocol
    try:
        with open_incoming(settings, config, stages=log, deadline=log.deadline) as client:
            with log.step(f"{protocol}.mailbox") as step:
                if protocol == "pop3":
                    count, size = client.stat()
                    step.detail = detail("pop3.mailbox", count=count, size=size)
                else:
                    typ, data = client.select("INBOX", readonly=True)
                    if typ != "OK":
                        raise client.error(data[-1] if data else "SELECT INBOX failed")
                    step.detail = detail("imap.mailbox", count=int(data[0]))
        if letter is not None:
            _await_letter(settings, config, log, letter)
    except MailError as error:
        return error.problem
    return None


@dataclass
class RoundTrip:
    """The test letter of an ownership proof: its one-time code, and when the outgoing server took it."""

    seconds: float = ROUND_TRIP_SECONDS
    code: str = field(default_factory=lambda: secrets.token_hex(5).upper())
    sent: threading.Event = field(default_factory=threading.Event)
    sent_at: float | None = None  # None: the letter was not sent (the outgoing side failed)


class LetterNotArrived(TimeoutError):
    """The test letter was accepted for sending but did not reach the mailbox in time."""

    kind = "test_letter_not_arrived"


def _await_letter(settings: MailboxSettings, config: MailConfig, log: StageLog, letter: RoundTrip) -> None:
    """Wait (up to ``letter.seconds`` after it was sent) until the test letter with the code is in the mailbox."""
    letter.sent.wait()
    if letter.sent_at is None:
        return  # the outgoing side says why; there is nothing to wait for
    protocol = settings.incoming.protocol
    # Waiting for delivery is not a slow server: the conversation may take the round trip's time on top.
    log.deadline.renew(letter.seconds + config.timeout)
    with log.step(f"{protocol}.round_trip") as step:
        while True:
            with open_incoming(settings, config, stages=StageLog("incoming", log.provider),
                               deadline=log.deadline) as client:
                if _has_letter(client, protocol, letter.code):
                    break
            waited = time.monotonic() - letter.sent_at
            if waited >= letter.seconds:
                raise LetterNotArrived(f"no letter with the code {letter.code} after {waited:.0f} s")
            time.sleep(min(ROUND_TRIP_POLL_SECONDS, letter.seconds - waited))
        step.detail = detail("round_trip", seconds=f"{time.monotonic() - letter.sent_at:.1f}", code=letter.code)


def _has_letter(client, protocol: str, code: str) -> bool:
    if protocol == "imap":
        typ, data = client.select("INBOX", readonly=True)
        if typ != "OK":
            raise client.error(data[-1] if data else "SELECT INBOX failed")
        typ, data = client.search(None, "HEADER", CODE_HEADER, code)
        return typ == "OK" and bool(data and data[0].split())
    count, _ = client.stat()
    wanted = f"{CODE_HEADER}: {code}".encode().lower()
    for number in range(count, max(0, count - ROUND_TRIP_NEWEST), -1):  # the newest letters only
        _, lines, _ = client.top(number, 0)
        if any(line.strip().lower() == wanted for line in lines):
            return True
    return False


def offer_envelope(smtp: smtplib.SMTP, address: str) -> str:
    """Send MAIL FROM and RCPT TO ``address``; raise the smtplib refusal if either is refused."""
    code, reply = smtp.mail(address)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, reply, address)
    code, reply = smtp.rcpt(address)
    if code not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({address: (code, reply)})
    return f"{code} {reply.decode('utf-8', 'replace')}"


def prove_relaying(smtp: smtplib.SMTP, address: str) -> str:
    """Offer MAIL FROM the mailbox with RCPT TO itself and to an outside address, then RSET; nothing is sent.

    A server that takes a letter for its own mailbox may still refuse to pass one on (an MX port, a port
    without sign-in): only the outside recipient shows that the mailbox's letters will leave.
    """
    own = offer_envelope(smtp, address)
    code, reply = smtp.rcpt(OUTSIDE_RECIPIENT)
    if code not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({OUTSIDE_RECIPIENT: (code, reply)})
    smtp.rset()
    return f"{own}; {code} {reply.decode('utf-8', 'replace')}"


def test_letter(settings: MailboxSettings, code: str | None = None) -> EmailMessage:
    """The letter a check sends to the mailbox's own address when asked to; ``code`` marks a round trip's."""
    message = EmailMessage()
    message["From"] = formataddr((settings.display_name, settings.address))
    message["To"] = settings.address
    message["Subject"] = "Проверка ящика / Mailbox test" + (f" {code}" if code else "")
    if code:
        message[CODE_HEADER] = code
    message["Date"] = formatdate(localtime=True)
    # make_msgid's default domain comes from getfqdn(), which can hang without DNS.
    message["Message-ID"] = make_msgid(domain=settings.domain or "localhost")
    message.set_content("Это проверочное письмо портала: ящик настроен верно.\n\n"
                        "This is the portal's test letter: the mailbox is set up correctly.\n")
    return message


test_letter.__test__ = False  # not a pytest test, despite the name
