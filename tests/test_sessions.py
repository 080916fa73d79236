"""Signing in and the sessions the server keeps, without pages."""
import datetime

import pytest

from portal.models import EmployeeSession, utcnow
from portal.people import set_employee_active
from portal.sessions import (authenticate, employee_for_session, end_session, end_sessions, open_session,
                             open_sessions)
from tests.conftest import PASSWORD


def test_authenticate_finds_only_an_active_employee_with_the_right_password(make_employee):
    erik = make_employee(email="erik@example.com")
    make_employee(email="sleeper@example.com", active=False)
    nopass = make_employee(email="nopass@example.com")
    nopass.password_hash = ""
    nopass.save()
    assert authenticate(" ERIK@example.com ", PASSWORD).id == erik.id
    for email, password in [("erik@example.com", "wrong"), ("nobody@example.com", PASSWORD),
                            ("sleeper@example.com", PASSWORD), ("nopass@example.com", ""), ("", "")]:
        assert authenticate(email, password) is None, email


def test_a_session_token_names_its_employee_until_it_ends(make_employee):
    erik = make_employee()
    token = open_session(erik, days=14)
    assert token.startswith(f"{erik.id}:") and erik.get_id() == token
    loaded = employee_for_session(token)
    assert loaded.id == erik.id and loaded.get_id() == token
    assert EmployeeSession.get().key_hash not in token  # only a hash of the key is stored
    end_session(token)
    assert employee_for_session(token) is None


@pytest.mark.parametrize("token", ["", "5", "x:y", ":abc", "1:", "1:" + "a" * 300, None, "9" * 30 + ":key", "١:key"])
def test_malformed_tokens_name_nobody(make_employee, token):
    make_employee()
    assert employee_for_session(token) is None


def test_a_token_with_another_employees_id_names_nobody(make_employee):
    erik, olga = make_employee(), make_employee()
    key = open_session(erik, days=14).split(":", 1)[1]
    assert employee_for_session(f"{olga.id}:{key}") is None


def test_sessions_expire_after_their_days(make_employee):
    erik = make_employee()
    token = open_session(erik, days=2)
    row = EmployeeSession.get()
    assert datetime.timedelta(days=2) - (row.expires_at - utcnow()) < datetime.timedelta(minutes=1)
    row.expires_at = utcnow() - datetime.timedelta(seconds=1)
    row.save()
    assert employee_for_session(token) is None and open_sessions(erik) == 0


def test_ending_every_session_but_one(make_employee):
    erik, olga = make_employee(), make_employee()
    kept, other = open_session(erik, days=1), open_session(erik, days=1)
    theirs = open_session(olga, days=1)
    assert end_sessions(erik, keep=kept) == 1
    assert employee_for_session(kept) and employee_for_session(other) is None and employee_for_session(theirs)
    assert end_sessions(erik, keep=theirs) == 1  # another employee's token keeps nothing of erik's
    assert open_sessions(erik) == 0 and open_sessions(olga) == 1


def test_deactivation_ends_sessions_and_reactivation_brings_none_back(make_employee):
    erik = make_employee()
    token = open_session(erik, days=1)
    set_employee_active(erik, False)
    assert employee_for_session(token) is None
    set_employee_active(erik, True)
    assert employee_for_session(token) is None and open_sessions(erik) == 0
