"""Speed of the account check against loopback servers, beside raw-library baselines from the same run.

Run: .venv/bin/python bench/bench_account_check.py [--runs N]

Prints the median time of: a raw smtplib session (connect, STARTTLS, login, MAIL, RCPT, RSET, QUIT), a raw
poplib session (connect with TLS, login, STAT, QUIT), and check_account() doing both; then the ratio of the
check to the slower baseline (the issue's bound: 1.3) and how long a check against a server that never
answers takes compared with its timeout (bound: timeout + 1 s).

Autoconfiguration (issue 13): the time from a typed address to filled settings for a domain with SRV
records on the test DNS server (beside one SRV question alone), and the guess's concurrency: servers that
greet after a delay are probed one by one and then by discover() at once; the bound is total <= 1.5x the
slowest single probe.
"""
from __future__ import annotations

import argparse
import multiprocessing
import poplib
import smtplib
import socket
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
from portal.mail.connection import open_incoming, probe_server  # noqa: E402
from portal.mail.discovery import discover  # noqa: E402
from portal.mail.guard import resolve_destination  # noqa: E402
from portal.mail.settings import MailboxSettings, MailConfig, ServerSettings  # noqa: E402
from tests.servers.certificates import make_certificate  # noqa: E402
from tests.servers.dns import TinyDNS  # noqa: E402
from tests.servers.dovecot import DOVECOT, Dovecot  # noqa: E402
from tests.servers.smtp import SilentServer, SmtpServer  # noqa: E402

MAX_RATIO = 1.3
MAX_GUESS_RATIO = 1.5
GUESS_DELAYS = {"smtps": 0.30, "smtp": 0.20, "pop3s": 0.25}  # seconds before each kind of server greets
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


class SlowGreeter:
    """A loopback server that greets only after ``delay`` seconds: SMTP with implicit TLS ("smtps"),
    SMTP with STARTTLS ("smtp") or POP3 with implicit TLS ("pop3s"); just enough for a discovery probe."""

    def __init__(self, certificate, kind: str, delay: float):
        self.kind, self.delay = kind, delay
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(certificate.cert_file, certificate.key_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn) -> None:
        try:
            if self.kind.endswith("s"):
                conn = self.context.wrap_socket(conn, server_side=True)
            time.sleep(self.delay)
            if self.kind == "pop3s":
                conn.sendall(b"+OK ready\r\n")
            else:
                conn.sendall(b"220 mail.example.com ESMTP\r\n")
            lines = conn.makefile("rb")
            for line in lines:
                command = line.split(b" ", 1)[0].strip().upper()
                if command == b"EHLO":
                    offer = b"250-STARTTLS\r\n" if self.kind == "smtp" and not isinstance(conn, ssl.SSLSocket) else b""
                    conn.sendall(b"250-mail.example.com\r\n" + offer + b"250 SIZE 1000000\r\n")
                elif command == b"STARTTLS":
                    conn.sendall(b"220 go ahead\r\n")
                    conn = self.context.wrap_socket(conn, server_side=True)
                    lines = conn.makefile("rb")
                    for tls_line in lines:
                        if tls_line.split(b" ", 1)[0].strip().upper() == b"EHLO":
                            conn.sendall(b"250-mail.example.com\r\n250 SIZE 1000000\r\n")
                        else:
                            conn.sendall(b"221 bye\r\n")
                            return
                    return
                else:
                    conn.sendall(b"+OK bye\r\n" if self.kind == "pop3s" else b"221 bye\r\n")
                    return
        except OSError:
            pass
        finally:
            conn.close()


