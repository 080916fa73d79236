"""The admin Outbox, its 2-second poll, the employee list and "Who sends from what" with 300,000 letters.

Issue 14, defect 5: each page at p95 <= 150 ms with LETTERS_IN_TABLE letters in the table (300,000 by
default), on SQLite and on PostgreSQL (a private cluster, when PORTAL_PG_BIN has one), in process through
Flask's test client, so the figures are the portal's own time and not nginx's or the network's. The
deployment's end-to-end figures (through nginx and gunicorn) are bench/bench_deploy.py's.
Run: .venv/bin/python bench/bench_outbox.py  (LETTERS_IN_TABLE=30000 for a quicker look)
"""
import datetime
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from time import perf_counter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal import create_app  # noqa: E402
from portal.db import StatementCounter, database  # noqa: E402
from portal.migrations import upgrade  # noqa: E402
from portal.models import Employee, Letter, LetterRecipient, Mailbox, Project  # noqa: E402
from tests.postgres import PG_BIN, running_cluster  # noqa: E402

LETTERS_IN_TABLE = int(os.environ.get("LETTERS_IN_TABLE", 300_000))
ROUNDS = 40
MAX_PAGE = 0.150
PASSWORD = "benchmark password"
AUTHORS = 50
CHUNK = 2000


def p95(values):
    return statistics.quantiles(values, n=20)[-1]


def seed(count):
    """`count` letters from AUTHORS employees over a year, most sent, a few failed, the newest 20 queued."""
    admin = Employee(name="Bench Admin", email="bench-admin@example.com", role="admin")
    admin.set_password(PASSWORD)
    admin.save()
    authors = [Employee.create(name=f"Author {n}", email=f"author{n}@example.com", role="employee")
               for n in range(AUTHORS)]
    projects = [Project.create(name=f"Project {n}") for n in range(5)]
    mailbox = Mailbox.create(address="bench@example.com", scope="company", smtp_host="localhost", smtp_port=587,
                             smtp_security="starttls")
    start = datetime.datetime.utcnow() - datetime.timedelta(days=365)
    step = datetime.timedelta(days=365) / count
    for first in range(0, count, CHUNK):
        rows = []
        for n in range(first, min(count, first + CHUNK)):
            state = "queued" if n >= count - 20 else ("failed" if n % 97 == 0 else "sent")
            when = start + step * n
            rows.append({"author": authors[n % AUTHORS].id, "project": projects[n % 5].id, "mailbox": mailbox.id,
                         "from_address": mailbox.address, "to_header": f"friend{n}@example.net",
                         "subject": f"Bench {n}", "message_id": f"<bench-{n}@example.com>", "raw_message": "x",
                         "state": state, "created_at": when, "queued_at": when, "next_attempt_at": when,
                         "sent_at": when if state == "sent" else None})
        with database.atomic():
            Letter.insert_many(rows).execute()
    with database.atomic():
        newest = Letter.select(Letter.id).order_by(Letter.id.desc()).limit(200)
        LetterRecipient.insert_many(
            [{"letter": letter.id, "address": "friend@example.net", "status": "accepted"} for letter in newest]
            + [{"letter": letter.id, "address": "nobody@example.net", "status": "refused"}
               for letter in newest[:50]]).execute()
    if database.obj.__class__.__name__.endswith("SqliteDatabase"):
        database.execute_sql("ANALYZE")
    else:
        database.execute_sql("ANALYZE letter")
    return admin


def measure(client, path, headers=None):
    for _ in range(5):
        assert client.get(path, headers=headers).status_code in (200, 204), path
    times = []
    for _ in range(ROUNDS):
        started = perf_counter()
        status = client.get(path, headers=headers).status_code
        times.append(perf_counter() - started)
        assert status in (200, 204), (path, status)
    with StatementCounter() as counted:
        client.get(path, headers=headers)
    return p95(times), counted.count


def run(label, url, folder):
    app = create_app({
        "SECRET_KEY": secrets.token_hex(16), "PORTAL_DATABASE_URL": url, "PORTAL_INSECURE_COOKIES": True,
        "RATELIMIT_ENABLED": False, "WTF_CSRF_ENABLED": False, "INSTANCE_PATH": str(folder / "instance"),
    })
    with database.connection_context():
        upgrade(database.obj)
        started = perf_counter()
        admin = seed(LETTERS_IN_TABLE)
        print(f"{label}: {LETTERS_IN_TABLE:,} letters stored in {perf_counter() - started:.0f} s", flush=True)
    client = app.test_client()
    assert client.post("/sign-in", data={"email": admin.email, "password": PASSWORD}).status_code == 302
    poll = client.get("/outbox", headers={"HX-Request": "true"}).get_data(as_text=True)
    marker = 'id="outbox-poll" hx-get="'  # present while a shown letter is in flight (the newest 20 are queued)
    poll_url = poll.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&") if marker in poll else None
    missed = []
    pages = [("/outbox", "admin Outbox", None), ("/outbox?state=cancelled", "admin Outbox, an empty state", None),
             ("/admin/employees", "employee list", None), ("/admin/mail/senders", "Who sends from what", None)]
    if poll_url:
        pages.insert(1, (poll_url, "the Outbox's 2-second poll", {"HX-Request": "true"}))
    for path, name, headers in pages:
        seconds, statements = measure(client, path, headers)
        print(f"{label}: {name} p95 {seconds * 1000:.0f} ms, {statements} statements "
              f"(target <= {MAX_PAGE * 1000:.0f} ms)", flush=True)
        if seconds > MAX_PAGE:
            missed.append(f"{label} {name}")
    database.close()
    return missed


def main():
    missed = []
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as folder:
        folder = Path(folder)
        missed += run("SQLite", f"sqlite:///{folder / 'portal.sqlite3'}", folder)
        if (PG_BIN / "initdb").exists():
            with running_cluster() as cluster:
                missed += run("PostgreSQL", cluster.url(cluster.new_database()), folder)
        else:
            print(f"PostgreSQL skipped: no initdb in {PG_BIN} (set PORTAL_PG_BIN)")
    if missed:
        print("Missed: " + ", ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
