"""Letters, measured as the product promises them: Send to "sent", many mailboxes at once, one busy mailbox; and a
second POP3 fetch vs raw UIDL.

Run: .venv/bin/python bench/bench_letters.py   (exit status 1 when a target is missed; BENCH_ONLY=sqlite,
postgres or fetch runs one part; BENCH_SENDING=latency,many,busy runs only those sending measures)

Sending runs twice in one go: on SQLite with huey's SQLite queue, and on PostgreSQL with the Redis queue
(a private cluster and redis-server; skipped with a note when either is not installed). Each time:

1. Send to "sent", one letter with an idle worker: stored and woken as the New letter page does, then
   timed until its row says "sent"; p50 and p95 over 50 letters, the worker idle (its polling backed
   off) before each. Target p95 <= 1 s (peers send from a cron every minute).
2. Many mailboxes at once: 100 mailboxes, each on its own loopback SMTP sink, each given 25 letters at
   once; two `portal worker` processes at the default 20 letters a minute. Every mailbox must send
   exactly 20 in its first minute and never more than 20 in any 60 s; queue lag (from when a letter was
   due, or allowed by the limit, until "sent") p95 <= 2 s; the workers' CPU per letter is printed.
3. 1,000 letters through one mailbox with the limit off, end to end through a worker, against raw smtplib
   sending the same messages over one connection in the same run: the median ratio of three rounds, raw
   smtplib timed before and after the worker in each (keep it >= 0.5x). The end is the last letter's own
   "sent" time as the worker stamped it, and the bench looks at the table only every quarter second:
   polling every few milliseconds took CPU and SQLite's lock from the worker it measured.
4. A private Dovecot holds 5,000 messages. After a first fetch, a second fetch_replies pass must download
   no message body and take <= 1.5x a raw poplib connect + sign-in + UIDL + quit (medians of 15 of each).
"""
import datetime
import os
import random
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET_KEY = "bench-secret-key-0123456789"
LATENCY_LETTERS = 50
MAILBOXES = 100
LETTERS_EACH = 25
LIMIT = 20  # the product's default letters per minute per mailbox
BUSY_LETTERS = 1000
BUSY_ROUNDS = 3  # the median ratio counts: other processes' load on the machine comes and goes
POP3_MESSAGES = 5000
POP3_ROUNDS = 15

SINKS = """
import asyncio, sys, logging
from aiosmtpd.smtp import SMTP
logging.getLogger("mail.log").setLevel(logging.ERROR)
counts = {}
class Sink:
    def __init__(self, port):
        self.port = port
    async def handle_DATA(self, server, session, envelope):
        counts[self.port] = counts.get(self.port, 0) + 1
        return "250 2.0.0 OK queued"
async def serve():
    loop = asyncio.get_running_loop()
    for port in [int(p) for p in sys.argv[1:]]:
        await loop.create_server(lambda port=port: SMTP(Sink(port), hostname="sink"), "127.0.0.1", port)
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.readline():
        print(sum(counts.values()), flush=True)
asyncio.run(serve())
"""


def free_ports(count):
    """``count`` different ports nothing listens on right now (each probe held until all are chosen)."""
    import socket

    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port():
    return free_ports(1)[0]


