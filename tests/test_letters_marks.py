"""The "data" mark: where it is kept, that a worker without its lease cannot mark, and what a takeover does with it.

These run on whichever database the suite runs on: the side file on SQLite, the letter row on PostgreSQL.
"""
import datetime
import sqlite3

import pytest
from peewee import PostgresqlDatabase, SqliteDatabase

from portal.db import database, open_database
from portal.letters.marks import RowMarks, SideFileMarks, data_marks, marks_path
from portal.letters.queue import QueuePolicy, claim_due_letters, retry_letter
from portal.models import Letter, utcnow

LEASE = 60


def take_over(policy=QueuePolicy(lease=LEASE)):
    """Another worker claims what is due once the first lease has run out: (its token, its letters)."""
    return claim_due_letters(policy, now=utcnow() + datetime.timedelta(seconds=LEASE + 1))


def test_the_store_follows_the_database(tmp_path):
    assert marks_path(open_database(f"sqlite:///{tmp_path}/portal.sqlite3")) == str(tmp_path / "portal.sqlite3-marks")
    assert marks_path(open_database("sqlite:///:memory:")) is None
    assert marks_path(PostgresqlDatabase("portal")) is None


def test_a_mark_on_a_sqlite_file_never_waits_for_the_page_storing_letters(app, sending_mailbox, write_letter):
    if not isinstance(database.obj, SqliteDatabase):
        pytest.skip("PostgreSQL locks rows, not the whole database: there the mark is in the letter row")
    letter = write_letter(sending_mailbox)
    token, _ = claim_due_letters(QueuePolicy(lease=LEASE), now=utcnow())
    database.obj.lock_timeout = 0.2  # a write to the database itself gives up quickly while the page holds the lock
    page = sqlite3.connect(database.obj.database, isolation_level=None)
    page.execute("BEGIN IMMEDIATE")  # the New letter page, in the middle of storing a letter
    try:
        with data_marks() as marks:
            assert isinstance(marks, SideFileMarks)
            assert marks.mark(letter.id, token)
            assert marks.reached_data([letter.id]) == {letter.id}
        with pytest.raises(Exception, match="locked"):
            Letter.update(phase="data").where(Letter.id == letter.id).execute()
    finally:
        page.execute("ROLLBACK")
        page.close()


def test_a_worker_whose_lease_another_took_cannot_mark_and_leaves_no_mark(app, sending_mailbox, write_letter):
    letter = write_letter(sending_mailbox)
    first, _ = claim_due_letters(QueuePolicy(lease=LEASE), now=utcnow())
    second, [taken] = take_over()
    assert taken.id == letter.id and first != second

    with data_marks() as marks:
        assert not marks.mark(letter.id, first)
        assert marks.reached_data([letter.id]) == set()
        assert marks.mark(letter.id, second)  # the new holder may


def test_a_late_worker_s_refused_mark_leaves_the_holder_s_mark_in_place(app, sending_mailbox, write_letter):
    # The holder reached DATA first; the worker whose lease ran out gets there later, is refused, and takes
    # back only its own mark. Were the holder's gone too, a third worker could send the letter again.
    letter = write_letter(sending_mailbox)
    first, _ = claim_due_letters(QueuePolicy(lease=LEASE), now=utcnow())
    second, _ = take_over()

    with data_marks() as marks:
        assert marks.mark(letter.id, second)
        assert not marks.mark(letter.id, first)
        assert marks.reached_data([letter.id]) == {letter.id}


def test_a_worker_clears_only_its_own_marks(app, sending_mailbox, write_letter):
    if not isinstance(data_marks(), SideFileMarks):
        pytest.skip("on PostgreSQL the mark is the row's phase, which the outcome itself resets")
    letter = write_letter(sending_mailbox)
    first, _ = claim_due_letters(QueuePolicy(lease=LEASE), now=utcnow())
    second, _ = take_over()
    with data_marks() as marks:
        assert marks.mark(letter.id, second)
        marks.clear([(letter.id, first)])  # a slow worker tidying up after its own round
        assert marks.reached_data([letter.id]) == {letter.id}
        marks.clear([(letter.id, second)])
        assert marks.reached_data([letter.id]) == set()


def test_the_mark_behind_an_uncertain_letter_goes_with_it_so_a_retried_round_is_judged_afresh(
        sending_mailbox, write_letter, run_queue, smtp_server):
    letter = write_letter(sending_mailbox)
    token, _ = claim_due_letters(QueuePolicy(lease=LEASE), now=utcnow())
    with data_marks() as marks:  # the first worker reached its dot, then stopped
        assert marks.mark(letter.id, token)
    run_queue.later(seconds=LEASE + 1)
    run_queue()
    assert Letter.get_by_id(letter.id).state == "uncertain"
    with data_marks() as marks:
        assert marks.reached_data([letter.id]) == set()

    # Someone checked with the recipient and retries; the next worker claims it and stops before DATA.
    assert retry_letter(Letter.get_by_id(letter.id))
    claim_due_letters(QueuePolicy(lease=LEASE), now=run_queue.now())
    run_queue.later(seconds=LEASE + 1)
    run_queue()

    assert Letter.get_by_id(letter.id).state == "sent" and len(smtp_server.messages) == 1


def test_a_takeover_makes_a_marked_letter_uncertain_and_sends_the_unmarked_one_once(
        sending_mailbox, write_letter, run_queue, smtp_server):
    marked, unmarked = write_letter(sending_mailbox), write_letter(sending_mailbox, to="other@example.com")
    token, claimed = claim_due_letters(QueuePolicy(lease=LEASE), now=utcnow())
    assert {c.id for c in claimed} == {marked.id, unmarked.id}
    with data_marks() as marks:  # the first worker reached the dot of one letter, then stopped
        assert marks.mark(marked.id, token)

    run_queue.later(seconds=LEASE + 1)
    report = run_queue()

    assert report.outcomes["uncertain"] == 1 and report.outcomes["sent"] == 1
    assert Letter.get_by_id(marked.id).state == "uncertain"
    assert Letter.get_by_id(unmarked.id).state == "sent"
    assert [m.rcpt_tos for m in smtp_server.messages] == [["other@example.com"]]

    # Someone checked with the recipient and sends it again: the dead worker's mark belongs to the last
    # round and does not hold the new one back.
    assert retry_letter(Letter.get_by_id(marked.id))
    run_queue()
    assert Letter.get_by_id(marked.id).state == "sent" and len(smtp_server.messages) == 2


def test_a_letter_that_was_taken_over_twice_is_still_uncertain(sending_mailbox, write_letter, run_queue,
                                                               smtp_server):
    letter = write_letter(sending_mailbox)
    token, _ = claim_due_letters(QueuePolicy(lease=LEASE), now=utcnow())
    with data_marks() as marks:
        assert marks.mark(letter.id, token)
    take_over()  # the second worker stopped too, before it wrote anything

    run_queue.later(seconds=2 * LEASE + 2)
    run_queue()

    assert Letter.get_by_id(letter.id).state == "uncertain" and smtp_server.messages == []


def test_letters_sent_leave_no_marks_behind(sending_mailbox, write_letter, run_queue, smtp_server):
    letters = [write_letter(sending_mailbox, to=f"friend{n}@example.com") for n in range(3)]

    run_queue()

    assert len(smtp_server.messages) == 3
    with data_marks() as marks:
        assert marks.reached_data([letter.id for letter in letters]) == set()
        if isinstance(marks, RowMarks):
            assert {letter.phase for letter in Letter.select()} == {""}
        else:
            assert marks.file.execute_sql("SELECT COUNT(*) FROM letter_mark").fetchone() == (0,)
