"""Real SMTP servers (aiosmtpd) for tests: STARTTLS or implicit TLS, AUTH, scripted failures."""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Callable

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from .certificates import ServerCertificate

HOST = "127.0.0.1"

# Scripted actions besides a literal reply such as "421 4.7.0 Try again later".
DROP_DURING_DATA = "drop during DATA"  # answer 354, then hang up before the letter's end
DROP_AFTER_DATA = "drop after DATA"  # take the whole letter, then hang up without a reply

# aiosmtpd warns through "mail.log" on every AUTH about a deprecated default; noise in test output.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def tls_options(certificate: ServerCertificate, security: str) -> dict:
    """aiosmtpd Controller options for "starttls" (required), "ssl" (implicit TLS) or "none"."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    if security == "starttls":
        return dict(tls_context=context, require_starttls=True)
    if security == "ssl":
        # aiosmtpd 1.4 does not count implicit TLS as TLS and would hide AUTH (issues #274, #281).
        return dict(ssl_context=context, auth_require_tls=False)
    return dict(auth_require_tls=False)


def start_on_free_port(make_controller: Callable[[int], Controller], host: str = HOST) -> tuple[Controller, int]:
    """Start ``make_controller(port)`` on a free port of ``host``; return it and the port."""
    for attempt in range(5):
        port = free_port(host)
        controller = make_controller(port)
        try:
            controller.start()
            return controller, port
        except Exception:  # another process took the port between free_port() and bind
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ReceivedMessage:
    """A letter the test server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None


class _ScriptedSMTP(SMTP):
    """aiosmtpd's session, with the scripted server's faults and, on request, Postfix's strictness."""

    transaction_left_open = False  # like_postfix: a letter refused at the end of DATA until RSET

    async def smtp_MAIL(self, arg):
        self.event_handler.server.commands.append("MAIL")
        every = self.event_handler.server.tarpits.get("MAIL")
        if every:
            # A tarpit: a reply that never ends, one byte at a time, each soon enough to beat any read timeout.
            self.event_handler.server.stalled.set()
            while not self.transport.is_closing():
                self.transport.write(b"2")
                await asyncio.sleep(every)
            return
        if self.transaction_left_open:
            # What Postfix answered after its own 451 at the end of DATA when the client went on without RSET.
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        return await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        self.event_handler.server.commands.append("RCPT")
        return await super().smtp_RCPT(arg)

    async def smtp_RSET(self, arg):
        self.event_handler.server.commands.append("RSET")
        self.transaction_left_open = False
        return await super().smtp_RSET(arg)

    async def smtp_DATA(self, arg):
        self.event_handler.server.commands.append("DATA")
        if self.event_handler.script.get("DATA") == DROP_DURING_DATA and self.envelope.rcpt_tos:
            sock = self.transport.get_extra_info("socket")
            cork = getattr(socket, "TCP_CORK", None)
            if cork is not None:
                # Hold the 354 in the kernel so that it leaves together with the FIN below: the client
                # then sees "354" and the hang-up at the same moment, however the machine is loaded.
                sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.transport.abort()
            return
        return await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, server: "SmtpServer"):
        self.server = server
        self.script = server.script

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        reply = self.script.get("EHLO")
        if reply:
            return [reply]
        session.host_name = hostname
        return responses

    async def _stall(self, command):
        seconds = self.server.stalls.get(command)
        if seconds:
            self.server.stalled.set()
            await asyncio.sleep(seconds)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        await self._stall("MAIL")
        reply = self.script.get("MAIL")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        await self._stall("RCPT")
        reply = self.server.refusals.get(address.lower()) or self.script.get("RCPT")
        if reply:
            if self.server.forget_after_refusal:
                # The server drops the transaction with the refusal: the next RCPT or DATA gets aiosmtpd's own
                # "503 Error: need MAIL command" / "need RCPT command".
                envelope.mail_from = None
                envelope.rcpt_tos.clear()
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        turns = self.server.turns.get("DATA")
        action = turns.pop(0) if turns else self.script.get("DATA")
        if action and action[0] in "45" and self.server.like_postfix:
            server.transaction_left_open = True
        if action == DROP_AFTER_DATA:
            server.transport.close()
            return "250 never heard"
        if action and action != DROP_DURING_DATA:
            return action
        login = session.auth_data if isinstance(session.auth_data, str) else None
        self.server.messages.append(ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos),
                                                    envelope.original_content or envelope.content, login))
        await self._stall("DATA")  # the letter is taken; only the reply is held back
        return "250 2.0.0 OK queued"


