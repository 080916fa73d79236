"""Invitations: a signed link that lets an employee set a password, valid 7 days and usable once.

Nothing is stored: the link signs the employee's id together with a mark of their current password
hash, so setting a password through it (or any other way) retires every link issued before.
"""
import hashlib

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from portal.models import Employee

VALID_DAYS = 7
_SALT = "portal.invitation"


class InvitationInvalid(ValueError):
    """A link that cannot set a password; `reason` is "expired", "used" or "invalid"."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _serializer(secret_key):
    return URLSafeTimedSerializer(secret_key, salt=_SALT)


def _password_mark(employee):
    return hashlib.sha256((employee.password_hash or "").encode()).hexdigest()[:16]


def invitation_token(employee, secret_key):
    """The signed token for the employee's set-password link."""
    return _serializer(secret_key).dumps({"employee": employee.id, "mark": _password_mark(employee)})


def invited_employee(token, secret_key, *, max_age=VALID_DAYS * 24 * 3600):
    """The active employee a token invites; InvitationInvalid when it expired, was used or was never ours."""
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except SignatureExpired:
        raise InvitationInvalid("expired") from None
    except BadSignature:
        raise InvitationInvalid("invalid") from None
    employee = Employee.get_or_none(Employee.id == data.get("employee")) if isinstance(data, dict) else None
    if employee is None or not employee.active:
        raise InvitationInvalid("invalid")
    if data.get("mark") != _password_mark(employee):
        raise InvitationInvalid("used")
    return employee


def cannot_sign_in(query=None):
    """Active employees with no password yet (imported from CSV, say): the ones to invite."""
    query = query if query is not None else Employee.select()
    return query.where(Employee.active & (Employee.password_hash == "")).order_by(Employee.name)
