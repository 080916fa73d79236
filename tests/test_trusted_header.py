"""Sign-in vouched for by a real nginx in front (basic auth sets X-Remote-User), and when the header is ignored."""
import os

import pytest
import requests

from portal.trusted_header import TrustedHeader
from tests.servers.nginx import NginxProxy, missing_reason

HEADER = "X-Remote-User"
PASSWORD = "proxy password"


@pytest.fixture
def proxied_config(config):
    config.update(PORTAL_PROXY_COUNT=1, PORTAL_TRUSTED_USER_HEADER=HEADER, PORTAL_TRUSTED_PROXIES="127.0.0.2")
    return config


@pytest.fixture
def nginx(proxied_config, live_server, tmp_path, employee, other_employee):
    reason = missing_reason()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    users = {employee.email: PASSWORD, other_employee.email: PASSWORD, "stranger@example.com": PASSWORD}
    proxy = NginxProxy(tmp_path / "nginx", live_server, users)
    proxy.start()
    yield proxy
    proxy.stop()


def who_is_signed_in(response):
    """The sign-in page, or the signed-in person's page (their name in the navigation's page)."""
    return "sign-in" if response.url.split("?")[0].endswith("/sign-in") else response.text


def test_the_person_the_proxy_vouches_for_is_signed_in(nginx, employee, other_employee):
    page = requests.get(nginx.signed_in_url + "/profile", auth=(employee.email, PASSWORD), timeout=10)
    assert page.status_code == 200 and employee.email in page.text
    # A sent header never beats the proxy's: nginx replaces it with the authenticated user.
    forged = requests.get(nginx.signed_in_url + "/profile", auth=(employee.email, PASSWORD),
                          headers={HEADER: other_employee.email}, timeout=10)
    assert employee.email in forged.text and other_employee.email not in forged.text


def test_the_session_follows_the_proxy_when_it_vouches_for_someone_else(nginx, employee, other_employee):
    browser = requests.Session()
    assert employee.email in browser.get(nginx.signed_in_url + "/profile", auth=(employee.email, PASSWORD)).text
    page = browser.get(nginx.signed_in_url + "/profile", auth=(other_employee.email, PASSWORD))
    assert other_employee.email in page.text and employee.email not in page.text


def test_unknown_and_deactivated_people_get_the_sign_in_page(nginx, employee):
    stranger = requests.get(nginx.signed_in_url + "/profile", auth=("stranger@example.com", PASSWORD), timeout=10)
    assert who_is_signed_in(stranger) == "sign-in"
    employee.active = False
    employee.save()
    deactivated = requests.get(nginx.signed_in_url + "/profile", auth=(employee.email, PASSWORD), timeout=10)
    assert who_is_signed_in(deactivated) == "sign-in"


def test_a_header_sent_past_the_proxy_or_through_a_clearing_location_is_ignored(nginx, live_server, employee):
    direct = requests.get(live_server + "/profile", headers={HEADER: employee.email}, timeout=10)
    assert who_is_signed_in(direct) == "sign-in"  # from 127.0.0.1, not the proxy's 127.0.0.2
    cleared = requests.get(nginx.public_url + "/profile", headers={HEADER: employee.email}, timeout=10)
    assert who_is_signed_in(cleared) == "sign-in"


PROXIED = {"werkzeug.proxy_fix.orig": {"REMOTE_ADDR": "127.0.0.2"}, "REMOTE_ADDR": "203.0.113.5",
           "HTTP_X_REMOTE_USER": "ann@example.com"}
SETTINGS = {"PORTAL_PROXY_COUNT": 1, "PORTAL_TRUSTED_USER_HEADER": HEADER, "PORTAL_TRUSTED_PROXIES": "127.0.0.2"}


@pytest.mark.parametrize("settings, environ, expected", [
    (SETTINGS, PROXIED, "ann@example.com"),
    (dict(SETTINGS, PORTAL_PROXY_COUNT=0), PROXIED, None),  # no proxy declared: never believed
    (dict(SETTINGS, PORTAL_TRUSTED_USER_HEADER=""), PROXIED, None),
    (SETTINGS, dict(PROXIED, **{"werkzeug.proxy_fix.orig": {"REMOTE_ADDR": "127.0.0.1"}}), None),
    (SETTINGS, dict(PROXIED, HTTP_X_REMOTE_USER="eve@example.com, ann@example.com"), None),  # appended, not set
    (SETTINGS, dict(PROXIED, HTTP_X_REMOTE_USER="ann@example.com\x00"), None),
    (dict(SETTINGS, PORTAL_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.2"), PROXIED, "ann@example.com"),
])
def test_when_the_header_is_believed(settings, environ, expected):
    assert TrustedHeader.from_mapping(settings).user(environ) == expected