class _Controller(Controller):
    def factory(self):
        return _ScriptedSMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class SmtpServer:
    """A running aiosmtpd server: where it listens, who may sign in, and what it received.

    ``security`` is "starttls" (STARTTLS required before MAIL and AUTH), "ssl"
    (implicit TLS) or "none" (plain text, AUTH allowed without TLS). Script a
    failure with ``fail("MAIL", "421 4.7.0 Try again later")`` or
    ``fail("DATA", DROP_AFTER_DATA)``, refuse one recipient with ``refuse(address)``, hold a reply
    back with ``stall("RCPT", 30)`` (``stalled`` is set once a command waits), answer each DATA in turn with
    ``answer_in_turn("DATA", [None, "451 4.3.0 Try again"])``; ``clear_script()`` undoes all of it.
    ``commands`` lists the MAIL, RCPT, DATA and RSET commands received. ``like_postfix``: after a 4xx or 5xx at
    the end of DATA the next MAIL is answered "503 nested MAIL command" until the client sends RSET, as Postfix
    did. ``forget_after_refusal``: a refused RCPT also ends the transaction (the next RCPT gets a 503).
    """

    certificate: ServerCertificate
    security: str = "starttls"
    username: str = "sender@example.com"
    password: str = field(default="s3cret-smtp", repr=False)
    host: str = HOST
    port: int = 0
    messages: list[ReceivedMessage] = field(default_factory=list)
    script: dict[str, str] = field(default_factory=dict)
    logins: list[str] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)
    stalls: dict[str, float] = field(default_factory=dict)
    stalled: threading.Event = field(default_factory=threading.Event)
    turns: dict[str, list] = field(default_factory=dict)
    tarpits: dict[str, float] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    like_postfix: bool = False
    forget_after_refusal: bool = False
    _controller: Controller | None = field(default=None, repr=False)

    @property
    def ca_file(self) -> str:
        """The CA file that verifies this server's certificate."""
        return self.certificate.ca_file

    @property
    def fingerprint(self) -> str:
        """SHA-256 of this server's certificate, 64 lowercase hex digits."""
        return self.certificate.fingerprint

    def server_settings(self, **overrides):
        """ServerSettings that reach this server as "localhost" and sign in as its user."""
        from portal.mail.settings import ServerSettings

        fields = dict(host="localhost", port=self.port, security=self.security,
                      username=self.username, password=self.password)
        return ServerSettings(**{**fields, **overrides})

    def mailbox(self, incoming=None, **overrides):
        """MailboxSettings whose outgoing server is this one (address = the SMTP login)."""
        from portal.mail.settings import MailboxSettings

        return MailboxSettings(address=overrides.pop("address", self.username),
                               display_name=overrides.pop("display_name", "Test Sender"),
                               smtp=self.server_settings(**overrides), incoming=incoming)

    def fail(self, command: str, reply: str) -> None:
        """Answer ``command`` (EHLO, MAIL, RCPT or DATA) with ``reply`` or a DROP_* action from now on."""
        self.script[command.upper()] = reply

    def tarpit(self, command: str, every: float = 0.5) -> None:
        """Answer ``command`` (MAIL) with a reply that never ends: one byte every ``every`` seconds, forever."""
        self.stalled.clear()
        self.tarpits[command.upper()] = every

    def answer_in_turn(self, command: str, replies: list) -> None:
        """Answer the next DATA commands with these replies in turn (None: as usual), then as scripted."""
        self.turns[command.upper()] = list(replies)

    def refuse(self, address: str, reply: str = "550 5.1.1 Recipient address rejected: User unknown") -> None:
        """Answer RCPT for this one address with ``reply``; the other recipients are still accepted."""
        self.refusals[address.lower()] = reply

    def stall(self, command: str, seconds: float) -> None:
        """Wait ``seconds`` before answering ``command``, setting ``stalled``; for DATA the letter (final dot and
        all) is taken and recorded first, and only the reply is held back."""
        self.stalled.clear()
        self.stalls[command.upper()] = seconds

    def clear_script(self) -> None:
        """Behave normally again."""
        self.script.clear()
        self.refusals.clear()
        self.stalls.clear()
        self.turns.clear()
        self.tarpits.clear()

    def start(self) -> "SmtpServer":
        """Start listening on a free port of 127.0.0.1."""
        kwargs: dict = dict(hostname=self.host, server_hostname="localhost", authenticator=self._authenticate,
                            auth_exclude_mechanism=["CRAM-MD5"], **tls_options(self.certificate, self.security))
        self._controller, self.port = start_on_free_port(
            lambda port: _Controller(_Handler(self), port=port, **kwargs), self.host)
        return self

    def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        self.logins.append(login)
        ok = login == self.username and auth_data.password.decode() == self.password
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)


class SilentServer:
    """A socket that accepts connections (the kernel completes them) and never says a word."""

    def __init__(self, host: str = HOST):
        self.host = host
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._socket.bind((host, 0))
        self._socket.listen(16)
        self.port = self._socket.getsockname()[1]

    def stop(self) -> None:
        """Stop listening."""
        self._socket.close()
