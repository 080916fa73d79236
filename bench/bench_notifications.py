"""The notification bell: what it adds to every page, with 20,000 notifications in the table.

Target (issue 16): the bell adds at most one SQL query to a page, whatever the number of notifications
(counted with StatementCounter against the same page with the bell's count replaced by a constant), and
its time is printed as a ratio against that same page without the count, measured in turns in this run.
Run: .venv/bin/python bench/bench_notifications.py
"""
import datetime
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal import create_app  # noqa: E402
from portal.db import StatementCounter, database  # noqa: E402
from portal.migrations import upgrade  # noqa: E402
from portal.models import Employee, Notification, utcnow  # noqa: E402
from portal.notifications import KINDS  # noqa: E402
import portal.views.notifications as views  # noqa: E402

PEOPLE = 200
NOTIFICATIONS = 20_000
ROUNDS = 200
MAX_EXTRA_QUERIES = 1
PASSWORD = "benchmark password"
PAGES = ["/", "/outbox", "/replies", "/profile", "/notifications"]


def fill(reader):
    """NOTIFICATIONS entries over PEOPLE employees, a third of them read; the reader gets their share."""
    rng = random.Random(16)
    people = [reader.id]
    with database.atomic():
        for number in range(PEOPLE - 1):
            person = Employee(name=f"Person {number}", email=f"person{number}@example.com")
            person.save()
            people.append(person.id)
        now = utcnow()
        rows = []
        for number in range(NOTIFICATIONS):
            created = now - datetime.timedelta(minutes=number)
            rows.append({"recipient": rng.choice(people), "kind": rng.choice(KINDS), "about": f"Letter {number}",
                         "target": f"letter:{number}", "created_at": created,
                         "read_at": created if rng.random() < 1 / 3 else None})
        for chunk in range(0, len(rows), 500):
            Notification.insert_many(rows[chunk:chunk + 500]).execute()


def queries(client, url):
    with StatementCounter() as counted:
        assert client.get(url).status_code == 200
    return counted.count


def median_seconds(client, url, rounds=ROUNDS):
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        client.get(url)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main():
    folder = Path(tempfile.mkdtemp(prefix="bench-notifications-"))
    app = create_app({
        "SECRET_KEY": secrets.token_hex(16),
        "PORTAL_DATABASE_URL": f"sqlite:///{folder / 'portal.sqlite3'}",
        "PORTAL_INSECURE_COOKIES": True,
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": False,
        "INSTANCE_PATH": str(folder / "instance"),
    })
    with database.connection_context():
        upgrade(database.obj)
        reader = Employee(name="Bench Reader", email="bench-reader@example.com")
        reader.set_password(PASSWORD)
        reader.save()
        fill(reader)
        unread = Notification.select().where((Notification.recipient == reader.id)
                                             & Notification.read_at.is_null()).count()
    client = app.test_client()
    assert client.post("/sign-in", data={"email": reader.email, "password": PASSWORD}).status_code == 302
    for url in PAGES:
        client.get(url)

    counted = views.unread_count
    with_bell = {url: queries(client, url) for url in PAGES}
    views.unread_count = lambda employee_id: unread
    without = {url: queries(client, url) for url in PAGES}
    views.unread_count = counted

    print(f"{NOTIFICATIONS} notifications over {PEOPLE} people; the reader has {unread} unread.")
    print("SQL queries per page, with the bell's count -> with a constant instead:")
    for url in PAGES:
        print(f"  {url:16} {with_bell[url]} -> {without[url]}  (+{with_bell[url] - without[url]})")
    extra = max(with_bell[url] - without[url] for url in PAGES)

    times = {}
    for turn in range(3):  # in turns, so a busy moment on the machine slows both sides alike
        for name, function in (("bell", counted), ("constant", lambda employee_id: unread)):
            views.unread_count = function
            times.setdefault(name, []).append(median_seconds(client, "/outbox", rounds=ROUNDS // 3))
    views.unread_count = counted
    bell, constant = statistics.median(times["bell"]), statistics.median(times["constant"])
    print(f"/outbox median: {bell * 1000:.2f} ms with the bell's count, {constant * 1000:.2f} ms with a constant "
          f"(ratio {bell / constant:.2f}x)")
    print(f"Most queries the bell adds to a page: {extra} (target <= {MAX_EXTRA_QUERIES})")
    if extra > MAX_EXTRA_QUERIES:
        print("MISSED: the bell adds more than one query")
        return 1
    print("All targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
