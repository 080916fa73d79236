"""Test account off the request path: the form's answer comes at once, polls show the stages, limits hold."""
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from portal.models import AccountTestRun, AuditEvent
from tests.conftest import PASSWORD, page_text
from tests.servers.smtp import free_port
from tests.test_mailboxes import finish, form_for, htmx

ROOT = Path(__file__).resolve().parent.parent
POLL = re.compile(r'hx-get="(/mailboxes/tests/[0-9a-f]+)"')


@pytest.fixture
def slow_mail(config, server_certificate):
    """Mail reaches 127.0.0.1; a silent server is waited for 2 s (per read), a whole test at most 4 s."""
    config.update(PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*,localhost:*", PORTAL_MAIL_CA_FILE=server_certificate.ca_file,
                  PORTAL_MAIL_TIMEOUT=2.0, PORTAL_MAIL_DEADLINE=4.0, PORTAL_MAIL_PROVIDER_MX_LOOKUP=False)
    return config


def silent_values(silent_server, **overrides):
    values = {"address": "sales@example.com", "display_name": "Sales", "smtp_host": "127.0.0.1",
              "smtp_port": str(silent_server.port), "smtp_security": "starttls", "smtp_username": "sales@example.com",
              "smtp_password": "secret", "incoming_protocol": ""}
    return {**values, **overrides}


def test_the_answer_comes_at_once_and_the_polls_show_the_result(slow_mail, as_employee, silent_server):
    started_at = time.monotonic()
    started = htmx(as_employee, "/mailboxes/test", silent_values(silent_server))
    answered_in = time.monotonic() - started_at

    assert started.status_code == 200
    assert answered_in < 1.5, "the request only starts the test; the 2 s wait for the server is not in it"
    assert "Testing" in page_text(started) and POLL.search(started.get_data(as_text=True))
    done = finish(as_employee, started)
    assert "No mail server answered on this port" in page_text(done)
    assert not POLL.search(done.get_data(as_text=True)), "a finished test stops polling"
    assert AuditEvent.get().action == "test_failed" and AuditEvent.get().detail == "no_mail_server"


def test_the_polls_show_stages_as_they_finish(slow_mail, as_employee, smtp_server, dovecot, mail_user):
    # Outgoing passes quickly; incoming trickles, so a poll meanwhile shows the outgoing stages done.
    from tests.servers.slow import TarpitServer

    trickling = TarpitServer(interval=1.0, greeting=b"+OK Dovecot ready.\r\n")
    try:
        values = form_for(smtp_server, incoming_protocol="pop3", incoming_host="127.0.0.1",
                          incoming_port=str(trickling.port), incoming_security="none",
                          incoming_username=mail_user.address, incoming_password=mail_user.password)
        started = htmx(as_employee, "/mailboxes/test", values)
        poll = POLL.search(started.get_data(as_text=True)).group(1)
        time.sleep(1.5)
        meanwhile = as_employee.get(poll, headers={"HX-Request": "true"})
        text = page_text(meanwhile)
        assert "Testing" in text and "Outgoing: sign in" in text and "Failed" not in text
        done = finish(as_employee, meanwhile)
    finally:
        trickling.stop()
    assert "The server answered too slowly" in page_text(done)


def test_one_test_per_person_at_a_time(slow_mail, as_employee, silent_server):
    first = htmx(as_employee, "/mailboxes/test", silent_values(silent_server))
    second = htmx(as_employee, "/mailboxes/test", silent_values(silent_server, display_name="Again"))

    assert "Your previous test is still running" in page_text(second)
    assert POLL.search(second.get_data(as_text=True)).group(1) == POLL.search(first.get_data(as_text=True)).group(1)
    finish(as_employee, second)
    assert AccountTestRun.select().count() == 1
    again = finish(as_employee, htmx(as_employee, "/mailboxes/test", silent_values(silent_server)))
    assert "No mail server answered" in page_text(again), "once it is over, the next test runs"


def test_the_total_of_tests_at_once_is_configurable(slow_mail, app, client, auth, make_employee, silent_server):
    app.config["PORTAL_ACCOUNT_TESTS_AT_ONCE"] = 1
    auth.login(make_employee())
    first = htmx(client, "/mailboxes/test", silent_values(silent_server))
    auth.logout()
    auth.login(make_employee())

    refused = htmx(client, "/mailboxes/test", silent_values(silent_server))

    assert refused.status_code == 200 and "Too many account tests are running" in page_text(refused)
    assert not POLL.search(refused.get_data(as_text=True))
    auth.logout()
    assert AccountTestRun.select().count() == 1
    assert first.status_code == 200


