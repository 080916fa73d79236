"""Letters: 1,000 letters end to end through one mailbox vs raw smtplib, and a second POP3 fetch vs raw UIDL.

Run: .venv/bin/python bench/bench_letters.py   (exit status 1 when a target is missed)

1. An aiosmtpd sink runs in its own process on 127.0.0.1. The portal stores 1,000 letters
   (create_letter: checks, MIME build, rows), then process_due_letters sends them and records
   every state. Baselines in the same run: raw smtplib sending the same 1,000 messages over
   one connection (target: portal >= 0.7x its throughput), and connecting once per letter.
2. A private Dovecot holds 5,000 messages. After a first fetch, a second fetch_replies pass
   must download no message body and take <= 1.5x a raw poplib connect + sign-in + UIDL + quit.
"""
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LETTERS = 1000
POP3_MESSAGES = 5000

SINK = """
import asyncio, sys, logging
from aiosmtpd.controller import Controller
logging.getLogger("mail.log").setLevel(logging.ERROR)
class Sink:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        return "250 2.0.0 OK queued"
controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"""


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def setup_database(folder):
    from portal.db import database, open_database
    from portal.migrations import upgrade
    from portal.secret_box import SecretBox, install

    db = open_database(f"sqlite:///{folder}/bench.sqlite3")
    database.initialize(db)
    database.connect()
    upgrade(db)
    install(SecretBox(["bench-secret-key-0123456789"]))


def make_mailbox(employee, **fields):
    from portal.models import Mailbox, utcnow

    mailbox = Mailbox(scope="employee", owner=employee.id, address="sender@example.com", display_name="Bench Sender",
                      smtp_host="127.0.0.1", smtp_port=25, smtp_security="none", smtp_username="",
                      last_passed_test_at=utcnow(), tested_settings_digest="bench", **fields)
    mailbox.set_secret("smtp_password", "")
    mailbox.save()
    return mailbox


def bench_sending(folder):
    from portal.letters.compose import create_letter
    from portal.letters.queue import QueuePolicy, process_due_letters
    from portal.mail.settings import MailConfig
    from portal.models import Employee, Letter

    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        employee = Employee.create(name="Bench", email="bench@example.com")
        mailbox = make_mailbox(employee)
        Mailbox = type(mailbox)
        Mailbox.update(smtp_port=port).where(Mailbox.id == mailbox.id).execute()
        mailbox = Mailbox.get_by_id(mailbox.id)
        config = MailConfig(timeout=10, allowed_hosts=("127.0.0.1",))
        policy = QueuePolicy(mailbox_per_minute=0)

        started = time.perf_counter()
        for number in range(LETTERS):
            create_letter(employee, mailbox=mailbox, project=None, to=f"Contact {number} <c{number}@example.com>",
                          subject=f"Offer {number}", body=f"Hello,\n\nour offer number {number}.\n")
        stored = time.perf_counter()
        report = process_due_letters(config, policy)
        portal_seconds = time.perf_counter() - started
        sending_seconds = time.perf_counter() - stored
        sent = Letter.select().where(Letter.state == "sent").count()
        assert sent == LETTERS, f"only {sent} of {LETTERS} letters were sent: {dict(report.outcomes)}"

        messages = [(letter.from_address, [f"c{n}@example.com"], letter.raw_message.encode())
                    for n, letter in enumerate(Letter.select().order_by(Letter.id))]
        started = time.perf_counter()
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
        for sender, recipients, raw in messages:
            smtp.sendmail(sender, recipients, raw)
        smtp.quit()
        raw_seconds = time.perf_counter() - started

        started = time.perf_counter()
        for sender, recipients, raw in messages[:200]:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as one:
                one.sendmail(sender, recipients, raw)
        per_letter_seconds = (time.perf_counter() - started) * LETTERS / 200
    finally:
        sink.stdin.close()
        sink.wait(timeout=10)

    ratio = raw_seconds / portal_seconds
    print(f"{LETTERS} letters, portal end to end (store + queue + send + record): {portal_seconds:.2f} s "
          f"= {LETTERS / portal_seconds:.0f} letters/s (storing {portal_seconds - sending_seconds:.2f} s"
          f", sending {sending_seconds:.2f} s, {report.connections} SMTP connection(s))")
    print(f"raw smtplib, one connection:  {raw_seconds:.2f} s = {LETTERS / raw_seconds:.0f} letters/s")
    print(f"raw smtplib, connect per letter (200 timed, scaled): {per_letter_seconds:.2f} s "
          f"= {LETTERS / per_letter_seconds:.0f} letters/s")
    print(f"portal / raw one-connection throughput: {ratio:.2f}x (target >= 0.70x)")
    print(f"portal / connect-per-letter throughput: {per_letter_seconds / portal_seconds:.2f}x")
    return ratio >= 0.7


