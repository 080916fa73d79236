"""Headers, cookies, CSRF and the size limit on every answer."""
import io

import pytest

from portal import create_app
from tests.conftest import page_text


def test_security_headers_on_every_page(client):
    response = client.get("/sign-in")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy and "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_behind_sign_in_are_not_cached(as_employee):
    assert as_employee.get("/").headers["Cache-Control"] == "no-store"


def test_no_inline_scripts_in_pages(as_admin):
    html = as_admin.get("/").get_data(as_text=True)
    assert "<script>" not in html and " onclick=" not in html and " onchange=" not in html


def test_body_carries_csrf_token_for_htmx(client):
    html = client.get("/sign-in").get_data(as_text=True)
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_post_without_csrf_is_refused(client, employee):
    response = client.post("/sign-in", data={"email": employee.email, "password": "x"}, csrf=False)
    assert response.status_code == 400
    assert "The form has expired" in response.get_data(as_text=True)


@pytest.mark.parametrize("insecure, secure_flag", [(False, True), (True, False)])
def test_session_cookie_flags(config, insecure, secure_flag, employee):
    config["PORTAL_INSECURE_COOKIES"] = insecure
    app = create_app(config)
    assert app.config["SESSION_COOKIE_SECURE"] is secure_flag
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_proxy_fix_honours_forwarded_prefix(config):
    config["PORTAL_PROXY_COUNT"] = 1
    app = create_app(config)
    response = app.test_client().get(
        "/", headers={"X-Forwarded-Prefix": "/mail", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "intranet"}
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/mail/sign-in")


@pytest.mark.parametrize("target", [
    "//evil.example/", "/\t/evil.example/x", "/\n/evil.example", "/\\evil.example", "\\\\evil.example",
    "https://evil.example/", "javascript:alert(1)", "http:/evil.example", "",
])
def test_local_target_refuses_anything_that_could_leave_the_site(target):
    from portal.security import local_target

    assert local_target(target) is None


@pytest.mark.parametrize("target", ["/", "/outbox?state=failed", "/letters/5#history"])
def test_local_target_keeps_paths_on_this_site(target):
    from portal.security import local_target

    assert local_target(target) == target


def test_sign_in_does_not_follow_a_tab_smuggled_redirect(client, employee):
    from tests.conftest import PASSWORD

    response = client.post("/sign-in?next=/%09/evil.example/x", data={"email": employee.email, "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/"


@pytest.mark.parametrize("path", ["/profile", "/contacts/new", "/profile/api-tokens"])
def test_a_form_larger_than_any_request_is_refused_unread(as_employee, employee, path):
    # A file part is not held in memory like a text field (Flask's MAX_FORM_MEMORY_SIZE), so
    # without a limit on the whole body any form would take a file of any size.
    padding = (io.BytesIO(b"x" * (6 * 1024 * 1024)), "padding.bin")
    response = as_employee.post(path, data={"name": "Erik", "padding": padding}, content_type="multipart/form-data")
    assert response.status_code == 413
    assert "The form was larger than 5120 KB in all: nothing was saved." in page_text(response)


def test_the_request_limit_is_the_configured_one(config):
    config["PORTAL_MAX_REQUEST_BYTES"] = 1234
    assert create_app(config).config["MAX_CONTENT_LENGTH"] == 1234


def _set_cookies(response, name):
    """{Path: [attributes]} of each Set-Cookie for `name` in the answer."""
    found = {}
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            attributes = [part.strip() for part in header.split(";")]
            path = next(part for part in attributes if part.startswith("Path="))[5:]
            found[path] = attributes
    return found


@pytest.mark.parametrize("behind", ["proxy", "script_name"])
def test_the_session_and_remember_cookies_belong_to_the_portals_prefix(config, employee, behind):
    """Behind nginx at /mail/ (X-Forwarded-Prefix) or mounted there (SCRIPT_NAME), both cookies go to /mail only,
    Secure, HttpOnly and SameSite=Lax; sign-out deletes the remember cookie there (and one left at / before)."""
    from flask.testing import FlaskClient

    from tests.conftest import PASSWORD

    config.update(PORTAL_PROXY_COUNT=1 if behind == "proxy" else 0, PORTAL_INSECURE_COOKIES=False,
                  WTF_CSRF_ENABLED=False)  # cookies, not CSRF
    app = create_app(config)
    client = FlaskClient(app, app.response_class, use_cookies=False)  # the browser's jar is played by hand
    if behind == "proxy":  # nginx took /mail off the path and says so
        where = {"headers": {"X-Forwarded-Prefix": "/mail", "X-Forwarded-Proto": "https",
                             "X-Forwarded-Host": "intranet"}, "base_url": "https://intranet/"}
    else:
        where = {"headers": {}, "base_url": "https://intranet/mail/"}
    signed_in = client.post("/sign-in", data={"email": employee.email, "password": PASSWORD, "remember": "y"},
                            **where)
    assert signed_in.status_code == 302
    for name in ("portal_session", "remember_token"):
        cookies = _set_cookies(signed_in, name)
        assert list(cookies) == ["/mail"], (name, cookies)
        assert {"Secure", "HttpOnly", "SameSite=Lax"} <= set(cookies["/mail"]), name
    jar = "; ".join(cookie[0] for name in ("portal_session", "remember_token")
                    for cookie in _set_cookies(signed_in, name).values())
    signed_out = client.post("/sign-out", headers={**where["headers"], "Cookie": jar}, base_url=where["base_url"])
    deleted = _set_cookies(signed_out, "remember_token")
    assert set(deleted) == {"/mail", "/"} and all("Max-Age=0" in cookie for cookie in deleted.values())


def test_without_a_prefix_the_cookies_stay_at_the_root(client, employee):
    from tests.conftest import PASSWORD

    response = client.post("/sign-in", data={"email": employee.email, "password": PASSWORD, "remember": "y"})
    assert list(_set_cookies(response, "remember_token")) == ["/"]
    assert list(_set_cookies(response, "portal_session")) == ["/"]
