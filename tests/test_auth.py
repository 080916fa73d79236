"""Signing in and out, and sessions the server can end."""
import datetime
import statistics
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from portal.models import EmployeeSession, utcnow
from tests.conftest import PASSWORD, page_text


def test_sign_in_page_has_labelled_fields(client):
    response = client.get("/sign-in")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<label for="email">' in html and '<label for="password">' in html


def test_sign_in_and_out(client, auth, employee):
    response = auth.login(employee)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Erik Employee" in page_text(client.get("/"))
    assert auth.logout().status_code == 302
    assert client.get("/").status_code == 302  # back to sign-in


def test_email_is_compared_case_insensitively(client, auth, employee):
    assert auth.login("  ERIK@Example.COM ").status_code == 302


def test_wrong_password_re_renders_with_message(client, auth, employee):
    response = auth.login(employee, password="wrong")
    assert response.status_code == 200
    assert "The e-mail or password is wrong" in page_text(response)
    assert PASSWORD not in response.get_data(as_text=True)


def test_deactivated_employee_cannot_sign_in(client, auth, make_employee):
    sleeper = make_employee(active=False)
    assert auth.login(sleeper).status_code == 200
    assert client.get("/").status_code == 302


def test_deactivated_employee_loses_open_session(client, auth, employee):
    auth.login(employee)
    employee.active = False
    employee.save()
    assert client.get("/").status_code == 302


def test_sign_in_starts_a_new_session(client, auth, employee):
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    auth.login(employee)
    with client.session_transaction() as session:
        assert "planted" not in session


def test_next_parameter_only_goes_to_this_site(client, employee):
    response = client.post("/sign-in?next=//evil.example.com/", data={"email": employee.email, "password": PASSWORD})
    assert response.headers["Location"] == "/"


def test_sign_out_needs_post_with_csrf(client, auth, employee):
    auth.login(employee)
    assert client.get("/sign-out").status_code == 405
    assert client.post("/sign-out", csrf=False).status_code == 400
    assert client.get("/").status_code == 200


@pytest.fixture
def limited_config(config):
    config.update(RATELIMIT_ENABLED=True, PORTAL_SIGNIN_RATE_LIMIT="3 per minute")
    return config


def test_repeated_failed_sign_ins_are_slowed(limited_config, client, auth, employee):
    for _ in range(3):
        assert auth.login(employee, password="wrong").status_code == 200
    response = auth.login(employee)
    assert response.status_code == 429
    assert "Too many attempts" in page_text(response)


def test_htmx_request_without_session_redirects_the_whole_page(client):
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/sign-in?next=")
    assert response.get_data(as_text=True) == ""  # nothing for htmx to swap into a fragment


def test_page_without_session_redirects_with_next(client):
    response = client.get("/?x=1")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/sign-in" and parse_qs(location.query)["next"] == ["/?x=1"]


def test_remember_me_keeps_the_employee_signed_in_after_the_browser_closes(client, employee):
    client.post("/sign-in", data={"email": employee.email, "password": PASSWORD, "remember": "y"})
    client.delete_cookie("portal_session")  # the browser closed: only the remember cookie is left
    for _ in range(3):  # not just the first page: every page after it too
        response = client.get("/")
        assert response.status_code == 200 and "Erik Employee" in page_text(response)
    assert client.get_cookie("remember_token") is not None


def test_a_session_restored_by_remember_me_is_bound_to_the_browser_that_restored_it(app, client, employee):
    client.post("/sign-in", data={"email": employee.email, "password": PASSWORD, "remember": "y"})
    client.delete_cookie("portal_session")
    assert client.get("/").status_code == 200  # restored from the remember cookie
    restored = client.get_cookie("portal_session").value
    thief = app.test_client()  # the restored session cookie alone, from another browser
    thief.set_cookie("portal_session", restored)
    assert thief.get("/", headers={"User-Agent": "Other browser/1.0"}).status_code == 302


def test_a_session_carried_to_another_browser_is_signed_out(client, auth, employee):
    auth.login(employee)
    assert client.get("/", headers={"User-Agent": "Other browser/1.0"}).status_code == 302
    assert client.get("/").status_code == 302  # and it stays signed out in the first browser too


def test_a_request_that_changes_nothing_leaves_the_cookies_alone(client, employee):
    # A browser sends pages, styles and the favicon side by side. If each answer rewrote the session
    # cookie, an answer to a request sent before "change language" or "sign in" could land after it
    # and undo it.
    client.get("/sign-in")
    for path in ("/sign-in", "/static/css/portal.css", "/favicon.ico"):
        assert client.get(path).headers.getlist("Set-Cookie") == [], path
    client.post("/language", data={"language": "ru"})
    assert client.get("/static/css/portal.css").headers.getlist("Set-Cookie") == []
    assert 'lang="ru"' in client.get("/sign-in").get_data(as_text=True)


