"""Which address a letter leaves from, at size: 1,000 employees, 50 projects, 3,000 mailboxes.

Targets (issue 4): resolve_sender runs at most 2 SQL queries; the whole Who-sends-from-what grid
(every employee × every project) is built with a constant number of queries, the same for a
small company as for this one. Its median server time (and the page's) is printed beside the
time of as many plain dictionary look-ups as it has cells, as a ratio, measured in this run.
Run: .venv/bin/python bench/bench_sender.py
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
from portal.models import Employee, Mailbox, MailboxAccess, MailboxProject, Project  # noqa: E402
from portal.sender import resolve_sender, sender_table  # noqa: E402

EMPLOYEES, PROJECTS, MAILBOXES = 1_000, 50, 3_000
COMPANY_SHARE = 0.15
RESOLVE_ROUNDS = 300
GRID_ROUNDS = 5
MAX_RESOLVE_QUERIES = 2
DEPARTMENTS = ["Sales", "Support", "Logistics", "Finance", "Legal", "Export", "Service", "Office"]


def populate(rng):
    """Employees, projects and mailboxes in bulk (secrets are irrelevant to the rule, so none are stored)."""
    now = datetime.datetime(2024, 1, 1)
    with database.atomic():
        Employee.insert_many([
            {"name": f"Person {n:04d}", "email": f"person{n}@example.com", "department": rng.choice(DEPARTMENTS),
             "role": "admin" if n == 0 else "employee"} for n in range(EMPLOYEES)
        ]).execute()
        Project.insert_many([{"name": f"Project {n:02d}"} for n in range(PROJECTS)]).execute()
        employee_ids = [e.id for e in Employee.select(Employee.id)]
        project_ids = [p.id for p in Project.select(Project.id)]
        rows = []
        for n in range(MAILBOXES):
            company = rng.random() < COMPANY_SHARE
            rows.append({
                "scope": "company" if company else "employee",
                "owner": None if company else rng.choice(employee_ids),
                "address": f"box{n}@example.com", "smtp_host": "smtp.example.com", "smtp_port": 465,
                "smtp_security": "ssl", "is_default": rng.random() < 0.2, "active": rng.random() > 0.05,
                "access_everyone": not company or rng.random() < 0.6,
                "last_passed_test_at": None if rng.random() < 0.05 else now, "tested_settings_digest": "x",
                "secret_context": secrets.token_hex(8), "created_at": now + datetime.timedelta(seconds=n),
            })
        for start in range(0, len(rows), 500):
            Mailbox.insert_many(rows[start:start + 500]).execute()
        links, access = [], []
        for mailbox in Mailbox.select(Mailbox.id, Mailbox.scope, Mailbox.access_everyone):
            for project in rng.sample(project_ids, rng.choice([0, 0, 1, 1, 2, 3])):
                links.append({"mailbox": mailbox.id, "project": project})
            if mailbox.scope == "company" and not mailbox.access_everyone:
                access.append({"mailbox": mailbox.id, "department": rng.choice(DEPARTMENTS)})
                access.append({"mailbox": mailbox.id, "employee": rng.choice(employee_ids)})
        for start in range(0, len(links), 500):
            MailboxProject.insert_many(links[start:start + 500]).execute()
        MailboxAccess.insert_many(access).execute()


def timed(action, rounds):
    """Median seconds of `action()` over rounds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    rng = random.Random(4)
    folder = Path(tempfile.mkdtemp(prefix="bench-sender-"))
    app = create_app({"SECRET_KEY": secrets.token_hex(16), "INSTANCE_PATH": str(folder / "instance"),
                      "PORTAL_DATABASE_URL": f"sqlite:///{folder / 'portal.sqlite3'}", "PORTAL_INSECURE_COOKIES": True,
                      "RATELIMIT_ENABLED": False, "WTF_CSRF_ENABLED": False, "PORTAL_PAGE_SIZE": 25})
    upgrade(database.obj if hasattr(database, "obj") else database)
    database.connect(reuse_if_open=True)
    populate(rng)
    employees = list(Employee.select())
    projects = list(Project.select())
    print(f"{len(employees)} employees, {len(projects)} projects, {Mailbox.select().count()} mailboxes "
          f"({Mailbox.select().where(Mailbox.scope == 'company').count()} company)")

    worst = 0
    for _ in range(50):
        with StatementCounter() as queries:
            resolve_sender(rng.choice(employees), rng.choice(projects))
        worst = max(worst, queries.count)
    pairs = [(rng.choice(employees), rng.choice(projects)) for _ in range(RESOLVE_ROUNDS)]
    iterator = iter(pairs * 2)
    resolve_time = timed(lambda: resolve_sender(*next(iterator)), RESOLVE_ROUNDS)
    lookup = {(e.id, p.id): e.id for e in employees[:20] for p in projects}
    key = next(iter(lookup))
    one_lookup = timed(lambda: lookup[key], RESOLVE_ROUNDS)
    print(f"resolve_sender: at most {worst} queries (target <= {MAX_RESOLVE_QUERIES}); "
          f"median {resolve_time * 1000:.2f} ms "
          f"vs one dict look-up {one_lookup * 1e6:.3f} µs (ratio {resolve_time / one_lookup:,.0f}x)")

    with StatementCounter() as small:
        sender_table(employees[:10], projects[:3])
    with StatementCounter() as full:
        table = sender_table(employees, projects)
    cells = len(table.cells)
    nobody = sum(1 for d in table.cells.values() if d.nobody)
    ties = sum(1 for d in table.cells.values() if d.conflict)
    grid_time = timed(lambda: sender_table(employees, projects), GRID_ROUNDS)
    answers = {cell: (d.mailbox.id if d.mailbox else None) for cell, d in table.cells.items()}
    keys = list(answers)

    def dict_lookups():
        for cell in keys:
            answers[cell]

    lookups_time = timed(dict_lookups, GRID_ROUNDS)
    print(f"Who sends from what: {cells:,} cells ({nobody:,} nobody can send, {ties:,} ties) in {full.count} queries "
          f"(10 × 3 grid: {small.count}); median {grid_time * 1000:.0f} ms vs {cells:,} dict look-ups "
          f"{lookups_time * 1000:.2f} ms (ratio {grid_time / lookups_time:,.0f}x)")

    admin = Employee.get(Employee.role == "admin")
    admin.set_password("benchmark password")
    admin.save()
    database.close()
    client = app.test_client()
    client.post("/sign-in", data={"email": admin.email, "password": "benchmark password"})
    for url, what in (("/admin/mail/senders", "one page of 25 employees"),
                      ("/admin/mail/senders?problem=any", "every employee decided, problems shown")):
        page = client.get(url)
        assert page.status_code == 200, page.status_code
        page_time = timed(lambda: client.get(url), GRID_ROUNDS)
        print(f"Who sends from what page ({what}): median {page_time * 1000:.0f} ms")

    ok = worst <= MAX_RESOLVE_QUERIES and full.count == small.count
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
