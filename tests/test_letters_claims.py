"""Claims and the "data" mark: a worker without its lease cannot mark, a takeover makes a marked letter uncertain,
two workers on PostgreSQL never wait on each other, and the old side file's marks are folded into the rows."""
import datetime
import sqlite3
import threading
import time

import pytest
from peewee import PostgresqlDatabase

from portal.db import database
from portal.letters.claims import claim, claim_due_letters
from portal.letters.outcomes import retry_letter
from portal.letters.queue import QueuePolicy
from portal.models import Letter, utcnow

LEASE = 60


def take_over():
    """Another worker claims what is due once the first lease has run out: (its lease, its letters)."""
    return claim(LEASE, 200, now=utcnow() + datetime.timedelta(seconds=LEASE + 1))


def test_a_worker_whose_lease_another_took_cannot_mark(app, sending_mailbox, write_letter):
    letter = write_letter(sending_mailbox)
    first, _ = claim(LEASE, 200, now=utcnow())
    second, [taken] = take_over()
    assert taken.id == letter.id and first.token != second.token

    assert not first.mark(letter.id)
    assert Letter.get_by_id(letter.id).phase == ""
    assert second.mark(letter.id)  # the new holder may
    assert Letter.get_by_id(letter.id).phase == "data"


def test_a_takeover_makes_a_marked_letter_uncertain_and_sends_the_unmarked_one_once(
        sending_mailbox, write_letter, run_queue, smtp_server):
    marked, unmarked = write_letter(sending_mailbox), write_letter(sending_mailbox, to="other@example.com")
    lease, claimed = claim(LEASE, 200, now=utcnow())
    assert {c.id for c in claimed} == {marked.id, unmarked.id}
    assert lease.mark(marked.id)  # the first worker reached the dot of one letter, then stopped

    run_queue.later(seconds=LEASE + 1)
    report = run_queue()

    assert report.outcomes["uncertain"] == 1 and report.outcomes["sent"] == 1
    assert Letter.get_by_id(marked.id).state == "uncertain"
    assert Letter.get_by_id(unmarked.id).state == "sent"
    assert [m.rcpt_tos for m in smtp_server.messages] == [["other@example.com"]]

    # Someone checked with the recipient and sends it again: the dead worker's mark went with the outcome.
    assert retry_letter(Letter.get_by_id(marked.id))
    run_queue()
    assert Letter.get_by_id(marked.id).state == "sent" and len(smtp_server.messages) == 2


def test_a_letter_that_was_taken_over_twice_is_still_uncertain(sending_mailbox, write_letter, run_queue,
                                                               smtp_server):
    letter = write_letter(sending_mailbox)
    lease, _ = claim(LEASE, 200, now=utcnow())
    assert lease.mark(letter.id)
    take_over()  # the second worker stopped too, before it wrote anything

    run_queue.later(seconds=2 * LEASE + 2)
    run_queue()

    assert Letter.get_by_id(letter.id).state == "uncertain" and smtp_server.messages == []


def test_letters_sent_leave_no_marks_behind(sending_mailbox, write_letter, run_queue, smtp_server):
    for n in range(3):
        write_letter(sending_mailbox, to=f"friend{n}@example.com")

    run_queue()

    assert len(smtp_server.messages) == 3
    assert {(letter.state, letter.phase) for letter in Letter.select()} == {("sent", "")}


def test_two_workers_on_postgresql_claim_different_letters_without_waiting_for_each_other(
        app, sending_mailbox, write_letter):
    if not isinstance(database.obj, PostgresqlDatabase):
        pytest.skip("SKIP LOCKED is PostgreSQL's: run with PORTAL_TEST_POSTGRES=1 (SQLite has one writer)")
    letters = [write_letter(sending_mailbox, to=f"friend{n}@example.com") for n in range(4)]
    inside, release, first = threading.Event(), threading.Event(), []

    def slow_worker():
        # Claims two letters and holds its transaction open, row locks and all, as a slow commit would.
        with database.connection_context(), database.atomic():
            first.append(claim(LEASE, 2, now=utcnow())[1])
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=slow_worker)
    worker.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        with database.connection_context():
            _, second = claim(LEASE, 10, now=utcnow())
        waited = time.monotonic() - started
    finally:
        release.set()
        worker.join(10)

    assert waited < 1.0  # without SKIP LOCKED it waits for the other transaction (here: 10 s)
    assert {c.id for c in first[0]} == {letters[0].id, letters[1].id}
    assert {c.id for c in second} == {letters[2].id, letters[3].id}


def test_marks_left_in_the_old_side_file_are_folded_into_the_rows(tmp_path):
    import importlib

    from portal.db import open_database
    from portal.migrations import upgrade

    path = tmp_path / "portal.sqlite3"
    db = open_database(f"sqlite:///{path}")
    with db.connection_context():
        upgrade(db)  # the schema of today; the rows as a first-wave worker left them
        now = utcnow()
        db.execute_sql("PRAGMA foreign_keys = OFF")  # letters alone, without the author and mailbox rows
        with db.bind_ctx([Letter]):
            for letter_id, state, phase in ((1, "sending", ""), (2, "sending", "lapsed"), (3, "sent", ""),
                                            (4, "sending", "lapsed")):
                Letter.insert(id=letter_id, author=1, from_address="a@example.com", subject="s", body_text="b",
                              message_id=f"<{letter_id}@example.com>", raw_message="raw", state=state, phase=phase,
                              created_at=now, queued_at=now, next_attempt_at=now).execute()
    with sqlite3.connect(str(path) + "-marks") as marks:  # what a worker of the first wave left behind
        marks.execute("CREATE TABLE letter_mark (letter_id INTEGER NOT NULL, token TEXT NOT NULL, "
                      "PRIMARY KEY (letter_id, token)) WITHOUT ROWID")
        marks.executemany("INSERT INTO letter_mark VALUES (?, ?)", [(1, "t1"), (2, "t2"), (3, "t3")])

    with db.connection_context():
        importlib.import_module("portal.migrations.m0016_letter_marks_in_rows").upgrade(db, None)
        phases = dict(db.execute_sql("SELECT id, phase FROM letter ORDER BY id").fetchall())

    assert phases == {1: "data", 2: "data", 3: "", 4: ""}
    assert not (tmp_path / "portal.sqlite3-marks").exists()


def test_claim_due_letters_gives_the_lease_token_and_the_letters(app, sending_mailbox, write_letter):
    letter = write_letter(sending_mailbox)
    token, [claimed] = claim_due_letters(QueuePolicy(lease=LEASE), now=utcnow())
    assert claimed.id == letter.id and Letter.get_by_id(letter.id).lease_token == token
