"""Speed of the account check against loopback servers, beside raw-library baselines from the same run.

Run: .venv/bin/python bench/bench_account_check.py [--runs N]

Prints the median time of: a raw smtplib session (connect, STARTTLS, login, MAIL, RCPT, RSET, QUIT), a raw
poplib session (connect with TLS, login, STAT, QUIT), and check_account() doing both; then the ratio of the
check to the slower baseline (the issue's bound: 1.3) and how long a check against a server that never
answers takes compared with its timeout (bound: timeout + 1 s).
"""
from __future__ import annotations

import argparse
import multiprocessing
import poplib
import smtplib
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

# Run as a script from the repository root: make `portal` and `tests` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal.mail.check import check_account  # noqa: E402
from portal.mail.connection import open_incoming  # noqa: E402
from portal.mail.settings import MailboxSettings, MailConfig, ServerSettings  # noqa: E402
from tests.servers.certificates import make_certificate  # noqa: E402
from tests.servers.dovecot import DOVECOT, Dovecot  # noqa: E402
from tests.servers.smtp import SilentServer, SmtpServer  # noqa: E402

MAX_RATIO = 1.3
USER, PASSWORD = "bench@example.com", "bench-password"


def serve_smtp(certificate, connection) -> None:
    """Run the SMTP server in its own process until told to stop."""
    server = SmtpServer(certificate, security="starttls", username=USER, password=PASSWORD).start()
    connection.send(server.port)
    connection.recv()
    server.stop()


def timed(actions: dict, runs: int) -> dict[str, float]:
    """Median wall time of each action in milliseconds, measured in interleaved rounds after a warm-up.

    Interleaving puts every figure under the same machine load, so the ratios compare like with like.
    """
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for action in actions.values():
        action()
    for _ in range(runs):
        for name, action in actions.items():
            started = time.perf_counter()
            action()
            samples[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=2.0, help="timeout for the never-answering server")
    args = parser.parse_args()
    if not Path(DOVECOT).exists():
        print(f"Dovecot ({DOVECOT}) is not installed; the benchmark needs it for POP3.")
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-mail-") as folder:
        root = Path(folder)
        certificate = make_certificate(root / "certs")
        # The SMTP server runs in its own process, as a real one would: in this process it would compete
        # with the client threads for the GIL and make the concurrent check look slower than it is.
        ours, theirs = multiprocessing.Pipe()
        smtp_process = multiprocessing.Process(target=serve_smtp, args=(certificate, theirs), daemon=True)
        smtp_process.start()
        smtp_port = ours.recv()
        (root / "dovecot").mkdir()
        dovecot = Dovecot(root / "dovecot", certificate).start()
        silent = SilentServer()
        try:
            dovecot.add_user(USER, PASSWORD)
            dovecot.deliver(USER, b"Subject: hello\r\n\r\nhello\r\n")
            context = ssl.create_default_context(cafile=certificate.ca_file)
            pop3s = dovecot.ports["pop3s"]

            def raw_smtp() -> None:
                with smtplib.SMTP("localhost", smtp_port, local_hostname="[127.0.0.1]", timeout=10) as smtp:
                    smtp.starttls(context=context)
                    smtp.login(USER, PASSWORD)
                    smtp.mail(USER)
                    smtp.rcpt(USER)
                    smtp.rset()

            def raw_pop3() -> None:
                pop = poplib.POP3_SSL("localhost", pop3s, context=context, timeout=10)
                pop.user(USER)
                pop.pass_(PASSWORD)
                pop.stat()
                pop.quit()

            config = MailConfig(timeout=10.0, allowed_hosts=("localhost:*", "127.0.0.1:*"), ca_file=certificate.ca_file)
            mailbox = MailboxSettings(USER, "Bench", ServerSettings("localhost", smtp_port, "starttls", USER, PASSWORD),
                                      dovecot.incoming_settings(
                USER, PASSWORD, "pop3", "ssl"))

            def check() -> None:
                result = check_account(mailbox, config)
                if not result.ok:
                    raise SystemExit(f"the healthy mailbox failed its check: {result.to_dict()}")

            outgoing_only = MailboxSettings(USER, "Bench", mailbox.smtp)

            def check_outgoing_only() -> None:
                check_account(outgoing_only, config)

            def incoming_only() -> None:
                with open_incoming(mailbox, config) as pop:
                    pop.stat()

            def raw_both_threads() -> None:
                other = threading.Thread(target=raw_pop3)
                other.start()
                raw_smtp()
                other.join()

            medians = timed({"smtp": raw_smtp, "pop3": raw_pop3, "check": check, "raw_both": raw_both_threads,
                             "check_outgoing": check_outgoing_only, "incoming": incoming_only}, args.runs)
            smtp_ms, pop3_ms, check_ms = medians["smtp"], medians["pop3"], medians["check"]
            slower = max(smtp_ms, pop3_ms)
            ratio = check_ms / slower

            silent_config = MailConfig(timeout=args.timeout, allowed_hosts=("127.0.0.1:*",))
            silent_mailbox = MailboxSettings(USER, "Bench", ServerSettings(
                "127.0.0.1", silent.port, "starttls", USER, PASSWORD))
            started = time.perf_counter()
            silent_result = check_account(silent_mailbox, silent_config)
            silent_s = time.perf_counter() - started
        finally:
            silent.stop()
            ours.send("stop")
            smtp_process.join(timeout=10)
            dovecot.stop()

    print(f"runs per figure: {args.runs} (medians of interleaved rounds)")
    print(f"baseline smtplib (connect, STARTTLS, login, MAIL, RCPT, RSET): {smtp_ms:8.2f} ms")
    print(f"baseline poplib (connect, TLS, login, STAT):                  {pop3_ms:8.2f} ms")
    print(f"check_account, outgoing + incoming concurrently:              {check_ms:8.2f} ms")
    print(f"ratio to the slower baseline: {ratio:.2f} (bound {MAX_RATIO}) -> {'ok' if ratio <= MAX_RATIO else 'OVER'}")
    print(f"ratio to the sum of baselines: {check_ms / (smtp_ms + pop3_ms):.2f}")
    print(f"raw smtplib and poplib in two threads at once: {medians['raw_both']:.2f} ms "
          f"({medians['raw_both'] / slower:.2f}x the slower baseline: how much this machine overlaps them)")
    print(f"check relative to that raw concurrent pair: {check_ms / medians['raw_both']:.2f}")
    print(f"engine overhead per side, alone: outgoing check {medians['check_outgoing']:.2f} ms "
          f"({medians['check_outgoing'] / smtp_ms:.2f}x smtplib), incoming open+STAT {medians['incoming']:.2f} ms "
          f"({medians['incoming'] / pop3_ms:.2f}x poplib)")
    limit = args.timeout + 1
    print(f"server that never answers: {silent_s:.2f} s with timeout {args.timeout:g} s "
          f"(bound {limit:g} s) -> {'ok' if silent_s <= limit else 'OVER'}; problem {silent_result.problem.code}")
    return 0 if ratio <= MAX_RATIO and silent_s <= limit else 1


if __name__ == "__main__":
    sys.exit(main())
