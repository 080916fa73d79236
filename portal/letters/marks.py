"""The "data" mark: written, and committed, before a letter's final dot can leave, so that a letter whose worker
stopped after that point is never sent twice (the next claim finds the mark and makes it "uncertain").

Two stores, one contract (``data_marks()`` picks):

* ``RowMarks`` (PostgreSQL, an in-memory SQLite): the letter row's ``phase`` column, set to "data" by an
  UPDATE that also checks the lease token, so mark and lease check are one atomic step.
* ``SideFileMarks`` (a SQLite file): SQLite lets one connection write at a time, and the New letter
  page storing letters holds the write lock more than half of the time it works; every sent letter's
  mark waited behind it, a fifth of a millisecond per letter. So on SQLite the marks live in a small
  file beside the database (``<database>-marks``) that only workers write: marking is one insert
  there, then a read of the letter's lease in the database.

Why the side file never lets a letter go twice. A worker A marks, then reads its lease, and sends the
dot only if the lease is still its own. Another worker B claims a letter whose lease ran out in one
statement that also sets ``phase`` to "lapsed", and only after that statement has committed does it
look for a mark. If A's read found A's lease, that read began before B's claim committed, so A's
mark, committed before the read, is there when B looks: B makes the letter "uncertain". If A's read
found B's lease, A cuts the connection before the dot and takes its own mark back (marks are keyed by
letter and token, so it cannot touch B's); B either sees A's mark (the letter is "uncertain": cautious,
never a second copy) or does not (it sends the only copy). A worker removes its own marks once the
letters' outcomes are written, and a worker that records a letter as "uncertain" because of another's
mark removes that mark with it. Nothing ever removes marks by letter alone, which a slow worker could
do after a newer holder's mark was written. So a mark stays behind only when a worker stops between
committing an outcome and clearing its mark; it is only ever read if a later round's holder also
stops before its dot, and then it makes that letter "uncertain": cautious, never a second copy.

The lease read after a mark must see the latest committed claim: it runs in autocommit on the worker's
connection, which holds no read transaction open between statements because every read on it is
fetched in full. A cursor left half-read there would keep an old snapshot and void this argument.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from peewee import SqliteDatabase

from portal.db import PortalSqliteDatabase, database, execute_direct
from portal.letters.statements import update_row_held
from portal.models import Letter

REACHED_DATA = "data"  # phase: a worker marked the letter (RowMarks) or found its mark (both), before the dot
LAPSED = "lapsed"  # phase: claimed again after a lease ran out; the marks say whether it reached the dot

MARKS_PRAGMAS = {
    "page_size": 1024,  # a mark is a dozen bytes: small pages make each commit small (only before the file exists)
    "journal_mode": "wal",
    "synchronous": "normal",  # as durable as the database itself (portal.db.SQLITE_PRAGMAS)
    "busy_timeout": 5000,
    # A checkpoint (two fsyncs) every ~5,000 letters rather than every few hundred; the WAL stays under ~10 MB.
    "wal_autocheckpoint": 10000,
    "journal_size_limit": 16 * 1024 * 1024,
}


class _Marks(ABC):
    """What a store of marks offers the queue, used as a context manager around a pass."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    @abstractmethod
    def mark(self, letter_id: int, token: str) -> bool:
        """Mark the letter as past DATA while it is under ``token``; whether it still was."""

    @abstractmethod
    def found(self, letter_ids) -> list:
        """The marks on these letters, as (letter id, token or None)."""

    @abstractmethod
    def clear(self, marks) -> None:
        """Remove exactly these (letter id, token) marks."""

    def reached_data(self, letter_ids) -> set:
        """Which of these letters carry a mark (any worker's)."""
        return {letter_id for letter_id, _ in self.found(letter_ids)}


class RowMarks(_Marks):
    """Marks in the letter row itself (``phase``)."""

    def mark(self, letter_id: int, token: str) -> bool:
        """Mark the letter as past DATA while it is under ``token``; whether it still was (else nothing is written)."""
        return update_row_held(Letter, letter_id, "lease_token", token, phase=REACHED_DATA)

    def found(self, letter_ids) -> list:
        """The marks on these letters, as (letter id, None)."""
        if not letter_ids:
            return []
        return [(letter_id, None) for (letter_id,) in Letter.select(Letter.id).where(
            Letter.id.in_(list(letter_ids)) & (Letter.phase == REACHED_DATA)).tuples()]

    def clear(self, marks) -> None:
        """Nothing to do: writing the outcome resets ``phase``."""


class SideFileMarks(_Marks):
    """Marks in their own SQLite file beside the database: one row per (letter id, lease token) that reached DATA.

    Keyed by both, so that no worker's mark can overwrite or take back another's: a worker whose lease
    ran out removes only its own. Used as a context manager around a pass: its connection opens and
    closes with it.
    """

    _files: dict = {}  # path -> its database, one per process and path (peewee gives each thread its connection)

    def __init__(self, path: str):
        self.path = path
        if path not in self._files:
            self._files[path] = PortalSqliteDatabase(path, pragmas=MARKS_PRAGMAS)
        self.file = self._files[path]

    def __enter__(self):
        self._context = self.file.connection_context()
        self._context.__enter__()
        self.file.execute_sql("CREATE TABLE IF NOT EXISTS letter_mark (letter_id INTEGER NOT NULL, "
                              "token TEXT NOT NULL, PRIMARY KEY (letter_id, token)) WITHOUT ROWID")
        return self

    def __exit__(self, *exc_info):
        return self._context.__exit__(*exc_info)

    def mark(self, letter_id: int, token: str) -> bool:
        """Mark, then read the lease; whether it is still ``token`` (if not, this worker's mark is taken back)."""
        # Two statements, in this order, each committed before the next (see the module): once per letter
        # sent, so straight on the drivers' connections.
        self.file.execute_direct("INSERT OR IGNORE INTO letter_mark (letter_id, token) VALUES (?, ?)",
                                 (letter_id, token))
        held = execute_direct(_HELD_SQL, (letter_id, token)).fetchone() is not None
        if not held:
            self.file.execute_sql("DELETE FROM letter_mark WHERE letter_id = ? AND token = ?", [letter_id, token])
        return held

    def found(self, letter_ids) -> list:
        """The marks on these letters, any worker's: (letter id, token)."""
        found = []
        for part in _parts(letter_ids):
            sql = f"SELECT letter_id, token FROM letter_mark WHERE letter_id IN ({', '.join('?' * len(part))})"
            found += self.file.execute_sql(sql, part).fetchall()
        return found

    def clear(self, marks) -> None:
        """Remove these exact marks, (letter id, token), once the letters' outcomes are written: a worker's
        own, and those it found on a letter it then recorded as "uncertain"."""
        marks = list(marks)
        if marks:
            self.file.executemany("DELETE FROM letter_mark WHERE letter_id = ? AND token = ?", marks)


_HELD_SQL = f'SELECT 1 FROM "{Letter._meta.table_name}" WHERE "id" = ? AND "{Letter.lease_token.column_name}" = ?'


def _parts(ids, size=500):
    ids = list(ids)
    return [ids[start:start + size] for start in range(0, len(ids), size)]


def marks_path(db) -> str | None:
    """The side file for a SQLite database file (None for another database, or SQLite in memory)."""
    if not isinstance(db, SqliteDatabase):
        return None
    name = str(db.database or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return str(Path(name)) + "-marks"


def data_marks() -> RowMarks | SideFileMarks:
    """The mark store for the database the proxy is bound to."""
    path = marks_path(database.obj)
    return SideFileMarks(path) if path else RowMarks()
