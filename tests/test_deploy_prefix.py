"""The portal served under a prefix (nginx's /mail/): sign-in return address, cookie path, refused forms."""
import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import PASSWORD

PREFIX = "https://portal.example/mail/"


def sign_in_under_prefix(client, who, **query):
    """Sign in as a browser at PREFIX would: the form's token comes from the page, its cookie from /mail."""
    page = client.get("/sign-in", base_url=PREFIX).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    return client.post("/sign-in", base_url=PREFIX, query_string=query, csrf=False,
                       headers={"Referer": PREFIX + "sign-in"},
                       data={"email": who.email, "password": PASSWORD, "csrf_token": token})


def test_signing_in_after_a_deep_link_returns_under_the_prefix(client, admin):
    response = client.get("/outbox?page=2", base_url=PREFIX)
    location = urlsplit(response.headers["Location"])
    assert location.path == "/mail/sign-in"
    target = parse_qs(location.query)["next"][0]

    response = sign_in_under_prefix(client, admin, next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/mail/outbox?page=2"
    assert client.get("/outbox", base_url=PREFIX).status_code == 200


@pytest.mark.parametrize("target", ["//evil.example.com/", "https://evil.example.com/", "/\\evil.example.com"])
def test_under_the_prefix_next_still_never_leaves_the_site(client, employee, target):
    response = sign_in_under_prefix(client, employee, next=target)
    assert response.headers["Location"] == "/mail/"


def test_the_session_cookie_belongs_to_the_prefix(client, employee):
    response = sign_in_under_prefix(client, employee)
    cookie = next(value for value in response.headers.getlist("Set-Cookie") if value.startswith("portal_session="))
    assert "Path=/mail;" in cookie or cookie.endswith("Path=/mail")


def test_without_a_prefix_the_session_cookie_is_the_whole_site(client, employee):
    response = client.post("/sign-in", data={"email": employee.email, "password": PASSWORD})
    cookie = next(value for value in response.headers.getlist("Set-Cookie") if value.startswith("portal_session="))
    assert "Path=/;" in cookie or cookie.endswith("Path=/")


def test_a_proxy_that_drops_the_port_is_named_and_logged(client, employee, caplog):
    """nginx's `Host $host` over HTTPS on port 5443: Flask-WTF refuses the referrer, every form, forever."""
    with caplog.at_level(logging.WARNING, logger="portal.errors"):
        response = client.post("/sign-in", base_url="https://localhost/",
                               headers={"Referer": "https://localhost:5443/sign-in"},
                               data={"email": employee.email, "password": PASSWORD})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "The address does not match" in text and "localhost:5443" in text
    assert "The form has expired" not in text
    assert any("referrer does not match" in record.getMessage() and "Referer https://localhost:5443/sign-in"
               in record.getMessage() for record in caplog.records)


def test_a_form_without_its_token_is_logged_with_the_reason(client, caplog):
    with caplog.at_level(logging.WARNING, logger="portal.errors"):
        response = client.post("/sign-in", csrf=False, data={"email": "a@example.com", "password": "x"})
    assert response.status_code == 400
    assert "The form has expired" in response.get_data(as_text=True)
    assert any("CSRF token is missing" in record.getMessage() for record in caplog.records)
