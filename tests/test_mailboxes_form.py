"""The add/edit form's shape: the servers folded until needed, one field table for the page's script, and the
test's outcome in the bar beside Test account and Save."""
import re

import pytest

from portal.mail.settings import MAILBOX_FIELDS
from tests.test_mailboxes import finish, form_for, htmx

pytestmark = pytest.mark.usefixtures("mail_reaches_localhost")


def _servers_section(body):
    found = re.search(r'<details class="mailbox-servers" id="mailbox-servers"( open)?>', body)
    assert found, "the form has no Servers section"
    return found


def test_the_script_reads_the_server_fields_from_the_one_table(as_admin):
    body = as_admin.get("/mailboxes/new?scope=company").get_data(as_text=True)

    listed = re.search(r'data-server-fields="([^"]*)"', body).group(1).split()

    assert listed == [f.name for f in MAILBOX_FIELDS if f.server]
    assert "SERVER_FIELDS" not in open("static/js/portal.js", encoding="utf-8").read()


def test_address_and_password_come_before_the_folded_servers(as_employee):
    body = as_employee.get("/mailboxes/new").get_data(as_text=True)

    assert _servers_section(body).group(1) is None  # folded: the address fills it in
    servers_at = body.index('id="mailbox-servers"')
    assert body.index('id="address"') < servers_at and body.index('id="smtp_password"') < servers_at
    assert body.index('id="smtp_host"') > servers_at and body.index('id="incoming_host"') > servers_at


def test_a_server_error_after_a_plain_post_shows_the_servers_open(as_employee):
    """Without a script the form posts as a page: a server field with an error must not stay folded."""
    values = {"address": "team@example.com", "smtp_host": "127.0.0.1", "smtp_port": "99999",
              "smtp_security": "starttls", "smtp_username": "team", "smtp_password": "pw"}

    body = as_employee.post("/mailboxes/new", data=values).get_data(as_text=True)

    assert _servers_section(body).group(1) == " open"
    assert 'id="smtp_port"' in body and 'aria-invalid="true"' in body


def test_the_test_outcome_appears_in_the_bar_beside_the_buttons(as_admin, smtp_server):
    values = form_for(smtp_server, scope="company", smtp_password="not-the-password")

    started = htmx(as_admin, "/mailboxes/test", values)
    assert re.search(r'<div id="test-summary" class="test-summary" hx-swap-oob="true">.*?Testing',
                     started.get_data(as_text=True), re.S)
    body = finish(as_admin, started).get_data(as_text=True)

    summary = re.search(r'<div id="test-summary"[^>]*hx-swap-oob="true">(.*?)</div>', body, re.S)
    assert summary, "the poll's answer does not update the bar"
    assert "Failed" in summary.group(1) and 'href="#test-result"' in summary.group(1)