@contextmanager
def sinks(ports):
    """One process serving an aiosmtpd sink on each port."""
    process = subprocess.Popen([sys.executable, "-c", SINKS, *map(str, ports)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.stdin.close()
        process.wait(timeout=10)


def setup_database(url):
    from portal.db import database, open_database
    from portal.migrations import upgrade
    from portal.secret_box import SecretBox, install

    db = open_database(url)
    database.initialize(db)
    database.connect(reuse_if_open=True)
    upgrade(db)
    install(SecretBox([SECRET_KEY]))


def make_mailbox(employee, port=25, **fields):
    """A mailbox that passed its test with exactly these settings (the queue sends from no other)."""
    from portal.mailboxes import canonical_settings
    from portal.models import Mailbox, utcnow
    from portal.secret_box import active_box

    fields.setdefault("address", f"sender{port}@example.com")
    mailbox = Mailbox(scope="employee", owner=employee.id, display_name="Bench Sender", smtp_host="127.0.0.1",
                      smtp_port=port, smtp_security="none", smtp_username="", last_passed_test_at=utcnow(), **fields)
    mailbox.set_secret("smtp_password", "")
    mailbox.tested_settings_digest = active_box().digest(canonical_settings(mailbox.to_settings()))
    mailbox.save()
    return mailbox


@contextmanager
def workers(folder, database_url, queue_url, ports, *, count=1, threads=2, per_minute=0):
    """`portal worker` processes, as `make run` starts one beside the web server."""
    env = dict(os.environ, PORTAL_INSTANCE_PATH=str(Path(folder) / "instance"), PORTAL_DATABASE_URL=database_url,
               PORTAL_SECRET_KEYS=SECRET_KEY, PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*",
               PORTAL_MAIL_ALLOWED_PORTS=",".join(map(str, ports)), PORTAL_MAIL_TIMEOUT="10",
               PORTAL_MAILBOX_LETTERS_PER_MINUTE=str(per_minute), PORTAL_QUEUE_URL=queue_url)
    started = []
    try:
        for _ in range(count):
            worker = subprocess.Popen([str(ROOT / ".venv" / "bin" / "portal"), "worker", "--workers", str(threads)],
                                      env=env, stdout=subprocess.PIPE, stderr=open(Path(folder) / "worker.log", "a"),
                                      text=True)
            started.append(worker)
            assert worker.stdout.readline().startswith("Worker started"), "the worker did not start"
        yield started
    finally:
        for worker in started:
            worker.terminate()
        for worker in started:
            worker.wait(timeout=60)


def cpu_seconds(processes):
    """User + system CPU the processes have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def write_letter(employee, mailbox, number, huey=None):
    """What the New letter page does: store the letter, then enqueue a send pass for its mailbox."""
    from portal.letters.compose import queue_letter

    wake = (lambda letter: huey.portal_tasks.send_letters(letter.mailbox_id)) if huey is not None else None
    # Each mailbox writes to contacts of its own: the per-recipient limit (50 in 10 minutes) is not what is measured.
    return queue_letter(employee, None, mailbox, to=f"Contact {number} <c{number}-{mailbox.id}@example.com>",
                        subject=f"Offer {number}", body=f"Hello,\n\nour offer number {number}.\n", wake=wake)


_queues: dict = {}


def queue_for(folder, queue_url):
    """The huey the pages would wake the workers through: one per queue for the whole run. A second SqliteHuey on
    the same file in this process lost its first wake-up (seen in the busy mailbox's second round: no pass until
    the minute sweep, 60 s later)."""
    from portal.letters.worker import make_huey

    key = (str(folder), queue_url)
    if key not in _queues:
        _queues[key] = make_huey({"PORTAL_QUEUE_URL": queue_url}, str(Path(folder) / "instance"))
    return _queues[key]


def sent_count(ids):
    from portal.models import Letter

    return Letter.select().where(Letter.id.in_(ids) & (Letter.state == "sent")).count()


def sent_times(mailbox):
    """When each of the mailbox's sent letters was recorded as sent, by the worker's own clock (naive UTC), in order."""
    from portal.models import Letter

    return sorted(at for (at,) in Letter.select(Letter.sent_at).where(
        (Letter.mailbox == mailbox.id) & (Letter.state == "sent")).tuples())


def wait_until_sent(mailbox, count, seconds, every=0.25):
    """The mailbox's sent times once ``count`` letters are sent: looked at every ``every`` s, a cheap count, so that
    the waiting takes neither CPU nor SQLite's lock from the worker being measured."""
    from portal.models import Letter

    started = time.monotonic()
    sent = Letter.select().where((Letter.mailbox == mailbox.id) & (Letter.state == "sent"))
    while sent.count() < count:
        assert time.monotonic() - started < seconds, f"{count} letters were not sent within {seconds} s"
        time.sleep(every)
    return sent_times(mailbox)


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def bench_send_to_sent(folder, database_url, queue_url, employee):
    from portal.models import utcnow

    port = free_port()
    mailbox = make_mailbox(employee, port)
    huey = queue_for(folder, queue_url)
    took = []
    with sinks([port]), workers(folder, database_url, queue_url, [port]):
        for number in range(LATENCY_LETTERS):
            time.sleep(random.uniform(1.0, 2.0))  # idle: the SQLite queue's polling has backed off
            started = utcnow()
            write_letter(employee, mailbox, number, huey)
            sent_at = wait_until_sent(mailbox, number + 1, 30, every=0.05)[-1]
            took.append((sent_at - started).total_seconds())
    p50, p95 = statistics.median(took), percentile(took, 0.95)
    print(f"  Send to \"sent\", idle worker, {LATENCY_LETTERS} letters: p50 {p50 * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms (target p95 <= 1000 ms)", flush=True)
    return p95 <= 1.0


def bench_many_mailboxes(folder, database_url, queue_url, employee):
    from portal.models import Letter

    ports = free_ports(MAILBOXES)
    mailboxes = [make_mailbox(employee, port) for port in ports]
    huey = queue_for(folder, queue_url)
    ids = []
    with sinks(ports) as sink, workers(folder, database_url, queue_url, ports, count=2, threads=4,
                                       per_minute=LIMIT) as running:
        cpu_before = cpu_seconds(running)
        started = time.monotonic()
        for mailbox in mailboxes:
            for number in range(LETTERS_EACH):
                ids.append(write_letter(employee, mailbox, number, huey).id)
        while sent_count(ids) < len(ids):
            assert time.monotonic() - started < 300, "not every letter was sent within five minutes"
            time.sleep(0.5)
        cpu = cpu_seconds(running) - cpu_before
        sink.stdin.write("count\n")
        sink.stdin.flush()
        received = int(sink.stdout.readline())
    rows = list(Letter.select(Letter.mailbox, Letter.queued_at, Letter.next_attempt_at, Letter.sent_at)
                .where(Letter.id.in_(ids)).tuples())
    held_exactly = True
    for mailbox in mailboxes:
        sent = sorted(at for box, _, _, at in rows if box == mailbox.id)
        held_exactly &= len([at for at in sent if (at - sent[0]).total_seconds() < 60]) == LIMIT
        held_exactly &= all(len([t for t in sent if 0 <= (t - at).total_seconds() < 60]) <= LIMIT for at in sent)
    lag = [max(0.0, (sent - max(queued, due)).total_seconds()) for _, queued, due, sent in rows]
    p95 = percentile(lag, 0.95)
    print(f"  {MAILBOXES} mailboxes x {LETTERS_EACH} letters, 2 workers x 4 threads, {LIMIT} a minute each: "
          f"{'every mailbox held its limit exactly' if held_exactly else 'A MAILBOX BROKE ITS LIMIT'} "
          f"({LIMIT} in each one's first minute, never more in any 60 s); {received} received of {len(ids)}; "
          f"queue lag p50 {statistics.median(lag) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (target <= 2000 ms); "
          f"worker CPU {cpu * 1000 / len(ids):.2f} ms per letter", flush=True)
    return held_exactly and p95 <= 2.0 and received == len(ids)


def raw_smtplib_seconds(port, messages):
    """(seconds, CPU seconds) raw smtplib takes to send these messages over one connection to the sink."""
    started, cpu = time.perf_counter(), time.process_time()
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
    for sender, to, raw in messages:
        smtp.sendmail(sender, to, raw)
    smtp.quit()
    return time.perf_counter() - started, time.process_time() - cpu


def busy_round(folder, database_url, queue_url, employee):
    """One busy mailbox's 1,000 letters: (portal seconds, seconds to the first "sent", seconds a letter once
    sending, raw smtplib seconds before, raw smtplib seconds after, the worker's CPU seconds, raw smtplib's CPU
    seconds on the run after)."""
    from portal.models import Letter, LetterRecipient, utcnow

    port = free_port()
    mailbox = make_mailbox(employee, port)
    huey = queue_for(folder, queue_url)
    with sinks([port]):
        ids = [write_letter(employee, mailbox, number).id for number in range(BUSY_LETTERS)]
        # Not due until the wake-up: the worker's minute sweep must not start on them before the clock does.
        mine = Letter.id.in_(ids)
        Letter.update(next_attempt_at=utcnow() + datetime.timedelta(days=1)).where(mine).execute()
        recipients = dict(LetterRecipient.select(LetterRecipient.letter, LetterRecipient.address)
                          .where(LetterRecipient.letter.in_(ids)).tuples())
        messages = [(letter.from_address, [recipients[letter.id]], letter.raw_message.encode())
                    for letter in Letter.select().where(mine).order_by(Letter.id)]
        # Raw smtplib before and after the worker, so that the load other processes put on the machine meanwhile
        # falls on both sides of the ratio alike.
        raw_before, _ = raw_smtplib_seconds(port, messages)
        with workers(folder, database_url, queue_url, [port]) as running:
            cpu_before = cpu_seconds(running)
            started = utcnow()
            Letter.update(next_attempt_at=started).where(mine).execute()
            huey.portal_tasks.send_letters(mailbox.id)
            times = wait_until_sent(mailbox, BUSY_LETTERS, 300)
            cpu = cpu_seconds(running) - cpu_before
        raw_after, raw_cpu = raw_smtplib_seconds(port, messages)
    portal, first = (times[-1] - started).total_seconds(), (times[0] - started).total_seconds()
    steady = (times[-1] - times[0]).total_seconds() / (BUSY_LETTERS - 1)
    return portal, first, steady, raw_before, raw_after, cpu, raw_cpu


def bench_busy_mailbox(folder, database_url, queue_url, employee):
    ratios = []
    for number in range(1, BUSY_ROUNDS + 1):
        portal, first, steady, raw_before, raw_after, cpu, raw_cpu = busy_round(folder, database_url, queue_url,
                                                                                employee)
        raw_seconds = (raw_before + raw_after) / 2
        ratios.append(raw_seconds / portal)
        print(f"  {BUSY_LETTERS} letters through one mailbox ({number}/{BUSY_ROUNDS}), limit off, stored first, then "
              f"sent by a worker: {portal:.2f} s ({BUSY_LETTERS / portal:.0f}/s; the first sent {first:.2f} s after "
              f"the wake-up, then {steady * 1000:.2f} ms a letter); raw smtplib, one connection, same messages: "
              f"{raw_before:.2f} s before, {raw_after:.2f} s after ({BUSY_LETTERS / raw_seconds:.0f}/s); portal/raw "
              f"{ratios[-1]:.2f}x ({raw_seconds / BUSY_LETTERS / steady:.2f}x once sending); CPU a letter: worker "
              f"{cpu * 1000 / BUSY_LETTERS:.2f} ms (without the database server's), raw smtplib "
              f"{raw_cpu * 1000 / BUSY_LETTERS:.2f} ms", flush=True)
    ratio = statistics.median(ratios)
    print(f"  one busy mailbox: portal/raw {ratio:.2f}x, the median of {BUSY_ROUNDS} rounds (keep >= 0.50x)",
          flush=True)
    trip = round_trip()
    print(f"  a database round trip (SELECT 1, median of 200): {trip * 1000:.3f} ms; a letter's {LETTER_STATEMENTS} "
          f"statements then wait at least {LETTER_STATEMENTS * trip * 1000:.2f} ms, beside raw smtplib's whole letter "
          f"at {raw_seconds * 1000 / BUSY_LETTERS:.2f} ms", flush=True)
    return ratio >= 0.5


# What one sent letter costs the database, each a round trip on PostgreSQL: the mark, then the outcome's BEGIN,
# letter row, history line, recipients' answers and COMMIT, and the webhooks' look for endpoints that want it
# (tests/test_letters_queue.py::test_each_letter_of_a_run_costs_the_mark_and_one_outcome_transaction holds it).
LETTER_STATEMENTS = 7


def round_trip(count=200):
    """The median time of one trivial statement through the portal's own database connection."""
    from portal.db import database

    times = []
    for _ in range(count):
        started = time.perf_counter()
        database.execute_sql("SELECT 1").fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_sending(name, database_url, queue_url):
    from portal.db import database
    from portal.models import Employee

    folder = tempfile.mkdtemp(prefix="bench-letters-")
    try:
        setup_database(database_url)
        employee = Employee.create(name="Bench", email="bench@example.com")
        print(f"{name}:", flush=True)
        parts = {"latency": bench_send_to_sent, "many": bench_many_mailboxes, "busy": bench_busy_mailbox}
        wanted = [part.strip() for part in os.environ.get("BENCH_SENDING", "").split(",") if part.strip()]
        results = [parts[part](folder, database_url, queue_url, employee) for part in wanted or parts]
    finally:
        database.close()
        shutil.rmtree(folder, ignore_errors=True)
    return all(results)


@contextmanager
def postgres_and_redis():
    """(database URL, queue URL) of a private PostgreSQL cluster and redis-server, or None without them."""
    from tests.postgres import PG_BIN, running_cluster
    from tests.servers.redis import REDIS_SERVER, RedisServer

    if not (PG_BIN / "initdb").exists() or not (shutil.which(REDIS_SERVER) or os.path.exists(REDIS_SERVER)):
        yield None
        return
    with ExitStack() as stack:
        cluster = stack.enter_context(running_cluster())
        root = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        stack.callback(shutil.rmtree, root, True)
        redis = RedisServer(root).start()
        stack.callback(redis.stop)
        yield cluster.url(cluster.new_database()), redis.url


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
    from portal.models import Employee

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
        config = MailConfig(timeout=30, allowed_hosts=("127.0.0.1:*", "localhost:*"), ca_file=certificate.ca_file)

        started = time.perf_counter()
        [first] = fetch_replies(config, mailbox_id=mailbox.id)
        first_seconds = time.perf_counter() - started
        assert first.ok and first.new_messages == POP3_MESSAGES, first

        # Interleaved, so that the load other processes put on the machine falls on both alike.
        context = ssl.create_default_context(cafile=certificate.ca_file)
        seconds, raw, downloaded = [], [], 0
        for _ in range(POP3_ROUNDS):
            started = time.perf_counter()
            [again] = fetch_replies(config, mailbox_id=mailbox.id)
            seconds.append(time.perf_counter() - started)
            assert again.ok and again.new_messages == 0
            downloaded += again.bodies_downloaded

            started = time.perf_counter()
            pop = poplib.POP3_SSL("localhost", dovecot.ports["pop3s"], context=context, timeout=30)
            pop.user(address)
            pop.pass_(password)
            _, lines, _ = pop.uidl()
            pop.quit()
            raw.append(time.perf_counter() - started)
            assert len(lines) == POP3_MESSAGES
        second_seconds = statistics.median(seconds)
        raw_seconds = statistics.median(raw)
    finally:
        dovecot.stop()

    ratio = second_seconds / raw_seconds
    print(f"POP3 first fetch of {POP3_MESSAGES} messages (headers only, TOP n 0): {first_seconds:.2f} s")
    print(f"POP3 second fetch: {second_seconds * 1000:.1f} ms (median of {POP3_ROUNDS}), "
          f"bodies downloaded: {downloaded}")
    print(f"raw poplib connect + sign-in + UIDL + quit: {raw_seconds * 1000:.1f} ms (median of {POP3_ROUNDS}, "
          "interleaved with the fetches)")
    ratios = sorted(p / r for p, r in zip(seconds, raw))
    print(f"second fetch / raw UIDL: {ratio:.2f}x (target <= 1.50x; pairwise ratios "
          f"{ratios[0]:.2f}-{ratios[-1]:.2f}, middle half {ratios[len(ratios) // 4]:.2f}-"
          f"{ratios[3 * len(ratios) // 4]:.2f})")
    return ratio <= 1.5 and downloaded == 0


def main():
    only = os.environ.get("BENCH_ONLY", "")
    results = []
    if only in ("", "sqlite"):
        folder = tempfile.mkdtemp(prefix="bench-sqlite-")
        try:
            results.append(bench_sending("SQLite, SQLite queue", f"sqlite:///{folder}/bench.sqlite3", ""))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if only in ("", "postgres"):
        with postgres_and_redis() as servers:
            if servers is None:
                print("PostgreSQL or redis-server is not installed: that part is skipped")
            else:
                results.append(bench_sending("PostgreSQL, Redis queue", *servers))
    if only in ("", "fetch"):
        folder = tempfile.mkdtemp(prefix="bench-fetch-")
        try:
            setup_database(f"sqlite:///{folder}/bench.sqlite3")
            results.append(bench_fetching(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if not all(results):
        print("MISSED a target")
        return 1
    print("All targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
