"""SQLite's own locking: a writer waits busy_timeout for another connection's write lock, and gives up when it
should; a writing transaction takes the lock at its start."""
import threading
import time

import pytest
from peewee import OperationalError

from portal.db import open_database


@pytest.fixture
def two_connections(tmp_path):
    url = f"sqlite:///{tmp_path / 'locks.sqlite3'}"
    first, second = open_database(url), open_database(url)
    first.connect()
    second.connect()
    first.execute_sql("CREATE TABLE note (text TEXT)")
    yield first, second
    first.close()
    second.close()


def _another_connection_writes(db, seconds):
    """Start a thread that holds ``db``'s write lock for ``seconds``; returned once the lock is held."""
    started = threading.Event()

    def hold():
        with db.atomic("IMMEDIATE"):
            db.execute_sql("INSERT INTO note VALUES ('held')")
            started.set()
            time.sleep(seconds)

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait()
    return holder


def test_a_write_waits_while_another_connection_writes_and_then_goes_through(two_connections):
    first, second = two_connections
    holder = _another_connection_writes(first, 0.05)
    second.execute_sql("INSERT INTO note VALUES ('waited')")  # autocommit: SQLite waits until the lock is free
    holder.join()
    assert [text for (text,) in second.execute_sql("SELECT text FROM note ORDER BY rowid")] == ["held", "waited"]
    assert second.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_a_write_lock_taken_up_front_waits_too(two_connections):
    first, second = two_connections
    holder = _another_connection_writes(first, 0.05)
    with second.atomic("IMMEDIATE"):
        second.execute_sql("INSERT INTO note VALUES ('after')")
    holder.join()
    assert second.execute_sql("SELECT COUNT(*) FROM note").fetchone()[0] == 2


def test_a_lock_held_too_long_is_reported_after_the_busy_timeout(two_connections):
    first, second = two_connections
    second.execute_sql("PRAGMA busy_timeout = 50")
    holder = _another_connection_writes(first, 0.4)
    began = time.monotonic()
    with pytest.raises(OperationalError, match="locked"):
        second.execute_sql("INSERT INTO note VALUES ('late')")
    waited = time.monotonic() - began
    holder.join()
    assert waited < 0.4  # gave up at its own timeout, not when the lock came free


def test_a_transaction_that_read_before_another_wrote_fails_at_once_instead_of_waiting(two_connections):
    first, second = two_connections
    with second.atomic():
        second.execute_sql("SELECT COUNT(*) FROM note").fetchone()  # its snapshot starts here
        first.execute_sql("INSERT INTO note VALUES ('newer')")
        began = time.monotonic()
        with pytest.raises(OperationalError, match="locked"):
            second.execute_sql("INSERT INTO note VALUES ('stale')")
        assert time.monotonic() - began < 1  # waiting could not help, so it did not wait the 5 s


def test_a_writing_transaction_that_reads_first_never_fails_for_another_writer(two_connections):
    # BEGIN IMMEDIATE: the lock is taken before the read, so the write after it cannot meet a newer snapshot.
    first, second = two_connections
    holder = _another_connection_writes(first, 0.05)
    with second.atomic("IMMEDIATE"):
        count = second.execute_sql("SELECT COUNT(*) FROM note").fetchone()[0]
        second.execute_sql("INSERT INTO note VALUES (?)", (f"after {count}",))
    holder.join()
    assert [text for (text,) in second.execute_sql("SELECT text FROM note ORDER BY rowid")] == ["held", "after 1"]
