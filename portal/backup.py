"""`portal backup DEST`: what a restore needs, copied while the portal runs. No Flask here.

SQLite: an online copy through SQLite's own backup API (consistent while workers write), its
marks file if there is one, and the keys generated into the instance folder. PostgreSQL: the
keys, and the `pg_dump` command to run (with the password left out). Everything mode 0600 in
a new folder of mode 0700.
"""
import dataclasses
import os
import shutil
import sqlite3
from pathlib import Path

from portal.logs import masked_url
from portal.secret_box import INSTANCE_KEY_FILE

KEY_FILES = ("secret_key", INSTANCE_KEY_FILE)
DATABASE_FILE = "portal.sqlite3"


class BackupError(Exception):
    """A backup that could not be made; the message says why."""


@dataclasses.dataclass
class BackupReport:
    written: list
    pg_dump: str = ""  # the command to run for PostgreSQL


def _private_copy_target(dest, name):
    path = dest / name
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def backup(database_url, instance_path, dest):
    """Copy the database (SQLite) and the instance keys into the new folder `dest`; see the module."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: give a new folder")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.chmod(0o700)
    report = BackupReport(written=[])
    if database_url.startswith("sqlite"):
        source = database_url.split(":///", 1)[-1]
        if not source or source == ":memory:" or not Path(source).exists():
            raise BackupError(f"no SQLite database at {source or '(memory)'}")
        target = _private_copy_target(dest, DATABASE_FILE)
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as live, sqlite3.connect(target) as copy:
            live.backup(copy)
        live.close()
        copy.close()
        report.written.append(target)
        marks = Path(source + "-marks")
        if marks.exists():
            report.written.append(_copy(marks, dest, DATABASE_FILE + "-marks"))
    else:
        dump = dest / "portal.dump"
        # Without the password: pg_dump takes it from PGPASSWORD or ~/.pgpass, never from a command line.
        report.pg_dump = f"pg_dump --format=custom --file {dump} '{masked_url(database_url).replace(':***@', '@')}'"
    for name in KEY_FILES:
        key = Path(instance_path) / name
        if key.exists():
            report.written.append(_copy(key, dest, name))
    return report


def _copy(source, dest, name):
    target = _private_copy_target(dest, name)
    shutil.copyfile(source, target)
    return target
