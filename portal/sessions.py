"""Signing in, and the sessions the server keeps so that it can end them.

Each signed-in browser is one EmployeeSession row (m0020) holding a hash of a random key; the
browser's session and remember cookies carry "<employee id>:<key>". Sign-out deletes that row,
and a password change, "Sign out everywhere", an admin's "Sign out this employee" and
deactivation delete the employee's rows, so every cookie issued before stops working. No Flask
here: the views and the app's user loader call it.
"""
import datetime
import functools
import hashlib
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

from portal.db import MAX_ID, database
from portal.models import Employee, EmployeeSession, utcnow


@functools.cache
def _dummy_hash():
    """A hash made like a real one, checked for unknown e-mails so they cost as much as known ones."""
    return generate_password_hash(secrets.token_urlsafe(16), method="scrypt")


def authenticate(email, password):
    """The active employee with this e-mail and password, or None.

    A wrong password, an unknown e-mail, an employee without a password and a deactivated one all
    cost one password check, so how long a refusal takes does not tell who works here.
    """
    employee = Employee.by_email(email)
    if employee is None or not employee.password_hash:
        check_password_hash(_dummy_hash(), password or "")
        return None
    if not employee.check_password(password or "") or not employee.active:
        return None
    return employee


def _key_hash(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def open_session(employee, *, days):
    """Start a session for a browser that signed in; sets and returns `employee.session_token`.

    The token ("<id>:<key>") goes into the session and remember cookies; only its key's hash is
    stored, with the moment it stops working. Expired sessions (anyone's) are swept here.
    """
    key = secrets.token_urlsafe(32)
    now = utcnow()
    with database.atomic():
        EmployeeSession.delete().where(EmployeeSession.expires_at <= now).execute()
        EmployeeSession.create(employee=employee.id, key_hash=_key_hash(key), created_at=now,
                               expires_at=now + datetime.timedelta(days=days))
    employee.session_token = f"{employee.id}:{key}"
    return employee.session_token


def _split_token(token):
    employee_id, separator, key = (token or "").partition(":")
    if not separator or not key or len(token) > 200 or not (employee_id.isascii() and employee_id.isdigit()) \
            or int(employee_id) > MAX_ID:
        return None, None
    return int(employee_id), key


def employee_for_session(token):
    """The active employee whose live session this token names (with `session_token` set), else None."""
    employee_id, key = _split_token(token)
    if employee_id is None:
        return None
    employee = (Employee.select().join(EmployeeSession)
                .where((Employee.id == employee_id) & Employee.active & (EmployeeSession.key_hash == _key_hash(key))
                       & (EmployeeSession.expires_at > utcnow()))
                .first())
    if employee is not None:
        employee.session_token = token
    return employee


def _named_by(token):
    """The condition that finds the one session row this token names (live or expired), or None for no token."""
    employee_id, key = _split_token(token)
    if employee_id is None:
        return None
    return (EmployeeSession.employee == employee_id) & (EmployeeSession.key_hash == _key_hash(key))


def session_id(token):
    """The id of the session row this token names (live or expired), or None: what belongs to one signed-in browser
    is kept beside it."""
    condition = _named_by(token)
    row = EmployeeSession.select(EmployeeSession.id).where(condition).first() if condition is not None else None
    return row.id if row is not None else None


def end_session(token):
    """End the one session this token names (sign-out): its cookies stop working everywhere."""
    condition = _named_by(token)
    if condition is not None:
        EmployeeSession.delete().where(condition).execute()


def end_sessions(employee, *, keep=None):
    """End every session of the employee but the one `keep` names; returns how many ended."""
    query = EmployeeSession.delete().where(EmployeeSession.employee == employee.id)
    employee_id, key = _split_token(keep)
    if employee_id == employee.id:
        query = query.where(EmployeeSession.key_hash != _key_hash(key))
    return query.execute()


def open_sessions(employee):
    """How many browsers the employee is signed in on now."""
    return (EmployeeSession.select()
            .where((EmployeeSession.employee == employee.id) & (EmployeeSession.expires_at > utcnow())).count())
