"""One store of "data" marks on both databases: the letter row's ``phase``. The marks a SQLite portal kept in a
side file (``<database>-marks``) are folded into the rows, and the file goes.

A mark said that a worker reached a letter's final dot; the letter was then "sending" under a lease. Any
mark on a letter still "sending" becomes ``phase = 'data'`` (its next claim makes it "uncertain", never
a second copy, as the side file's reader did); marks on letters whose outcome was written are leftovers.
The phase "lapsed" (a takeover waiting for that lookup) is no longer written.
"""
import os
import sqlite3

from peewee import SqliteDatabase


def upgrade(db, migrator):
    marked = set()
    path = _marks_file(db)
    if path and os.path.exists(path):
        with sqlite3.connect(path) as marks:
            found = marks.execute("SELECT name FROM sqlite_master WHERE name = 'letter_mark'").fetchone()
            if found:
                marked = {letter_id for (letter_id,) in marks.execute("SELECT DISTINCT letter_id FROM letter_mark")}
    sending = [letter_id for (letter_id,) in db.execute_sql("SELECT id FROM letter WHERE state = 'sending'")]
    for letter_id in sending:
        if letter_id in marked:
            db.execute_sql("UPDATE letter SET phase = 'data' WHERE id = " + db.param, (letter_id,))
    db.execute_sql("UPDATE letter SET phase = '' WHERE phase = 'lapsed'")
    if path:
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)


def _marks_file(db):
    if not isinstance(db, SqliteDatabase):
        return None
    name = str(db.database or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return name + "-marks"
