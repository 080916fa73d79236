"""A trip to a provider's page and back, as the mailboxes' consent (portal/oauth/flows.py) and single sign-on
(portal/sso.py) both make it: a row on the server that the callback finds again by its state, only for a state this
browser's session was given, used once, refused when older than FLOW_MAX_AGE. The browser keeps the states alone.
No Flask: the views keep the list of states in the session."""
from __future__ import annotations

import datetime

from portal.db import locked, writing
from portal.secret_box import SecretError

FLOW_MAX_AGE = datetime.timedelta(minutes=10)  # signing in takes a minute; an older state is refused
KEPT_FOR = datetime.timedelta(days=1)  # finished and abandoned trips are removed after this
STATES_KEPT = 5  # the browser's last few states: a few tabs started at once all come back


class FlowRefused(Exception):
    """The callback cannot be trusted: ``reason`` is "foreign" (not a state this browser was given, or none at
    all), "replayed" or "expired"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def remember_state(states, state: str) -> list:
    """The browser's states with this new one last, the oldest dropped beyond STATES_KEPT."""
    return [kept for kept in (states or ()) if kept != state][-(STATES_KEPT - 1):] + [state]


def take(model, state: str, session_states, now, where=None):
    """The trip (a row of ``model``) this state names, marked used; FlowRefused when it is not this browser's, was
    used before or is too old. ``where``: a condition the row must meet too (whose trip it is)."""
    # A state this browser was not given gets the same answer as one that never existed, so the callback never
    # tells whether someone else's trip was used.
    trip = None
    if state and state in set(session_states or ()):
        condition = model.state == state
        trip = model.get_or_none(condition if where is None else condition & where)
    if trip is None:
        raise FlowRefused("foreign")
    if trip.used_at is not None:
        raise FlowRefused("replayed")
    if now - trip.created_at > FLOW_MAX_AGE:
        raise FlowRefused("expired")
    with writing():  # used once, even by two callbacks racing with the same state
        if not model.update(used_at=now).where((model.id == trip.id) & model.used_at.is_null()).execute():
            raise FlowRefused("replayed")
    trip.used_at = now
    return trip


def verifier(trip) -> str:
    """The trip's PKCE verifier; FlowRefused("expired") when no configured key opens it: the trip was started under
    a key removed since, without rotate-secrets, and is as good as expired."""
    try:
        return trip.secret("code_verifier")
    except SecretError:
        raise FlowRefused("expired") from None


def rotate_verifiers(model, box, now) -> tuple[int, int]:
    """Re-encrypt with the newest key the verifiers of the trips still under way, so the old key may go while
    someone is at the provider's page; (re-encrypted, unreadable). One no key opens is left as it is: its
    callback is refused as expired."""
    rotated = unreadable = 0
    with writing():
        for trip in locked(model.select().where(model.used_at.is_null() & (model.created_at >= now - FLOW_MAX_AGE))):
            try:
                verifier = box.rotate(trip.code_verifier, trip.secret_context)
            except SecretError:
                unreadable += 1
                continue
            model.update(code_verifier=verifier).where(model.id == trip.id).execute()
            rotated += 1
    return rotated, unreadable


def sweep(model, now) -> None:
    """Remove the trips started more than KEPT_FOR ago (call it inside the transaction that starts a new one)."""
    model.delete().where(model.created_at < now - KEPT_FOR).execute()
