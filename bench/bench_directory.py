"""Directory sync of 10,000 people with 1% changed: the sync against the LDAP search alone, and rows written.

Target (issue 17): a sync of 10,000 directory entries with 1% changes takes at most 2x the time of
the LDAP search alone (both measured here, against the same private OpenLDAP), and writes only the
changed rows. Needs Debian's slapd (the tests' fixture starts it). Run: .venv/bin/python bench/bench_directory.py
"""
import dataclasses
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ldap3 import MODIFY_REPLACE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal import create_app  # noqa: E402
from portal.db import database, upgrade  # noqa: E402
from portal.directory import DirectorySettings, read_people, sync_directory  # noqa: E402
from tests.servers.certificates import make_certificate  # noqa: E402
from tests.servers.ldap import OpenLdap, missing_reason, person_dn  # noqa: E402

PEOPLE = 10_000
CHANGED = PEOPLE // 100
ROUNDS = 3
MAX_RATIO = 2.0


def change_departments(directory, round_number):
    """Move 1% of the people (a different 1% each round) to a new department, over one connection."""
    with directory.admin_connection() as connection:
        for number in range(1 + round_number * CHANGED, 1 + (round_number + 1) * CHANGED):
            connection.modify(person_dn(number), {"departmentNumber": [(MODIFY_REPLACE, [f"Moved {round_number}"])]})


def main():
    reason = missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    root = Path(tempfile.mkdtemp(prefix="bench-directory-"))
    directory = OpenLdap(root / "ldap", make_certificate(root / "certs"), people=PEOPLE).start()
    try:
        settings = DirectorySettings(**dataclasses.asdict(directory.access()))
        app = create_app({"SECRET_KEY": secrets.token_hex(16), "PORTAL_DATABASE_URL": f"sqlite:///{root / 'db'}",
                          "INSTANCE_PATH": str(root / "instance")})
        with app.app_context():
            upgrade()
            database.connect(reuse_if_open=True)
            started = time.perf_counter()
            first = sync_directory(settings)
            print(f"first sync: {len(first.details['created'])} created, "
                  f"{first.details['rows_written']} rows written in {time.perf_counter() - started:.2f} s")
            searches, syncs, ratios, written = [], [], [], []
            for round_number in range(ROUNDS):
                change_departments(directory, round_number)
                started = time.perf_counter()
                read_people(settings)
                searches.append(time.perf_counter() - started)
                started = time.perf_counter()
                record = sync_directory(settings)
                syncs.append(time.perf_counter() - started)
                ratios.append(syncs[-1] / searches[-1])
                written.append(record.details["rows_written"])
    finally:
        directory.stop()
    ratio = statistics.median(ratios)
    print(f"LDAP search alone ({PEOPLE} entries, paged): median {statistics.median(searches):.3f} s")
    print(f"sync with {CHANGED} changed:                 median {statistics.median(syncs):.3f} s")
    print(f"ratio sync / search: median {ratio:.2f} (target <= {MAX_RATIO}); per round "
          + ", ".join(f"{value:.2f}" for value in ratios))
    print(f"rows written per sync: {written} (expected {CHANGED} each)")
    return 0 if ratio <= MAX_RATIO and all(count == CHANGED for count in written) else 1


if __name__ == "__main__":
    sys.exit(main())
