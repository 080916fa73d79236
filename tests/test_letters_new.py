"""New letter: every error at once, the project it starts in, and a sender block that waits for a choice calmly."""
import re

import pytest

from portal.models import Letter
from portal.sender import resolve_sender
from tests.conftest import page_text


def _new_letter_form(client):
    html = client.get("/letters/new").get_data(as_text=True)
    return {"submit_token": re.search(r'name="submit_token" type="hidden" value="([^"]+)"', html).group(1),
            "project": "", "mailbox": (re.search(r'<option selected value="(\d+)"', html) or [None, ""])[1]}


def _selected_project(html):
    select = re.search(r'<select[^>]*name="project".*?</select>', html, re.S).group(0)
    chosen = re.search(r'<option selected value="([^"]*)">([^<]*)<', select)
    return chosen.group(2) if chosen else None


def test_every_error_is_named_at_once_with_every_bad_address(as_employee, sending_mailbox):
    data = {**_new_letter_form(as_employee), "to": "Anna <anna@example.com>, bad@, worse at example.com",
            "cc": "also bad", "subject": "", "body": ""}

    text = page_text(as_employee.post("/letters/new", data=data))

    for message in ("Write a subject.", "Write the text of the letter.", "“bad@” is not a valid e-mail address.",
                    "“worse at example.com” is not a valid e-mail address.",
                    "“also bad” is not a valid e-mail address."):
        assert message in text
    assert Letter.select().count() == 0


def test_a_new_letter_starts_in_the_project_used_last(as_employee, employee, make_project, sending_mailbox,
                                                      write_letter):
    make_project("Alpha")
    beta = make_project("Beta")
    write_letter(sending_mailbox, project=beta)

    html = as_employee.get("/letters/new").get_data(as_text=True)

    assert _selected_project(html) == "Beta"
    assert 'data-project="%d"' % beta.id in html and 'id="send-letter"' in html


def test_a_new_letter_starts_in_the_only_project(as_employee, make_project):
    make_project("Alpha")

    html = as_employee.get("/letters/new").get_data(as_text=True)

    assert _selected_project(html) == "Alpha"
    assert 'id="nobody-can-send"' in html  # the portal chose: the real state, with what to do


def test_the_sender_block_waits_calmly_until_a_project_is_chosen(as_employee, employee, make_project):
    alpha = make_project("Alpha")
    make_project("Beta")

    page = as_employee.get("/letters/new")
    html = page.get_data(as_text=True)

    assert 'id="sender-waits"' in html and "Choose the project of this letter" in page_text(page)
    sender = re.search(r'<div id="letter-sender".*?</div>', html, re.S).group(0)
    assert 'id="nobody-can-send"' not in html and 'role="alert"' not in sender and "notice-fail" not in sender
    assert 'id="send-letter"' not in html
    chosen = as_employee.get(f"/letters/new/sender?project={alpha.id}", headers={"HX-Request": "true"})
    assert 'id="nobody-can-send"' in chosen.get_data(as_text=True)  # chosen: now it says so plainly


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_nobody_can_send_outside_a_project_reads_as_a_sentence(employee, lang):
    words = resolve_sender(employee, None).explanation(lang)

    assert "outside any project" not in words and "вне проектов или все проекты" not in words
    assert ("letters outside a project" in words) if lang == "en" else ("вне проектов отправить не с чего" in words)
