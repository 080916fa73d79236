"""Employees and projects: who may send, and what a mailbox can be tied to."""
from flask_login import UserMixin
from peewee import (SQL, BooleanField, CharField, DateTimeField, ForeignKeyField, PostgresqlDatabase, SqliteDatabase,
                    TextField, fn)
from werkzeug.security import check_password_hash, generate_password_hash

from portal.db import database
from portal.models.base import BaseModel, utcnow

ROLES = ("employee", "admin")
LANGUAGES = ("en", "ru")
FIELD_MAX = 255


def normalize_email(address):
    """The form an e-mail is stored and compared in: trimmed, lower case."""
    return (address or "").strip().lower()


TRIGRAM = 3  # the shortest text the trigram index can look up; shorter ones scan
FEW = 1000  # up to this many matches the index beats scanning every employee


_MATCHING = "SELECT rowid FROM employee_search WHERE employee_search MATCH ?"


# How many employees the index finds, counting no further than FEW + 1; and, only when that is too
# many for the index to pay and the caller wants it, how many a scan finds. SQLite evaluates the
# CASE's subquery only on the branch taken.
_DECIDING = (f"WITH indexed(found) AS (SELECT COUNT(*) FROM ({_MATCHING} LIMIT ?)) "
             "SELECT found, CASE WHEN found > ? THEN "
             "(SELECT COUNT(*) FROM employee WHERE instr(search_text, ?) > 0) END FROM indexed")


def _index_or_scan(phrase, text, count_scan):
    """(employees the index finds, capped at FEW + 1; the scan's total if counted, else None): one query."""
    return database.execute_sql(_DECIDING, (phrase, FEW + 1, FEW if count_scan else FEW + 1, text)).fetchone()


def substring_position(column, text):
    """Case-sensitive substring test: cheaper than LIKE on an already case-folded column."""
    function = fn.STRPOS if isinstance(database.obj, PostgresqlDatabase) else fn.INSTR
    return function(column, text)


def search_text_of(name, email, department):
    """What live search looks in: the fields joined and case-folded (Unicode-aware)."""
    return "\n".join(part or "" for part in (name, email, department)).casefold()


class Employee(UserMixin, BaseModel):
    name = CharField(max_length=FIELD_MAX)
    email = CharField(max_length=FIELD_MAX, unique=True)
    position = CharField(max_length=FIELD_MAX, default="")
    department = CharField(max_length=FIELD_MAX, default="", index=True)
    role = CharField(max_length=16, default="employee")
    active = BooleanField(default=True)
    language = CharField(max_length=8, null=True)
    password_hash = CharField(max_length=FIELD_MAX, default="")
    search_text = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    @property
    def is_admin(self):
        return self.role == "admin"

    @property
    def is_active(self):
        return self.active

    # The signed-in browser's session token ("<id>:<key>"), set when a session is opened or loaded;
    # Flask-Login keeps it in the session cookie and the remember cookie instead of the bare id.
    session_token = None

    def get_id(self):
        return self.session_token

    def set_password(self, password):
        """Store a scrypt hash of the password, never the password."""
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password):
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def save(self, *args, **kwargs):
        self.email = normalize_email(self.email)
        self.search_text = search_text_of(self.name, self.email, self.department)
        self.updated_at = utcnow()
        return super().save(*args, **kwargs)

    @classmethod
    def by_email(cls, address):
        """The employee with this e-mail, compared case-insensitively, or None."""
        return cls.get_or_none(cls.email == normalize_email(address))

    @classmethod
    def search(cls, text="", *columns):
        """Employees whose name, e-mail or department contains the text, in any letter case.

        `search_text` holds those fields case-folded in Python, so Cyrillic matches regardless
        of case on SQLite too (its LIKE and LOWER fold only ASCII), and no row is lowered per query.
        """
        return cls._search(text, columns, count=False)[0]

    @classmethod
    def search_counted(cls, text="", *columns):
        """(search()'s query, how many employees it finds if that is known already, else None).

        On SQLite the query that chooses between the index and a scan also counts what the chosen
        one finds, so a pager need not count again: two queries for a page, whichever way.
        """
        return cls._search(text, columns, count=True)

    @classmethod
    def _search(cls, text, columns, *, count):
        query = cls.select(*columns).order_by(fn.LOWER(cls.name), cls.id)
        text = (text or "").strip().casefold()
        total = None
        if len(text) >= TRIGRAM and isinstance(database.obj, SqliteDatabase):
            phrase = '"' + text.replace('"', '""') + '"'  # an FTS5 phrase query means "contains this text"
            found, scanned = _index_or_scan(phrase, text, count)
            if found <= FEW:
                # The trigram index finds the few rows (migration m0012); no other row is read.
                return query.where(cls.id.in_(SQL(f"({_MATCHING})", [phrase]))), found
            total = scanned
        if text:
            # Most rows match (or no index): one pass over the narrow name-order index is cheaper.
            query = query.where(substring_position(cls.search_text, text) > 0)
        return query, total

    @classmethod
    def departments(cls):
        """Every department named on some employee, sorted."""
        rows = cls.select(cls.department).where(cls.department != "").distinct()
        return sorted({row.department for row in rows}, key=str.lower)

    def __str__(self):
        return f"{self.name} <{self.email}>"


class EmployeeSession(BaseModel):
    """One signed-in browser: the hash of its key, whose it is, and until when it may last (m0020)."""
    employee = ForeignKeyField(Employee, backref="sessions", on_delete="CASCADE")
    key_hash = CharField(max_length=64, unique=True)
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(index=True)


class Project(BaseModel):
    name = CharField(max_length=FIELD_MAX, unique=True)
    archived = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)

    @classmethod
    def active_projects(cls):
        return cls.select().where(cls.archived == False).order_by(fn.LOWER(cls.name))  # noqa: E712

    @classmethod
    def by_name(cls, name):
        """The project with this name, compared case-insensitively, or None."""
        return cls.get_or_none(fn.LOWER(cls.name) == (name or "").strip().lower())

    def __str__(self):
        return self.name
