"""The database: one proxy bound in the app factory, a connection per request, and `init-db`."""
import random
import sqlite3
import time
from pathlib import Path

import click
import peewee
from flask import current_app
from flask.cli import with_appcontext
from peewee import DatabaseProxy, OperationalError, SqliteDatabase
from playhouse.db_url import connect, parse

from portal.logs import masked_url

database = DatabaseProxy()

# The largest id either database stores; a larger number names nothing (and would overflow SQLite).
MAX_ID = 2**63 - 1


def whole_number(value):
    """A whole number from 0 up to MAX_ID, else ValueError: the `type=` for ids and pages in query strings."""
    number = int(value)
    if not 0 <= number <= MAX_ID:
        raise ValueError(f"{value!r} is out of range")
    return number


SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 5000,
    "synchronous": "normal",
    "wal_autocheckpoint": 10000,
    "journal_size_limit": 64 * 1024 * 1024,
}


class PortalSqliteDatabase(SqliteDatabase):
    """SQLite that waits for another connection's lock in steps of a tenth of a millisecond.

    Only one connection writes at a time. SQLite's own busy handler sleeps a whole millisecond
    and more before it looks again, for a lock that a letter's commit holds a fraction of that:
    with the New letter page storing letters while the worker marks each one it sends, a quarter
    of the worker's marks slept, half a second per thousand letters. So SQLite's handler is off
    (busy_timeout 0) and a statement refused with SQLITE_BUSY is run again here, every tenth of
    a millisecond for the first 2 ms, then less and less often (up to every 2 ms, so that a long
    writer does not keep its waiters spinning), for as long as busy_timeout asked (``lock_timeout``).
    SQLITE_BUSY_SNAPSHOT (a transaction that read before another one wrote) is raised at once:
    waiting cannot help it, as SQLite's handler would not either.
    """

    WAIT_STEP = 0.0001  # the wait while the lock has been held less than WAIT_MAX; then half as long again each
    # time, up to WAIT_MAX
    WAIT_MAX = 0.002
    _WAITS = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_RECOVERY)

    def __init__(self, database, *args, pragmas=(), **kwargs):
        pragmas = dict(pragmas)
        self.lock_timeout = int(pragmas.get("busy_timeout", 5000)) / 1000
        super().__init__(database, *args, pragmas={**pragmas, "busy_timeout": 0}, **kwargs)

    def _held_elsewhere(self, error):
        """Whether this error is SQLite's "another connection holds the lock" (worth waiting for)."""
        refused = error.__context__ if error.__context__ is not None else (error.args or [None])[0]
        return getattr(refused, "sqlite_errorcode", None) in self._WAITS

    def waiting_for_locks(self, run, *, refused_at=None):
        """``run()``, run again while another connection holds the lock it needs (see the class); ``refused_at``
        is when a first try of it was refused, if one was."""
        started, step = refused_at, self.WAIT_STEP
        while True:
            if started is not None:
                time.sleep(step * random.uniform(0.5, 1.5))
                if time.monotonic() - started >= self.WAIT_MAX:  # a short hold (a commit): small steps
                    step = min(step * 1.5, self.WAIT_MAX)
            try:
                return run()
            except OperationalError as error:
                if not self._held_elsewhere(error):
                    raise
                now = time.monotonic()
                started = started or now
                if now - started >= self.lock_timeout:
                    raise

    def running_first(self, run):
        """``run()`` straight away, as nearly always nobody else is writing; only if another connection holds the
        lock does it go round ``waiting_for_locks``."""
        try:
            return run()
        except OperationalError as error:
            if not self._held_elsewhere(error):
                raise
            refused_at = time.monotonic()
        return self.waiting_for_locks(run, refused_at=refused_at)

    def _execute_cursor(self, sql, params, **cursor_options):
        execute = super()._execute_cursor
        return self.running_first(lambda: execute(sql, params, **cursor_options))

    def execute_direct(self, sql, params):
        """One statement straight on the driver's connection, skipping peewee's per-statement work (a third of
        a short statement's cost), waiting for locks like every other statement: for a worker's per-letter
        statements."""
        connection = self.connection()

        def run():
            with peewee.__exception_wrapper__:  # peewee's own error classes, as execute_sql raises
                return connection.execute(sql, params)

        return self.running_first(run)

    def executemany(self, sql, rows):
        """One prepared statement for many rows, waiting for locks as every other statement does."""
        def run():
            with peewee.__exception_wrapper__:
                return self.cursor().executemany(sql, rows)

        return self.running_first(run)

    def begin(self, lock_type=None):
        """BEGIN, through the waiting above (IMMEDIATE takes the write lock, and may have to wait for it)."""
        self.execute_sql(f"BEGIN {lock_type}" if lock_type else "BEGIN")


