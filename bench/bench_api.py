"""What the JSON API adds on top of the core it calls: 300 employees, 30 projects, 900 mailboxes.

Targets (issue 6): GET /api/v1/senders/resolve costs at most 2 SQL queries more than
resolve_sender itself (the token and the project by name; last-used is written at most once a
minute), and what it adds to the core call measured in this same run is no more than 2 times
a bare authenticated GET /api/v1/me (the per-request cost every endpoint pays: connection,
rate limiter, token; the project by name is the rest). Also printed: checking a letter body
with 100 recipients against the OpenAPI schema.
Run: .venv/bin/python bench/bench_api.py
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
from portal.api.shapes import decision_json  # noqa: E402
from portal.api.tokens import create_token  # noqa: E402
from portal.api.validation import validate  # noqa: E402
from portal.db import StatementCounter, database, upgrade  # noqa: E402
from portal.models import Employee, Mailbox, MailboxProject, Project  # noqa: E402
from portal.sender import resolve_sender  # noqa: E402

EMPLOYEES, PROJECTS, MAILBOXES = 300, 30, 900
ROUNDS = 400
MAX_EXTRA_QUERIES = 2
MAX_EXTRA_OVER_BARE = 2.0


def populate(rng):
    now = datetime.datetime(2024, 1, 1)
    with database.atomic():
        Employee.insert_many([{"name": f"Person {n:03d}", "email": f"person{n}@example.com",
                               "role": "admin" if n == 0 else "employee"} for n in range(EMPLOYEES)]).execute()
        Project.insert_many([{"name": f"Project {n:02d}"} for n in range(PROJECTS)]).execute()
        employee_ids = [e.id for e in Employee.select(Employee.id)]
        project_ids = [p.id for p in Project.select(Project.id)]
        rows = []
        for n in range(MAILBOXES):
            company = rng.random() < 0.15
            rows.append({"scope": "company" if company else "employee",
                         "owner": None if company else rng.choice(employee_ids), "address": f"box{n}@example.com",
                         "smtp_host": "smtp.example.com", "smtp_port": 465, "smtp_security": "ssl",
                         "is_default": rng.random() < 0.2, "last_passed_test_at": now, "tested_settings_digest": "x",
                         "secret_context": secrets.token_hex(8), "created_at": now + datetime.timedelta(seconds=n)})
        for start in range(0, len(rows), 300):
            Mailbox.insert_many(rows[start:start + 300]).execute()
        links = [(m.id, rng.choice(project_ids)) for m in Mailbox.select(Mailbox.id) if rng.random() < 0.5]
        MailboxProject.insert_many(links, fields=[MailboxProject.mailbox, MailboxProject.project]).execute()


def median_ms(call, rounds=ROUNDS):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    folder = Path(tempfile.mkdtemp(prefix="bench-api-"))
    app = create_app({"SECRET_KEY": "bench", "PORTAL_DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
                      "INSTANCE_PATH": str(folder), "PORTAL_API_RATE_LIMIT": "1000000 per minute"})
    with app.app_context():
        upgrade()
    database.connect(reuse_if_open=True)
    populate(random.Random(6))
    person = Employee.get(Employee.email == "person7@example.com")
    project = Project.get(Project.name == "Project 03")
    token = create_token(person, "bench")[1]
    client = app.test_client(use_cookies=False)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/senders/resolve?project={project.name.replace(' ', '%20')}"
    assert client.get(url, headers=headers).status_code == 200

    def core():
        decision_json(resolve_sender(person, project), "en")

    def api():
        client.get(url, headers=headers)

    def me():
        client.get("/api/v1/me", headers=headers)

    with StatementCounter() as counted_core:
        core()
    with StatementCounter() as counted_api:
        api()
    body = {"project": "Project 03", "to": [f"Person {n} <p{n}@example.com>" for n in range(100)], "cc": [],
            "subject": "Quarterly report", "body": "Hello,\n" * 2000, "idempotency_key": "k"}

    # Interleave the rounds so all three see the same machine load.
    core_ms, api_ms, me_ms = [], [], []
    for _ in range(8):
        core_ms.append(median_ms(core, ROUNDS // 8))
        api_ms.append(median_ms(api, ROUNDS // 8))
        me_ms.append(median_ms(me, ROUNDS // 8))
    core_median, api_median, me_median = (statistics.median(found) for found in (core_ms, api_ms, me_ms))
    validate_median = median_ms(lambda: validate(body, "LetterCreate"), ROUNDS // 2)
    database.close()

    extra_queries = counted_api.count - counted_core.count
    extra_ms = api_median - core_median
    print(f"resolve_sender + JSON (core): {counted_core.count} queries, median {core_median:.2f} ms")
    print(f"GET /api/v1/senders/resolve:  {counted_api.count} queries, median {api_median:.2f} ms "
          f"(+{extra_queries} queries, +{extra_ms:.2f} ms, {api_median / core_median:.2f}x the core)")
    print(f"GET /api/v1/me (bare request): median {me_median:.2f} ms; resolve adds "
          f"{extra_ms / me_median:.2f}x that over the core")
    print(f"validate a 100-recipient letter body against LetterCreate: median {validate_median:.3f} ms")
    missed = []
    if extra_queries > MAX_EXTRA_QUERIES:
        missed.append(f"{extra_queries} extra queries > {MAX_EXTRA_QUERIES}")
    if extra_ms > MAX_EXTRA_OVER_BARE * me_median:
        missed.append(f"{extra_ms:.2f} ms over the core > {MAX_EXTRA_OVER_BARE} x {me_median:.2f} ms")
    print("targets: " + ("met" if not missed else "MISSED: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
