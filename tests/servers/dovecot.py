"""A private Dovecot instance (POP3, POP3S, IMAP, IMAPS) for tests, on free loopback ports."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path

from .certificates import ServerCertificate
from .processes import terminate_by_pid_file
from .smtp import HOST, free_port

DOVECOT = "/usr/sbin/dovecot"
MAIL_UID = 65534  # Dovecot refuses uid 0 for mail; "nobody" owns the test homes

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = test-dovecot-{name}
protocols = imap pop3
listen = {host}
log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_failure_delay = 0
mail_location = maildir:~/Maildir
first_valid_uid = {uid}
{sign_in}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
"""

# How users sign in: passwords from one passwd-file per user (see add_user).
PASSWORD_SIGN_IN = """\
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users/%u
}}
userdb {{
  driver = passwd-file
  args = {root}/users/%u
}}"""


@dataclass
class Dovecot:
    """A running private Dovecot: ports per protocol, users you add, letters you deliver.

    ``ports`` maps "pop3" (STARTTLS-capable plain port), "pop3s" (implicit TLS),
    "imap" and "imaps" to port numbers on ``host``.
    """

    root: Path
    certificate: ServerCertificate
    host: str = HOST
    ports: dict[str, int] = field(default_factory=dict)
    sign_in: ClassVar[str] = PASSWORD_SIGN_IN  # the auth settings; a subclass may sign in otherwise

    @property
    def ca_file(self) -> str:
        """The CA file that verifies Dovecot's certificate."""
        return self.certificate.ca_file

    def start(self) -> "Dovecot":
        """Write the configuration and start Dovecot; return once every port accepts connections."""
        os.chmod(self.root, 0o755)
        for parent in list(self.root.parents)[:3]:
            # pytest's temp folders are 0700; Dovecot's own users must traverse them.
            if parent.exists() and parent != Path("/"):
                os.chmod(parent, os.stat(parent).st_mode | 0o055)
        shutil.rmtree(self.root / "run", ignore_errors=True)  # a stale socket makes logins hang
        (self.root / "home").mkdir(exist_ok=True)
        # One passwd-file per user: Dovecot re-reads a changed file at most once a second, but reads a new
        # file at once, so a user added by a test can sign in immediately.
        (self.root / "users").mkdir(exist_ok=True)
        self.ports = {name: free_port(self.host) for name in ("pop3", "pop3s", "imap", "imaps")}
        config = self.root / "dovecot.conf"
        template = _CONFIG.replace("{sign_in}", self.sign_in)
        config.write_text(template.format(root=self.root, name=secrets.token_hex(4), host=self.host,
                                          cert=self.certificate.cert_file, key=self.certificate.key_file,
                                          uid=MAIL_UID, **self.ports))
        # Dovecot daemonizes; pipes would stay open in the daemon, so its output goes to a file.
        with open(self.root / "start.log", "wb") as output:
            started = subprocess.run([DOVECOT, "-c", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=output, stderr=output, timeout=20)
        if started.returncode:
            raise RuntimeError(f"Dovecot did not start: {(self.root / 'start.log').read_text()}")
        deadline = time.monotonic() + 10
        for port in self.ports.values():
            while True:
                try:
                    socket.create_connection((self.host, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Dovecot did not open port {port}; see {self.root}/dovecot.log")
                    time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop Dovecot and wait until it has exited."""
        terminate_by_pid_file(self.root / "run" / "master.pid")

    def incoming_settings(self, address: str, password: str, protocol: str = "pop3", security: str = "ssl",
                          **overrides):
        """IncomingSettings that reach this Dovecot as "localhost" by ``protocol`` and ``security``."""
        from portal.mail.settings import IncomingSettings, ServerSettings

        port_name = protocol + ("s" if security == "ssl" else "")
        fields = dict(host="localhost", port=self.ports[port_name], security=security,
                      username=address, password=password)
        return IncomingSettings(protocol, ServerSettings(**{**fields, **overrides}))

    def add_user(self, address: str, password: str) -> Path:
        """Add a mail user who can sign in at once; return the user's Maildir."""
        home = self.root / "home" / address.replace("@", "_at_")
        maildir = home / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        for path in (home, maildir, *(maildir / sub for sub in ("cur", "new", "tmp"))):
            os.chown(path, MAIL_UID, MAIL_UID)
        (self.root / "users" / address).write_text(f"{address}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_UID}::{home}::\n")
        return maildir

    def deliver(self, address: str, raw: bytes) -> Path:
        """Put a message into the user's Maildir the way an MDA does (write in tmp/, rename into new/)."""
        maildir = self.root / "home" / address.replace("@", "_at_") / "Maildir"
        name = f"{time.time_ns()}.{secrets.token_hex(6)}.test"
        temporary = maildir / "tmp" / name
        temporary.write_bytes(raw)
        os.chown(temporary, MAIL_UID, MAIL_UID)
        final = maildir / "new" / name
        os.rename(temporary, final)
        return final
