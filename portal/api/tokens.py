"""Personal API tokens: made, looked up and revoked; only a SHA-256 hash of each is ever stored.

A token is 32 random bytes, so a plain SHA-256 is enough: there is nothing to brute-force that
a slow password hash would protect. No Flask here: the views, the CLI and the tests call it.
"""
from __future__ import annotations

import datetime
import hashlib
import secrets

from flask_babel import lazy_gettext as _l

from portal.fields import CONTROL_CHARACTERS
from portal.models import ApiToken, Employee, utcnow
from portal.models.api import TOKEN_NAME_MAX

PREFIX = "ptk_"
HINT_LENGTH = len(PREFIX) + 6
# last_used_at is written at most this often per token, not on every request.
LAST_USED_EVERY = datetime.timedelta(minutes=1)


class TokenInvalid(ValueError):
    """A token name that cannot be used; ``field`` names the form field."""

    def __init__(self, field, message):
        super().__init__(str(message))
        self.field = field
        self.message = message


class TokenNotFound(LookupError):
    """No such token, or one the employee may not see: the two are told apart by nobody."""


def hash_token(token):
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def clean_name(name):
    """A token name: one line, not blank, at most 100 characters."""
    name = " ".join((name or "").split(" ")).strip()
    if CONTROL_CHARACTERS.search(name):
        raise TokenInvalid("name", _l("Use a single line without control characters."))
    if not name:
        raise TokenInvalid("name", _l("Name the token after the system that will use it."))
    if len(name) > TOKEN_NAME_MAX:
        raise TokenInvalid("name", _l("At most %(max)d characters.", max=TOKEN_NAME_MAX))
    return name


def create_token(owner, name, *, actor=None):
    """Make a token for ``owner``; returns (ApiToken, the token) — the only time the token exists in clear."""
    name = clean_name(name)
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.create(owner=owner.id, name=name, token_hash=hash_token(token), hint=token[:HINT_LENGTH],
                          created_by=actor.id if actor is not None else None)
    return row, token


def authenticate(token, *, now=None):
    """The live token for this bearer value (not revoked, owner active), with its owner loaded; else None."""
    if not token or not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = (ApiToken.select(ApiToken, Employee).join(Employee, on=(ApiToken.owner == Employee.id))
           .where(ApiToken.token_hash == hash_token(token)).first())
    if row is None or row.revoked or not row.owner.active:
        return None
    now = now or utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        row.last_used_at = now
        ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
    return row


def tokens_of(owner):
    """An employee's tokens: live ones first, newest first."""
    return list(ApiToken.select().where(ApiToken.owner == owner.id)
                .order_by(ApiToken.revoked_at.is_null(False), ApiToken.created_at.desc(), ApiToken.id.desc()))


def every_token():
    """Every employee's tokens with their owners, for admins: live ones first, newest first."""
    return (ApiToken.select(ApiToken, Employee).join(Employee, on=(ApiToken.owner == Employee.id))
            .order_by(ApiToken.revoked_at.is_null(False), ApiToken.created_at.desc(), ApiToken.id.desc()))


def token_for(actor, token_id):
    """The token with this id if it is the actor's own or the actor is an admin; else TokenNotFound."""
    try:
        row = ApiToken.get_by_id(int(token_id))
    except (ApiToken.DoesNotExist, TypeError, ValueError):
        raise TokenNotFound(token_id) from None
    if not (actor.is_admin or row.owner_id == actor.id):
        raise TokenNotFound(token_id)
    return row


def revoke_token(row, *, actor):
    """Revoke a token at once (its next request gets 401); False if it already was."""
    if not (actor.is_admin or row.owner_id == actor.id):
        raise TokenNotFound(row.id)
    if row.revoked:
        return False
    row.revoked_at = utcnow()
    row.revoked_by = actor.id
    ApiToken.update(revoked_at=row.revoked_at, revoked_by=actor.id).where(
        (ApiToken.id == row.id) & ApiToken.revoked_at.is_null()).execute()
    return True
