"""The database: one proxy bound in the app factory, a connection per request, and `init-db`."""
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from peewee import DatabaseProxy, SqliteDatabase
from playhouse.db_url import connect, parse
from playhouse.pool import PooledPostgresqlDatabase

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


# SQLite's own locking: a writer waits up to busy_timeout ms for another's lock, and writers take the lock at the
# start of their transaction (BEGIN IMMEDIATE, see ``writing``), so none fails half-way for having read first.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 5000,
    "synchronous": "normal",
    "wal_autocheckpoint": 10000,
    "journal_size_limit": 64 * 1024 * 1024,
}


def writing():
    """A transaction that writes: on SQLite it takes the write lock at its start (BEGIN IMMEDIATE), so no
    statement inside waits, nor fails because another connection wrote after this one read.

    Inside another transaction it is a savepoint, as ``atomic()`` is; on PostgreSQL it is ``atomic()``.
    """
    if isinstance(database.obj, SqliteDatabase):
        return database.atomic("IMMEDIATE")
    return database.atomic()


def locked(query):
    """``query`` taking row locks (FOR UPDATE) where the database has them: on PostgreSQL a row read to be rewritten
    is not changed by another transaction meanwhile. On SQLite, ``writing()`` already holds the only write lock."""
    return query.for_update() if database.for_update else query


class StatementCounter:
    """Counts the SQL statements a database runs through peewee while the counter is in use.

    For the tests and benchmarks that hold pages and rules to a fixed number of queries:
    ``with StatementCounter() as counted: ...; counted.count``, the SQL itself in ``counted.statements``. The bound
    database by default.
    """

    def __init__(self, db=None):
        self.db = db
        self.count = 0
        self.statements = []

    def __enter__(self):
        self.db = self.db if self.db is not None else database.obj
        original = self._original = self.db.execute_sql

        def counting(sql, params=None, *args, **kwargs):
            self.count += 1
            self.statements.append(sql)
            return original(sql, params, *args, **kwargs)

        self.db.execute_sql = counting
        return self

    def __exit__(self, *exc_info):
        self.db.execute_sql = self._original


def open_database(url, *, pool_size=0, stale_timeout=300, pool_wait=10):
    """Open the database a URL names: sqlite:///… (WAL, foreign keys) or postgresql://….

    With a `pool_size`, PostgreSQL's connections are kept in peewee's pool (up to that many per process, each
    closed after `stale_timeout` seconds, a request waiting up to `pool_wait` seconds for a free one) instead of
    one new connection per request: connecting cost about 9 ms of a 44 ms ``POST /letters``. SQLite opens a
    file, which costs nothing to pool.
    """
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).touch(mode=0o600)  # before SQLite makes it: its -wal and -shm files take its mode
        if url.split(":", 1)[0] != "sqlite":  # sqliteext://, sqlite+pool://: playhouse's own classes
            return connect(url, pragmas=SQLITE_PRAGMAS)
        return SqliteDatabase(**parse(url), pragmas=SQLITE_PRAGMAS)
    if pool_size and url.split(":", 1)[0] in ("postgres", "postgresql"):
        return PooledPostgresqlDatabase(**parse(url), max_connections=pool_size, stale_timeout=stale_timeout,
                                        timeout=pool_wait)
    return connect(url)


def database_url(app):
    """The configured database URL, defaulting to a SQLite file in the instance folder."""
    url = app.config.get("PORTAL_DATABASE_URL")
    if not url:
        url = "sqlite:///" + str(Path(app.instance_path) / "portal.sqlite3")
    return url


def init_app(app):
    """Bind the proxy to the configured database and open/close it around each request."""
    database.initialize(open_database(database_url(app), pool_size=app.config["PORTAL_DATABASE_POOL_SIZE"],
                                      stale_timeout=app.config["PORTAL_DATABASE_POOL_STALE"],
                                      pool_wait=app.config["PORTAL_DATABASE_POOL_WAIT"]))
    app.before_request(_connect)
    app.teardown_appcontext(_close)


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