def autoconfiguration(runs: int) -> bool:
    """Measure discovery by SRV records and the concurrent guess; print the figures; True when in bounds."""
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as folder:
        names = ("smtp.example.com", "mail.example.com", "pop.example.com", "mail.firma.example.com")
        certificate = make_certificate(Path(folder), label="discovery", names=names)
        config = MailConfig(timeout=5.0, allowed_hosts=("127.0.0.1:*",), ca_file=certificate.ca_file)
        dns = TinyDNS()
        servers = {kind: SlowGreeter(certificate, kind, delay) for kind, delay in GUESS_DELAYS.items()}
        try:
            dns.add_srv("_submissions._tcp.firma.example.com", (0, 0, 465, "mail.firma.example.com"))
            dns.add_srv("_imaps._tcp.firma.example.com", (0, 0, 993, "mail.firma.example.com"))
            for name in names:
                dns.add_a(name, "127.0.0.1")
            resolver = dns.resolver(lifetime=2.0)

            def by_srv() -> None:
                if discover("anna@firma.example.com", config, resolver=resolver).source != "srv":
                    raise SystemExit("discovery did not find the SRV records")

            def one_srv_question() -> None:
                resolver.resolve("_submissions._tcp.firma.example.com", "SRV")

            srv = timed({"discover": by_srv, "question": one_srv_question}, runs)

            # The same, while the DNS server never answers for the autoconfig names and the MX: those look-ups
            # run beside the SRV questions, so the wait is about two DNS lifetimes (A, then AAAA), not five.
            for silent in ("autoconfig.slow.example.com", "slow.example.com"):
                dns.never_answer(silent)
            dns.add_srv("_submissions._tcp.slow.example.com", (0, 0, 465, "mail.firma.example.com"))
            lifetime = 0.5
            slow_resolver = dns.resolver(lifetime=lifetime)
            started = time.perf_counter()
            slow = discover("anna@slow.example.com", config, resolver=slow_resolver)
            slow_ms = (time.perf_counter() - started) * 1000
            if slow.source != "srv":
                raise SystemExit(f"discovery did not reach the SRV records: {slow.to_dict()}")

            guess_ports = {"smtp": ((servers["smtps"].port, "ssl"), (servers["smtp"].port, "starttls")),
                           "imap": (), "pop3": ((servers["pop3s"].port, "ssl"),)}
            probes = [(protocol, prefix + "example.com", port, security)
                      for protocol, prefixes in (("smtp", ("smtp.", "mail.")), ("pop3", ("pop.", "mail.")))
                      for prefix in prefixes for port, security in guess_ports[protocol]]

            def probe(protocol, host, port, security):
                def run() -> None:
                    destination = resolve_destination(host, port, config,
                                                      resolver=lambda name, _: [a.to_text() for a in
                                                                                resolver.resolve(name, "A")])
                    probe_server(protocol, destination, ServerSettings(host, port, security, "", ""), config)
                return run

            def guess() -> None:
                found = discover("anna@example.com", config, resolver=resolver, guess_ports=guess_ports)
                if found.source != "guess" or found.smtp.security != "ssl":
                    raise SystemExit(f"the guess did not pick implicit TLS: {found.to_dict()}")

            singles = {f"{protocol} {host}:{port}": probe(protocol, host, port, security)
                       for protocol, host, port, security in probes}
            guess_runs = max(3, runs // 4)
            medians = timed({**singles, "guess": guess}, guess_runs)
        finally:
            for server in servers.values():
                server.stop()
            dns.stop()
    slowest = max(medians[name] for name in singles)
    ratio = medians["guess"] / slowest
    print("")
    print(f"autoconfiguration, SRV records on the test DNS ({runs} runs): typed address -> filled settings "
          f"{srv['discover']:.2f} ms; one SRV question alone {srv['question']:.2f} ms "
          f"({srv['discover'] / srv['question']:.1f}x: preset, two autoconfig names, MX and six SRV questions)")
    print(f"  with the autoconfig names and the MX unanswered (DNS lifetime {lifetime * 1000:.0f} ms): "
          f"{slow_ms:.0f} ms ({slow_ms / (lifetime * 1000):.1f} lifetimes; one after another would be 5)")
    print(f"guess, {len(singles)} probes (connect, greeting, TLS; greetings delayed "
          f"{', '.join(f'{kind} {delay * 1000:.0f} ms' for kind, delay in GUESS_DELAYS.items())}), "
          f"{guess_runs} runs:")
    for name in singles:
        print(f"  single probe {name}: {medians[name]:8.2f} ms")
    print(f"  sum of the singles (probing one by one): {sum(medians[name] for name in singles):8.2f} ms")
    print(f"  discover() guessing all at once:        {medians['guess']:8.2f} ms")
    print(f"  ratio to the slowest single probe: {ratio:.2f} (bound {MAX_GUESS_RATIO}) -> "
          f"{'ok' if ratio <= MAX_GUESS_RATIO else 'OVER'}")
    return ratio <= MAX_GUESS_RATIO


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=2.0, help="timeout for the never-answering server")
    parser.add_argument("--only-autoconfiguration", action="store_true", help="skip the account-check figures")
    args = parser.parse_args()
    if args.only_autoconfiguration:
        return 0 if autoconfiguration(args.runs) else 1
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
    discovery_ok = autoconfiguration(args.runs)
    return 0 if ratio <= MAX_RATIO and silent_s <= limit and discovery_ok else 1


if __name__ == "__main__":
    sys.exit(main())
