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


@pytest.fixture
def postgres_url(request):
    from tests import postgres

    if not postgres.wanted():
        pytest.skip("PostgreSQL's connection pool: run with PORTAL_TEST_POSTGRES=1")
    cluster = request.getfixturevalue("postgres_cluster")
    name = cluster.new_database()
    yield cluster.url(name)
    cluster.drop_database(name)


def _backend(db):
    db.connect(reuse_if_open=True)
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    db.close()
    return pid


def test_postgresql_connections_are_pooled_and_reused_between_requests(postgres_url):
    from playhouse.pool import PooledPostgresqlDatabase

    pooled = open_database(postgres_url, pool_size=4, stale_timeout=300)
    assert isinstance(pooled, PooledPostgresqlDatabase)
    assert len({_backend(pooled) for _ in range(5)}) == 1  # one server process served every "request"
    pooled.close_all()
    unpooled = open_database(postgres_url)
    assert len({_backend(unpooled) for _ in range(3)}) == 3  # without the pool, a new connection each time


def test_the_app_pools_postgresql_with_the_configured_size_and_wait(postgres_url, tmp_path):
    from playhouse.pool import MaxConnectionsExceeded

    from portal import create_app
    from portal.db import database

    create_app({"SECRET_KEY": "x", "PORTAL_DATABASE_URL": postgres_url, "PORTAL_DATABASE_POOL_SIZE": 1,
                "PORTAL_DATABASE_POOL_WAIT": 1, "INSTANCE_PATH": str(tmp_path / "instance")})
    assert len({_backend(database.obj) for _ in range(3)}) == 1
    database.connect()
    refused = []

    def second_request():
        try:
            database.connect()
        except MaxConnectionsExceeded as error:
            refused.append(error)

    started = time.monotonic()
    other = threading.Thread(target=second_request)
    other.start()
    other.join()
    assert refused and time.monotonic() - started >= 0.9  # waited PORTAL_DATABASE_POOL_WAIT for the one connection
    database.close()
    database.obj.close_all()