def test_nobody_else_follows_my_test(slow_mail, client, auth, make_employee, silent_server):
    auth.login(make_employee())
    started = htmx(client, "/mailboxes/test", silent_values(silent_server))
    poll = POLL.search(started.get_data(as_text=True)).group(1)
    auth.logout()
    auth.login(make_employee())
    assert client.get(poll, headers={"HX-Request": "true"}).status_code == 404


def test_a_run_whose_process_stopped_says_so_and_blocks_nobody(slow_mail, as_employee, employee, silent_server):
    import datetime

    stale = AccountTestRun.create(id="ab" * 16, employee=employee.id,
                                  started_at=datetime.datetime.utcnow() - datetime.timedelta(minutes=10))
    shown = as_employee.get(f"/mailboxes/tests/{stale.id}", headers={"HX-Request": "true"})
    assert "The test was interrupted" in page_text(shown) and not POLL.search(shown.get_data(as_text=True))
    started = htmx(as_employee, "/mailboxes/test", silent_values(silent_server))
    assert POLL.search(started.get_data(as_text=True)), "an abandoned run does not count as running"
    finish(as_employee, started)


def test_the_api_test_is_bounded_by_the_deadline_and_the_same_limits(slow_mail, api_employee, employee,
                                                                     tarpit_server):
    body = {"address": "sales@example.com",
            "smtp": {"host": "127.0.0.1", "port": tarpit_server.port, "security": "none", "username": ""}}
    started = time.monotonic()
    answer = api_employee.post("/mailboxes/test", json=body)
    assert time.monotonic() - started < 6
    assert answer.status_code == 200 and answer.get_json()["problem"]["code"] == "too_slow"

    AccountTestRun.create(id="cd" * 16, employee=employee.id)  # the same person's test running in the form
    busy = api_employee.post("/mailboxes/test", json=body)
    assert busy.status_code == 429 and busy.get_json()["error"]["code"] == "tests_busy"


# ---------------------------------------------------------------- under gunicorn, as the README deploys it

def _sign_in(base, person):
    session = requests.Session()
    page = session.get(f"{base}/sign-in", timeout=10).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"', page)
    signed_in = session.post(f"{base}/sign-in", timeout=10, allow_redirects=False,
                             data={"email": person.email, "password": PASSWORD,
                                   "csrf_token": token.group(1) or token.group(2)})
    assert signed_in.status_code == 302, signed_in.text[:300]
    form = session.get(f"{base}/mailboxes/new", timeout=10).text
    session.headers["X-CSRFToken"] = re.search(r'"X-CSRFToken": "([^"]+)"', form).group(1)
    return session


@pytest.fixture
def gunicorn(config, app, slow_mail):
    """The portal under `gunicorn --workers 3` (the README's command), on the test's database."""
    port = free_port()
    env = {**os.environ, "PORTAL_DATABASE_URL": config["PORTAL_DATABASE_URL"],
           "PORTAL_INSTANCE_PATH": config["INSTANCE_PATH"], "PORTAL_SECRET_KEY": config["SECRET_KEY"],
           "PORTAL_INSECURE_COOKIES": "1", "PORTAL_MAIL_ALLOWED_HOSTS": "127.0.0.1:*",
           "PORTAL_MAIL_TIMEOUT": "8", "PORTAL_MAIL_DEADLINE": "12", "PORTAL_MAIL_PROVIDER_MX_LOOKUP": "0"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "--workers", "3", "--bind",
                               f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        waited_until = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/sign-in", timeout=5)
                break
            except requests.RequestException:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < waited_until, "gunicorn did not start"
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_three_tests_to_a_silent_host_leave_other_pages_answering(gunicorn, make_employee, silent_server):
    people = [make_employee() for _ in range(4)]
    sessions = [_sign_in(gunicorn, person) for person in people]
    answers = {}

    def start_test(number):
        answers[number] = sessions[number].post(f"{gunicorn}/mailboxes/test", headers={"HX-Request": "true"},
                                                data=silent_values(silent_server), timeout=30)

    testers = [threading.Thread(target=start_test, args=(n,)) for n in range(3)]
    for tester in testers:
        tester.start()
    time.sleep(0.5)  # the three tests are waiting for the silent host (8 s per read) now
    started = time.monotonic()
    page = sessions[3].get(f"{gunicorn}/my/addresses", timeout=30)
    page_took = time.monotonic() - started
    for tester in testers:
        tester.join()

    assert page.status_code == 200 and "My addresses" in page.text
    assert page_took < 4, f"an unrelated page waited {page_took:.1f} s behind the account tests"
    assert all(answer.status_code == 200 and "Testing" in answer.text for answer in answers.values())