def bench_fetching(folder):
    from tests.servers.certificates import make_certificate
    from tests.servers.dovecot import DOVECOT, Dovecot

    if not shutil.which(DOVECOT) and not os.path.exists(DOVECOT):
        print("Dovecot is not installed: the POP3 part is skipped")
        return True
    import poplib
    import ssl

    from portal.letters.replies import fetch_replies
    from portal.mail.settings import MailConfig
    from portal.models import Employee, Mailbox

    root = Path(folder) / "dovecot"
    root.mkdir()
    certificate = make_certificate(Path(folder) / "certs")
    dovecot = Dovecot(root, certificate).start()
    try:
        address, password = "bench@example.com", "bench-password"
        maildir = dovecot.add_user(address, password)
        for number in range(POP3_MESSAGES):
            name = f"{number:06d}.bench"
            (maildir / "new" / name).write_bytes(
                f"From: someone{number}@example.org\r\nTo: {address}\r\nSubject: Message {number}\r\n"
                f"Message-ID: <m{number}@example.org>\r\n\r\n{'Body line. ' * 40}\r\n".encode())
        subprocess.run(["chown", "-R", "65534:65534", str(maildir)], check=True)
        employee = Employee.create(name="Fetcher", email="fetcher@example.com")
        mailbox = make_mailbox(employee, receive_replies=True, incoming_protocol="pop3", incoming_host="localhost",
                               incoming_port=dovecot.ports["pop3s"], incoming_security="ssl",
                               incoming_username=address)
        mailbox.address = "fetch@example.com"
        mailbox.set_secret("incoming_password", password)
        mailbox.save()
        config = MailConfig(timeout=30, allowed_hosts=("127.0.0.1", "localhost"), ca_file=certificate.ca_file)

        started = time.perf_counter()
        [first] = fetch_replies(config, mailbox_id=mailbox.id)
        first_seconds = time.perf_counter() - started
        assert first.ok and first.new_messages == POP3_MESSAGES, first

        seconds, downloaded = [], 0
        for _ in range(5):
            started = time.perf_counter()
            [again] = fetch_replies(config, mailbox_id=mailbox.id)
            seconds.append(time.perf_counter() - started)
            assert again.ok and again.new_messages == 0
            downloaded += again.bodies_downloaded
        second_seconds = statistics.median(seconds)

        context = ssl.create_default_context(cafile=certificate.ca_file)
        raw = []
        for _ in range(5):
            started = time.perf_counter()
            pop = poplib.POP3_SSL("localhost", dovecot.ports["pop3s"], context=context, timeout=30)
            pop.user(address)
            pop.pass_(password)
            _, lines, _ = pop.uidl()
            pop.quit()
            raw.append(time.perf_counter() - started)
            assert len(lines) == POP3_MESSAGES
        raw_seconds = statistics.median(raw)
    finally:
        dovecot.stop()

    ratio = second_seconds / raw_seconds
    print(f"POP3 first fetch of {POP3_MESSAGES} messages (headers only, TOP n 0): {first_seconds:.2f} s")
    print(f"POP3 second fetch: {second_seconds * 1000:.1f} ms (median of 5), bodies downloaded: {downloaded}")
    print(f"raw poplib connect + sign-in + UIDL + quit: {raw_seconds * 1000:.1f} ms (median of 5)")
    print(f"second fetch / raw UIDL: {ratio:.2f}x (target <= 1.50x)")
    return ratio <= 1.5 and downloaded == 0


def main():
    folder = tempfile.mkdtemp(prefix="bench-letters-")
    try:
        setup_database(folder)
        sending_ok = bench_sending(folder)
        fetching_ok = bench_fetching(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not (sending_ok and fetching_ok):
        print("MISSED a target")
        return 1
    print("All targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
