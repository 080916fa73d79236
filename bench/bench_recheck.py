"""The background re-check of mailboxes: how evenly it spreads, and what one check costs beside Test account.

Run: .venv/bin/python bench/bench_recheck.py [--mailboxes N] [--runs N]

1,000 tested mailboxes (each its own address, all at one loopback aiosmtpd with STARTTLS and AUTH, in a
process of its own) are re-checked over one period of PORTAL_MAILBOX_RECHECK_HOURS (6 h) on a simulated
clock: every minute the mailboxes whose moment came are checked for real (sign-in and envelope, recorded)
and counted. Printed: the average and the busiest minute (the issue's bound: no minute over 2x the
average) and what the minute's look for due mailboxes costs. Then the median of one background check
(``check_mailbox``: the row read, the password decrypted, the check, the record) beside one Test account
(``portal.mailboxes.test_mailbox`` on the same stored mailbox: the form's values cleaned, the check, the proof,
the audit), interleaved in the same run; the ratio should be about 1.
"""
from __future__ import annotations

import argparse
import datetime
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# Run as a script from the repository root: make `portal` and `tests` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_account_check import PASSWORD, USER, serve_smtp, timed  # noqa: E402
from portal import mailbox_health as health  # noqa: E402
from portal.db import database, open_database  # noqa: E402
from portal.mail.settings import MailConfig  # noqa: E402
from portal.migrations import upgrade  # noqa: E402
from portal.models import utcnow  # noqa: E402
from portal.secret_box import SecretBox, active_box, install  # noqa: E402
from tests.servers.certificates import make_certificate  # noqa: E402

MAX_MINUTE_RATIO = 2.0
PERIOD = datetime.timedelta(hours=6)
SECRET_KEY = "bench-recheck-secret-key-0123456"


def make_mailboxes(count: int, port: int, start: datetime.datetime):
    """``count`` tested mailboxes at the loopback server, created in one transaction."""
    from portal.mailboxes import canonical_settings
    from portal.models import Employee, Mailbox

    owner = Employee.create(name="Bench Owner", email="owner@example.com", role="admin")
    mailboxes = []
    with database.atomic():
        for number in range(count):
            mailbox = Mailbox(scope="employee", owner=owner.id, address=USER, display_name=f"Box {number}",
                              smtp_host="localhost", smtp_port=port, smtp_security="starttls", smtp_username=USER,
                              last_passed_test_at=start)
            mailbox.set_secret("smtp_password", PASSWORD)
            mailbox.tested_settings_digest = active_box().digest(canonical_settings(mailbox.to_settings()))
            mailbox.save()
            mailboxes.append(mailbox)
    return owner, mailboxes


def spread(count: int, config: MailConfig, start: datetime.datetime) -> tuple[Counter, list[float], int]:
    """Run one simulated period minute by minute: {minute: checks}, the look's times (ms), failed checks."""
    per_minute, looks, failed = Counter(), [], 0
    for minute in range(1, int(PERIOD.total_seconds() // 60) + 1):
        now = start + datetime.timedelta(minutes=minute)
        started = time.perf_counter()
        due = health.due_for_check(now, PERIOD)
        looks.append((time.perf_counter() - started) * 1000)
        for mailbox_id in due:
            found = health.check_mailbox(mailbox_id, config, period=PERIOD, now=now)
            per_minute[minute] += 1
            failed += found is None or found.state != health.WORKING
    return per_minute, looks, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-recheck-") as folder:
        root = Path(folder)
        certificate = make_certificate(root / "certs", valid_days=90)
        ours, theirs = multiprocessing.Pipe()
        smtp_process = multiprocessing.Process(target=serve_smtp, args=(certificate, theirs), daemon=True)
        smtp_process.start()
        port = ours.recv()
        db = open_database(f"sqlite:///{root / 'portal.sqlite3'}")
        database.initialize(db)
        database.connect(reuse_if_open=True)
        upgrade(db)
        install(SecretBox([SECRET_KEY]))
        config = MailConfig(timeout=5.0, allowed_hosts=("localhost:*",), ca_file=certificate.ca_file)
        try:
            start = utcnow().replace(second=0, microsecond=0)
            owner, mailboxes = make_mailboxes(args.mailboxes, port, start)
            began = time.perf_counter()
            per_minute, looks, failed = spread(args.mailboxes, config, start)
            took = time.perf_counter() - began
            costs = one_check_beside_test_account(mailboxes[0], owner, config, args.runs)
        finally:
            ours.send("stop")
            smtp_process.join(timeout=10)
            database.close()
    minutes = int(PERIOD.total_seconds() // 60)
    checks = sum(per_minute.values())
    average = checks / minutes
    busiest = max(per_minute.values())
    ratio = busiest / average
    print(f"re-check of {args.mailboxes} mailboxes over {PERIOD} on a simulated clock ({took:.1f} s of real "
          f"checks against loopback aiosmtpd): {checks} checks, {failed} not Working")
    print(f"  per minute: average {average:.2f}, busiest {busiest} ({ratio:.2f}x the average; bound "
          f"{MAX_MINUTE_RATIO:.1f}x), quietest {min(per_minute.get(m, 0) for m in range(1, minutes + 1))}")
    print(f"  the minute's look for due mailboxes: median {statistics.median(looks):.2f} ms, "
          f"max {max(looks):.2f} ms")
    print(f"one background check {costs['check']:.2f} ms, one Test account {costs['test']:.2f} ms "
          f"(median of {args.runs}; ratio {costs['check'] / costs['test']:.2f})")
    ok = checks == args.mailboxes and failed == 0 and ratio <= MAX_MINUTE_RATIO
    print("within bounds" if ok else "OUT OF BOUNDS")
    return 0 if ok else 1


def one_check_beside_test_account(mailbox, owner, config: MailConfig, runs: int) -> dict[str, float]:
    """Median ms of one background check and one Test account of the same stored mailbox."""
    from portal.mailboxes import test_mailbox

    values = {"address": mailbox.address, "display_name": mailbox.display_name, "smtp_host": mailbox.smtp_host,
              "smtp_port": str(mailbox.smtp_port), "smtp_security": mailbox.smtp_security,
              "smtp_username": mailbox.smtp_username}

    def check() -> None:
        if health.check_mailbox(mailbox.id, config).state != health.WORKING:
            raise SystemExit("the background check did not pass")

    def test() -> None:
        if not test_mailbox(values, actor=owner, mail_config=config, secret_key=SECRET_KEY,
                            mailbox=mailbox).result.ok:
            raise SystemExit("Test account did not pass")

    return timed({"check": check, "test": test}, runs)


if __name__ == "__main__":
    sys.exit(main())
