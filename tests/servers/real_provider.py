"""A real mail provider on loopback: a private Postfix 3.7 + Dovecot 2.3, configured as providers configure them.

Submission with STARTTLS and with implicit TLS (SASL through Dovecot, ``smtpd_tls_auth_only``,
``reject_sender_login_mismatch``), an MX-style port without SASL that relays nothing, IMAP/POP3 that refuse
plaintext passwords on a non-secure connection (reached on 127.0.0.2, because Dovecot counts a connection
whose two ends have the same IP as secure), LMTP delivery into maildirs, the ``client.example`` domain whose
letters a test reads back, and ``gone.example`` whose mail bounces back to the sender as a real DSN.

Never the system instances: Postfix runs as ``postfix -c ROOT/postfix`` with its own queue, Dovecot with its
own ``base_dir``, both on free loopback ports. The configuration templates are in ``real_provider/``.
"""
from __future__ import annotations

import email
import email.policy
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from .certificates import ServerCertificate, make_certificate
from .dovecot import DOVECOT, MAIL_UID
from .processes import terminate_by_pid_file
from .smtp import HOST, free_port

POSTFIX = "/usr/sbin/postfix"
POSTMAP = "/usr/sbin/postmap"
POSTQUEUE = "/usr/sbin/postqueue"
TEMPLATES = Path(__file__).with_name("real_provider")

INCOMING_HOST = "127.0.0.2"  # IMAP/POP3 here: from 127.0.0.1 it is a non-secure connection for Dovecot
PROVIDER_DOMAIN = "mail.example"  # the provider's own users
CLIENT_DOMAIN = "client.example"  # "the outside world": delivered locally so a test can read the letters
BOUNCING_DOMAIN = "gone.example"  # sent to the MX port, which refuses it: the sender gets a DSN
CERTIFICATE_NAMES = ("mail.test", "localhost", "127.0.0.1", "127.0.0.2")
TEMPORARY_SCANNER_FAILURE = "451 4.3.0 Temporary content scanner failure"
MAILBOX_BUSY = "450 4.2.0 Mailbox busy, try again later"
SERVICE_NOT_AVAILABLE = "421 4.7.0 Service not available, closing transmission channel"
CONTENT_REJECTED = "5.7.1 Message content rejected"

_SMTP_PORTS = ("mx", "submission", "submissions")
_DOVECOT_PORTS = ("imap", "imaps", "pop3", "pop3s", "lmtp")


def missing_reason() -> str | None:
    """Why the real provider cannot run on this machine (a missing program), or None when it can."""
    missing = [path for path in (POSTFIX, POSTMAP, POSTQUEUE, DOVECOT) if not os.access(path, os.X_OK)]
    if not os.path.exists("/usr/lib/dovecot/lmtp"):
        missing.append("/usr/lib/dovecot/lmtp")
    if missing:
        return (f"the real provider needs {', '.join(missing)}; install the Debian packages postfix, "
                "dovecot-core, dovecot-imapd, dovecot-pop3d and dovecot-lmtpd")
    if os.geteuid() != 0:
        return "the real provider runs a private Postfix, which must be started as root"
    return None


def _free_port_on_both_hosts() -> int:
    """A port free on 127.0.0.1 and on 127.0.0.2 (Dovecot listens on both)."""
    while True:
        port = free_port(HOST)
        try:
            with socket.socket() as probe:
                probe.bind((INCOMING_HOST, port))
            return port
        except OSError:
            continue


