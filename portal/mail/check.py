"""Check a mailbox against its real servers, stage by stage ("Test account")."""
from __future__ import annotations

import smtplib
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Callable

from .connection import open_incoming, open_smtp
from .deadline import Deadline
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

    def to_dict(self, lang: str = "en") -> dict:
        """The result as the JSON object the command line prints and the page may fetch."""
        return {"ok": self.ok, "problem": self.problem.to_dict(lang) if self.problem else None,
                "stages": [stage.to_dict() for stage in self.stages]}


def check_account(settings: MailboxSettings, config: MailConfig, *, send_test_letter: bool = False,
                  deadline: Deadline | float | None = None,
                  on_stage: Callable[[Stage], None] | None = None) -> CheckResult:
    """Run every stage of the outgoing and (if configured) incoming check concurrently and report them.

    Both sides together must be over by ``deadline`` (seconds, else PORTAL_MAIL_DEADLINE from now);
    ``on_stage`` hears of each stage as it finishes, from whichever thread ran it.
    """
    provider = provider_for(settings)
    limit = deadline if isinstance(deadline, Deadline) else Deadline(deadline or config.deadline)
    try:
        return _check_both_sides(settings, config, send_test_letter, provider, limit, on_stage)
    finally:
        if limit is not deadline:
            limit.close()


def _check_both_sides(settings: MailboxSettings, config: MailConfig, send_test_letter: bool, provider: str | None,
                      deadline: Deadline, on_stage: Callable[[Stage], None] | None) -> CheckResult:
    outgoing = StageLog("outgoing", provider, deadline=deadline, on_stage=on_stage)
    incoming = StageLog("incoming", provider, deadline=deadline, on_stage=on_stage)
    found: dict[str, Problem | None] = {}
    crashed: list[BaseException] = []

    def check_incoming() -> None:
        try:
            found["incoming"] = _check_incoming(settings, config, incoming)
        except BaseException as exc:  # re-raised in the caller's thread, not lost in this one
            crashed.append(exc)

    worker = None
    if settings.incoming is not None:
        worker = threading.Thread(target=check_incoming, name="portal-mail-check-incoming", daemon=True)
        worker.start()
    found["outgoing"] = _check_outgoing(settings, config, outgoing, send_test_letter)
    if worker is not None:
        worker.join()  # bounded: the deadline shuts down every socket the other side still waits on
    if crashed:
        raise crashed[0]
    problem = found["outgoing"] or found.get("incoming")
    if problem is not None:
        problem = with_remedy(problem, settings)
    return CheckResult(ok=problem is None, stages=outgoing.stages + incoming.stages, problem=problem)


def _check_outgoing(settings: MailboxSettings, config: MailConfig, log: StageLog,
                    send_test_letter: bool) -> Problem | None:
    try:
        with open_smtp(settings, config, stages=log, deadline=log.deadline) as smtp:
            with log.step("smtp.envelope") as step:
                step.server_reply = step.detail = prove_relaying(smtp, settings.address)
            if send_test_letter:
                with log.step("smtp.test_letter") as step:
                    offer_envelope(smtp, settings.address)
                    code, reply = smtp.data(test_letter(settings).as_bytes())
                    if code != 250:
                        raise smtplib.SMTPDataError(code, reply)
                    step.server_reply = step.detail = f"{code} {reply.decode('utf-8', 'replace')}"
    except MailError as error:
        return error.problem
    return None


def _check_incoming(settings: MailboxSettings, config: MailConfig, log: StageLog) -> Problem | None:
    protocol = settings.incoming.protocol
    try:
        with open_incoming(settings, config, stages=log, deadline=log.deadline) as client:
            with log.step(f"{protocol}.mailbox") as step:
                if protocol == "pop3":
                    count, size = client.stat()
                    step.detail = f"{count} messages, {size} bytes"
                else:
                    typ, data = client.select("INBOX", readonly=True)
                    if typ != "OK":
                        raise client.error(data[-1] if data else "SELECT INBOX failed")
                    step.detail = f"{int(data[0])} messages in INBOX"
    except MailError as error:
        return error.problem
    return None


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


def test_letter(settings: MailboxSettings) -> EmailMessage:
    """The letter a check sends to the mailbox's own address when asked to."""
    message = EmailMessage()
    message["From"] = formataddr((settings.display_name, settings.address))
    message["To"] = settings.address
    message["Subject"] = "Проверка ящика / Mailbox test"
    message["Date"] = formatdate(localtime=True)
    # make_msgid's default domain comes from getfqdn(), which can hang without DNS.
    message["Message-ID"] = make_msgid(domain=settings.domain or "localhost")
    message.set_content("Это проверочное письмо портала: ящик настроен верно.\n\n"
                        "This is the portal's test letter: the mailbox is set up correctly.\n")
    return message


test_letter.__test__ = False  # not a pytest test, despite the name