def _copy_of(app, client, *names):
    """Another browser holding copies of this browser's cookies (as a thief would)."""
    other = app.test_client()
    for name in names:
        cookie = client.get_cookie(name)
        if cookie is not None:
            other.set_cookie(name, cookie.value)
    return other


def test_sign_out_with_remember_me_signs_out(client, auth, employee):
    client.post("/sign-in", data={"email": employee.email, "password": PASSWORD, "remember": "y"})
    assert client.get_cookie("remember_token") is not None
    auth.logout()
    assert client.get_cookie("remember_token") is None  # deleted by the sign-out's answer
    assert client.get("/").status_code == 302
    client.delete_cookie("portal_session")  # the browser closed
    assert client.get("/").status_code == 302


def test_a_copied_remember_cookie_stops_working_after_sign_out(app, client, auth, employee):
    client.post("/sign-in", data={"email": employee.email, "password": PASSWORD, "remember": "y"})
    copy = _copy_of(app, client, "remember_token")
    auth.logout()
    assert copy.get("/").status_code == 302


def test_a_copied_session_cookie_stops_working_after_sign_out(app, client, auth, employee):
    auth.login(employee)
    copy = _copy_of(app, client, "portal_session")
    assert copy.get("/").status_code == 200  # the copy works while the session lasts
    auth.logout()
    assert copy.get("/").status_code == 302


def test_signing_out_in_one_browser_leaves_the_others_signed_in(app, client, auth, employee):
    other = app.test_client()
    other.post("/sign-in", data={"email": employee.email, "password": PASSWORD})
    auth.login(employee)
    auth.logout()
    assert other.get("/").status_code == 200


@pytest.fixture
def three_days_config(config):
    config["PORTAL_REMEMBER_DAYS"] = 3
    return config


def test_remember_me_lasts_the_configured_days(three_days_config, client, employee):
    client.post("/sign-in", data={"email": employee.email, "password": PASSWORD, "remember": "y"})
    cookie = client.get_cookie("remember_token")
    lifetime = cookie.expires - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(days=2, hours=23) < lifetime <= datetime.timedelta(days=3)
    session = EmployeeSession.get(EmployeeSession.employee == employee.id)
    # The server holds the same limit: a remember cookie kept past it (or copied) signs nobody in.
    session.expires_at = utcnow() - datetime.timedelta(seconds=1)
    session.save()
    client.delete_cookie("portal_session")
    assert client.get("/").status_code == 302


def test_the_remember_days_default_to_fourteen(app):
    assert app.config["PORTAL_REMEMBER_DAYS"] == 14
    assert app.config["REMEMBER_COOKIE_DURATION"] == datetime.timedelta(days=14)


def test_sign_in_costs_the_same_for_an_unknown_e_mail(client, employee):
    """Refusals for a real account and for an unknown e-mail take the same time (medians within 20%)."""
    def attempt(email):
        started = time.perf_counter()
        response = client.post("/sign-in", data={"email": email, "password": "not the password"})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        return elapsed

    attempt("nobody@example.com")  # warm up: the dummy hash is made once
    known, unknown = [], []
    for _ in range(30):  # interleaved, so a busy moment on the machine slows both sides alike
        known.append(attempt(employee.email))
        unknown.append(attempt("nobody@example.com"))
    slower, faster = sorted([statistics.median(known), statistics.median(unknown)], reverse=True)
    assert slower <= faster * 1.2, (statistics.median(known), statistics.median(unknown))


def test_ended_sessions_leave_no_rows_and_expired_ones_are_swept(app, client, auth, employee, other_employee):
    gone = app.test_client()
    gone.post("/sign-in", data={"email": other_employee.email, "password": PASSWORD})
    EmployeeSession.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).execute()
    auth.login(employee)  # a sign-in sweeps every expired session, not only its own employee's
    assert [row.employee_id for row in EmployeeSession.select()] == [employee.id]
    auth.logout()
    assert EmployeeSession.select().count() == 0


def test_a_remember_cookie_of_an_ended_session_is_deleted_at_its_first_use(app, client, employee):
    client.post("/sign-in", data={"email": employee.email, "password": PASSWORD, "remember": "y"})
    client.delete_cookie("portal_session")  # the browser closed
    EmployeeSession.delete().execute()  # meanwhile an admin signed the employee out everywhere
    assert client.get("/").status_code == 302
    assert client.get_cookie("remember_token") is None
    assert client.get("/sign-in").status_code == 200


def test_sign_in_language_select_has_no_inline_handler(client):
    """An inline handler (even onchange="None") is blocked by the CSP and logs a console error."""
    html = client.get("/sign-in").get_data(as_text=True)
    assert "onchange" not in html