@dataclass
class RealProvider:
    """A running private Postfix + Dovecot: ports, users, delivered letters and failure switches.

    ``ports`` maps "mx" (no SASL, relays nothing), "submission" (STARTTLS required), "submissions" (implicit
    TLS), "imap", "imaps", "pop3", "pop3s" and "lmtp" to port numbers. SMTP listens on ``host``
    (127.0.0.1); IMAP and POP3 are reached on ``incoming_host`` (127.0.0.2).
    """

    root: Path
    host: str = HOST
    incoming_host: str = INCOMING_HOST
    ports: dict[str, int] = field(default_factory=dict)
    certificate: ServerCertificate | None = None
    _mailboxes: dict[str, str] = field(default_factory=dict, repr=False)  # address -> home
    _senders: dict[str, list[str]] = field(default_factory=dict, repr=False)  # address -> logins
    _rcpt_replies: dict[str, str] = field(default_factory=dict, repr=False)
    _end_of_data_replies: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def ca_file(self) -> str:
        """The CA file that verifies the provider's certificate."""
        return self.certificate.ca_file

    @property
    def postfix_dir(self) -> Path:
        """The private Postfix's configuration folder (``postfix -c`` takes it)."""
        return self.root / "postfix"

    # -- life cycle -------------------------------------------------------------------------------------

    def start(self) -> "RealProvider":
        """Write the configuration, start Dovecot and Postfix; return once every port accepts connections."""
        self._open_path()
        for sub in ("postfix", "spool", "dovecot/users", "vmail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chown(self.root / "vmail", MAIL_UID, MAIL_UID)
        self.certificate = make_certificate(self.root / "certs", label="provider", names=CERTIFICATE_NAMES)
        self.ports = {name: free_port(self.host) for name in _SMTP_PORTS}
        self.ports.update({name: _free_port_on_both_hosts() for name in _DOVECOT_PORTS})
        values = dict(root=self.root, cert=self.certificate.cert_file, key=self.certificate.key_file,
                      name=secrets.token_hex(4), **self.ports)
        for template in ("main.cf", "master.cf"):
            text = (TEMPLATES / template).read_text().format(**values)
            (self.postfix_dir / template).write_text(text)
        (self.root / "dovecot" / "dovecot.conf").write_text((TEMPLATES / "dovecot.conf").read_text().format(**values))
        # Both local domains go through LMTP into Dovecot's maildirs; gone.example to the MX port, which refuses it.
        (self.postfix_dir / "transport").write_text(f"{BOUNCING_DOMAIN} smtp:[{self.host}]:{self.ports['mx']}\n")
        for name in ("header_checks", "body_checks"):
            (self.postfix_dir / name).write_text("")
        self._write_maps()
        self._postmap("transport")
        self._run([POSTFIX, "-c", str(self.postfix_dir), "check"], "postfix check")  # makes the queue folders
        self._start_dovecot()
        self.start_postfix()
        self._wait_for_ports(self.host, [self.ports[name] for name in (*_SMTP_PORTS, "lmtp")])
        self._wait_for_ports(self.incoming_host, [self.ports[name] for name in ("imap", "imaps", "pop3", "pop3s")])
        return self

    def stop(self) -> None:
        """Stop Postfix and Dovecot and wait until both have exited (safe after a failed start)."""
        self.stop_postfix()
        terminate_by_pid_file(self.root / "dovecot" / "run" / "master.pid")

    def start_postfix(self) -> None:
        """Start the Postfix part (the SMTP server) again after ``stop_postfix``."""
        self._run([POSTFIX, "-c", str(self.postfix_dir), "start"], "postfix start")
        self._wait_for_ports(self.host, [self.ports[name] for name in _SMTP_PORTS])

    def stop_postfix(self) -> None:
        """Stop the SMTP server, like a provider's outage: its ports refuse connections until started again."""
        pid_file = self.root / "spool" / "pid" / "master.pid"
        if not pid_file.exists():
            return
        subprocess.run([POSTFIX, "-c", str(self.postfix_dir), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        terminate_by_pid_file(pid_file)  # waits until the master has gone (a no-op if it already has)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._accepts(self.host, self.ports["submission"]):
            time.sleep(0.05)

    # -- users and letters ---------------------------------------------------------------------------------

    def add_user(self, address: str, password: str | None = None) -> str:
        """Add a mailbox that can sign in (SMTP, IMAP, POP3) and send as itself; return its password.

        Addresses at ``client.example`` are the outside world's: letters to them are delivered here too.
        """
        address = address.lower()
        password = password or secrets.token_urlsafe(12)
        domain, local = address.rpartition("@")[2], address.rpartition("@")[0]
        home = self.root / "vmail" / domain / local
        for path in (home.parent, home, home / "Maildir", *(home / "Maildir" / sub for sub in ("cur", "new", "tmp"))):
            path.mkdir(exist_ok=True)
            os.chown(path, MAIL_UID, MAIL_UID)
        (self.root / "dovecot" / "users" / address).write_text(
            f"{address}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_UID}::{home}::\n")
        self._mailboxes[address] = str(home)
        self._senders.setdefault(address, [address])
        self._write_maps()
        return password

    def allow_sender(self, address: str, *logins: str) -> None:
        """Let these logins send as ``address`` too (a shared mailbox used through a person's login)."""
        owners = self._senders.setdefault(address.lower(), [])
        owners.extend(login.lower() for login in logins if login.lower() not in owners)
        self._write_maps()

    def letters(self, address: str) -> list[EmailMessage]:
        """Every letter delivered to ``address`` so far, oldest first, parsed."""
        maildir = Path(self._mailboxes[address.lower()]) / "Maildir"
        files = [path for sub in ("new", "cur") for path in (maildir / sub).iterdir()]
        files.sort(key=lambda path: (path.stat().st_mtime_ns, path.name))
        return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default) for path in files]

    def wait_for_letters(self, address: str, count: int = 1, timeout: float = 20.0) -> list[EmailMessage]:
        """Wait until ``address`` has at least ``count`` letters; fail with the mail log's tail if it does not."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.letters(address)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{address} has {len(found)} letter(s), not {count}, after {timeout} s;"
                                     f" mail log:\n{self.log_tail()}")
            time.sleep(0.05)

    def flush_queue(self) -> None:
        """Retry every deferred letter now."""
        self._run([POSTQUEUE, "-c", str(self.postfix_dir), "-f"], "postqueue -f")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of Postfix's and Dovecot's logs, for a failure message."""
        parts = []
        for name in ("postfix.log", "dovecot.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    # -- failure switches --------------------------------------------------------------------------------

    def refuse_recipient(self, address: str, reply: str = MAILBOX_BUSY) -> None:
        """Answer RCPT TO ``address`` with ``reply`` (``MAILBOX_BUSY``, ``SERVICE_NOT_AVAILABLE``, a 5xx...)."""
        self._rcpt_replies[address.lower()] = reply
        self._write_maps()

    def fail_end_of_data(self, address: str, reply: str = TEMPORARY_SCANNER_FAILURE) -> None:
        """Answer the end of DATA of a letter to ``address`` with ``reply``, after the whole letter was sent."""
        self._end_of_data_replies[address.lower()] = reply
        self._write_maps()

    def reject_content(self, word: str, text: str = CONTENT_REJECTED) -> None:
        """Refuse at the end of DATA, with ``550 <text>``, any letter whose body contains ``word``."""
        (self.postfix_dir / "body_checks").write_text(f"/{re.escape(word)}/ REJECT {text}\n")

    def clear_failures(self) -> None:
        """Switch every failure case off again (the server itself stays as it is)."""
        self._rcpt_replies.clear()
        self._end_of_data_replies.clear()
        (self.postfix_dir / "body_checks").write_text("")
        self._write_maps()

    # -- settings for the portal -----------------------------------------------------------------------

    def mail_config(self, timeout: float = 10.0):
        """A MailConfig that lets the portal reach this provider and trusts its certificate."""
        from portal.mail.settings import MailConfig

        return MailConfig(timeout=timeout, allowed_hosts=(f"{self.host}:*", f"{self.incoming_host}:*"),
                          ca_file=self.ca_file)

    def mailbox_settings(self, address: str, password: str, *, smtp: str = "submission",
                         incoming: str | None = "imaps", login: str | None = None, **smtp_overrides):
        """MailboxSettings for ``address`` on this provider: ``smtp`` and ``incoming`` name a port of ``ports``."""
        from portal.mail.settings import IncomingSettings, MailboxSettings, ServerSettings

        security = {"submission": "starttls", "submissions": "ssl", "mx": "none"}
        login = login or address
        server = ServerSettings(**{**dict(host=self.host, port=self.ports[smtp], security=security[smtp],
                                          username=login, password=password), **smtp_overrides})
        fetch = None
        if incoming:
            protocol = incoming.rstrip("s")
            fetch = IncomingSettings(protocol, ServerSettings(
                host=self.incoming_host, port=self.ports[incoming],
                security="ssl" if incoming.endswith("s") else "starttls", username=login, password=password))
        return MailboxSettings(address=address, display_name=address.partition("@")[0].title(), smtp=server,
                               incoming=fetch)

    # -- inside --------------------------------------------------------------------------------------------

    def _open_path(self) -> None:
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)
        for parent in list(self.root.parents)[:3]:
            # Temporary folders are 0700; Postfix's and Dovecot's own users must traverse them.
            if parent.exists() and parent != Path("/"):
                os.chmod(parent, os.stat(parent).st_mode | 0o055)

    def _write_maps(self) -> None:
        """Rewrite and postmap the Postfix tables; with ``max_use = 1`` the next connection reads them."""
        if not self.postfix_dir.exists():
            return
        tables = {
            "vmailbox": {address: f"{Path(home).relative_to(self.root / 'vmail')}/"
                         for address, home in self._mailboxes.items()},
            "sender_login": {address: ", ".join(logins) for address, logins in self._senders.items()},
            "rcpt_access": self._rcpt_replies,
            "eod_access": self._end_of_data_replies,
        }
        for name, table in tables.items():
            (self.postfix_dir / name).write_text("".join(f"{key} {value}\n" for key, value in table.items()))
            self._postmap(name)

    def _postmap(self, name: str) -> None:
        self._run([POSTMAP, "-c", str(self.postfix_dir), f"hash:{self.postfix_dir / name}"], f"postmap {name}")

    def _start_dovecot(self) -> None:
        shutil.rmtree(self.root / "dovecot" / "run", ignore_errors=True)  # a stale socket makes logins hang
        self._run([DOVECOT, "-c", str(self.root / "dovecot" / "dovecot.conf")], "dovecot")

    def _run(self, command: list[str], what: str) -> None:
        # Daemons keep inherited pipes open, so their output goes to a file, never to a pipe.
        log = self.root / "commands.log"
        with open(log, "ab") as output:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, timeout=60)
        if done.returncode:
            raise RuntimeError(f"{what} failed ({done.returncode}):\n{log.read_text()[-2000:]}\n{self.log_tail()}")

    @staticmethod
    def _accepts(host: str, port: int) -> bool:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            return False

    def _wait_for_ports(self, host: str, ports: list[int]) -> None:
        deadline = time.monotonic() + 15
        for port in ports:
            while not self._accepts(host, port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the real provider did not open {host}:{port}\n{self.log_tail()}")
                time.sleep(0.05)
