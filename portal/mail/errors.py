"""Errors of the mail engine; each low-level one names the catalogue symptom it stands for."""
from __future__ import annotations


class MailError(Exception):
    """A connection, TLS, sign-in or sending step failed; ``problem`` says why, in words."""

    def __init__(self, problem):
        super().__init__(f"{problem.code}: {problem.server_reply}")
        self.problem = problem


class GuardRefused(OSError):
    """The connection guard refused a host or port; the message is the same whatever the reason."""

    kind = "guard_refused"

    def __init__(self) -> None:
        super().__init__("connection to this server is not allowed")


class HostNotFound(OSError):
    """The host name does not resolve (or resolving took longer than the timeout)."""

    kind = "host_not_found"


class SecurityModeMismatch(OSError):
    """The server speaks TLS from the first byte where plain text was expected, or the reverse."""

    kind = "security_mode_mismatch"


class CertificatePinMismatch(OSError):
    """The server certificate is not the one the mailbox trusts by fingerprint."""

    kind = "certificate_pin_mismatch"


class PlaintextAuthRefused(OSError):
    """The password would travel unencrypted and the mailbox does not allow that."""

    kind = "plaintext_auth_refused"


class NoMailServer(OSError):
    """Nothing that greets as a mail server answered: a closed or filtered port, or another service.

    The user sees one message for all of these, so the account test cannot map what listens where;
    ``detail`` (the refusal, the silence or the banner) is for the log only.
    """

    kind = "no_mail_server"

    def __init__(self, detail: str = "") -> None:
        super().__init__("no mail server answered on this port")
        self.detail = detail


class PresetHostNotFound(HostNotFound):
    """A provider's published server name does not resolve: the portal's machine cannot look names up."""

    kind = "preset_host_not_found"


class StartTLSOffered(OSError):
    """The session was left unencrypted on a port where the server offers STARTTLS; no password was sent."""

    kind = "starttls_offered"


class LoginDisabled(OSError):
    """The server said it takes no password in clear (IMAP LOGINDISABLED); none was sent."""

    kind = "login_disabled"