def writing():
    """A transaction that writes: on SQLite it takes the write lock at its start (BEGIN IMMEDIATE), so no
    statement inside waits, nor fails because another connection wrote after this one read.

    Inside another transaction it is a savepoint, as ``atomic()`` is; on PostgreSQL it is ``atomic()``.
    """
    if isinstance(database.obj, SqliteDatabase):
        return database.atomic("IMMEDIATE")
    return database.atomic()


def execute_many(sql, rows):
    """``cursor.executemany`` on the bound database, waiting for SQLite's locks like any other statement."""
    if isinstance(database.obj, PortalSqliteDatabase):
        return database.obj.executemany(sql, rows)
    return database.cursor().executemany(sql, rows)


def execute_direct(sql, params):
    """One statement on the bound database, straight on the driver where it is the portal's SQLite (see
    ``PortalSqliteDatabase.execute_direct``), else through peewee."""
    if isinstance(database.obj, PortalSqliteDatabase):
        return database.obj.execute_direct(sql, params)
    return database.execute_sql(sql, params)


class StatementCounter:
    """Counts the SQL statements a database runs through peewee while the counter is in use.

    For the tests and benchmarks that hold pages and rules to a fixed number of queries:
    ``with StatementCounter() as counted: ...; counted.count``. The bound database by default.
    """

    def __init__(self, db=None):
        self.db = db
        self.count = 0

    def __enter__(self):
        self.db = self.db if self.db is not None else database.obj
        original = self._original = self.db.execute_sql

        def counting(sql, params=None, *args, **kwargs):
            self.count += 1
            return original(sql, params, *args, **kwargs)

        self.db.execute_sql = counting
        return self

    def __exit__(self, *exc_info):
        self.db.execute_sql = self._original


def open_database(url):
    """Open the database a URL names: sqlite:///… (WAL, foreign keys) or postgresql://…."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).touch(mode=0o600)  # before SQLite makes it: its -wal and -shm files take its mode
        if url.split(":", 1)[0] != "sqlite":  # sqliteext://, sqlite+pool://: playhouse's own classes
            return connect(url, pragmas=SQLITE_PRAGMAS)
        return PortalSqliteDatabase(**parse(url), pragmas=SQLITE_PRAGMAS)
    return connect(url)


def database_url(app):
    """The configured database URL, defaulting to a SQLite file in the instance folder."""
    url = app.config.get("PORTAL_DATABASE_URL")
    if not url:
        url = "sqlite:///" + str(Path(app.instance_path) / "portal.sqlite3")
    return url


def init_app(app):
    """Bind the proxy to the configured database and open/close it around each request."""
    database.initialize(open_database(database_url(app)))
    app.before_request(_connect)
    app.teardown_appcontext(_close)
    app.cli.add_command(init_db_command)


def _connect():
    database.connect(reuse_if_open=True)


def _close(exc):
    if not database.is_closed():
        database.close()


def upgrade():
    """Create the schema or bring it up to the newest migration; returns the migrations applied."""
    from portal.migrations import upgrade as run_migrations

    with database.connection_context():
        return run_migrations(database.obj)


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database or upgrade it to the newest schema."""
    applied = upgrade()
    if applied:
        click.echo("Applied migrations: " + ", ".join(applied))
    click.echo("Database is up to date: " + masked_url(database_url(current_app)))
