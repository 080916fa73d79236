"""The Outbox's poll and the letter page's refresh (portal/views/letters.py): what they ask, what they answer.

Issue 14 defect 5 (the poll asks only for the letters that changed; no count over the whole table) and
issue 15 defect 11 (the letter page follows its letter to the end, then its replies a while).
"""
import datetime
import html
import re

import pytest

from portal.db import StatementCounter, database
from portal.models import Letter, utcnow
from portal.views import letters as letter_views
from tests import postgres
from tests.conftest import page_text

HTMX = {"HX-Request": "true"}


def _poll_url(response):
    found = re.search(r'id="outbox-poll" hx-get="([^"]+)"', response.get_data(as_text=True))
    return html.unescape(found.group(1)) if found else None


def test_the_outbox_poll_answers_nothing_while_nothing_changed(as_employee, sending_mailbox, write_letter):
    write_letter(sending_mailbox, subject="First")
    write_letter(sending_mailbox, subject="Second")
    poll = _poll_url(as_employee.get("/outbox", headers=HTMX))
    assert poll and "shown=" in poll
    answer = as_employee.get(poll, headers=HTMX)
    assert answer.status_code == 200 and answer.get_data(as_text=True) == ""


def test_the_outbox_poll_answers_only_the_row_that_changed_and_stops_when_nothing_is_in_flight(
        as_employee, sending_mailbox, write_letter):
    first = write_letter(sending_mailbox, subject="First")
    second = write_letter(sending_mailbox, subject="Second")
    poll = _poll_url(as_employee.get("/outbox", headers=HTMX))
    Letter.update(state="cancelled").where(Letter.id == first.id).execute()
    answer = as_employee.get(poll, headers=HTMX).get_data(as_text=True)
    assert f'id="letter-{first.id}"' in answer and 'hx-swap-oob="true"' in answer and "Cancelled" in answer
    assert f'id="letter-{second.id}"' not in answer and 'id="outbox"' not in answer
    next_poll = re.search(r'id="outbox-poll" hx-get="([^"]+)"', answer)
    assert next_poll and 'hx-trigger="every 2s"' in answer  # the second is still queued

    Letter.update(state="cancelled").where(Letter.id == second.id).execute()
    last = as_employee.get(html.unescape(next_poll.group(1)), headers=HTMX).get_data(as_text=True)
    assert f'id="letter-{second.id}"' in last and 'hx-trigger' not in last  # nothing in flight: it stops


def test_a_new_letter_on_the_first_page_brings_the_whole_list(as_employee, sending_mailbox, write_letter):
    write_letter(sending_mailbox, subject="First")
    poll = _poll_url(as_employee.get("/outbox", headers=HTMX))
    write_letter(sending_mailbox, subject="Arrived meanwhile")
    answer = as_employee.get(poll, headers=HTMX)
    assert '<div id="outbox" hx-swap-oob="true">' in answer.get_data(as_text=True)
    assert "Arrived meanwhile" in page_text(answer) and "2 letters" in page_text(answer)


def test_the_outbox_poll_reads_no_count_and_few_statements(as_employee, sending_mailbox, write_letter):
    for number in range(5):
        write_letter(sending_mailbox, subject=f"Letter {number}")
    poll = _poll_url(as_employee.get("/outbox", headers=HTMX))
    with StatementCounter() as counted:
        sql = []
        original = counted.db.execute_sql

        def noting(statement, params=None, *args, **kwargs):
            sql.append(statement)
            return original(statement, params, *args, **kwargs)

        counted.db.execute_sql = noting
        assert as_employee.get(poll, headers=HTMX).status_code == 200
        counted.db.execute_sql = counted._original
    letter_sql = [statement for statement in sql if '"letter"' in statement]
    assert not any("COUNT" in statement for statement in letter_sql)
    assert len(letter_sql) == 2, letter_sql  # the shown letters by id, and which letter is now first


def test_a_large_outbox_counts_up_to_a_limit_and_still_pages_on(
        as_employee, sending_mailbox, write_letter, monkeypatch, app):
    monkeypatch.setattr(letter_views, "OUTBOX_COUNT_LIMIT", 4)
    app.config["PORTAL_PAGE_SIZE"] = 2
    for number in range(6):
        write_letter(sending_mailbox, subject=f"Letter {number}")
    first = page_text(as_employee.get("/outbox"))
    assert "More than 4 letters" in first and "Page 1 of more than 2" in first
    third = page_text(as_employee.get("/outbox?page=3"))
    assert "6 letters" in third and "Page 3 of 3" in third and "Letter 0" in third


def _finished(letter, minutes_ago):
    when = utcnow() - datetime.timedelta(minutes=minutes_ago)
    Letter.update(state="sent", sent_at=when, finished_at=when, attempts=1).where(Letter.id == letter.id).execute()
    return Letter.get_by_id(letter.id)


def test_a_sent_letter_page_keeps_asking_for_replies_a_while_then_stops(as_employee, sending_mailbox, write_letter):
    fresh = _finished(write_letter(sending_mailbox, subject="Fresh"), minutes_ago=1)
    page = as_employee.get(f"/letters/{fresh.id}").get_data(as_text=True)
    assert f'hx-trigger="every {letter_views.REPLY_WATCH_SECONDS}s"' in page
    assert "Replies appear here as they arrive." in page
    old = _finished(write_letter(sending_mailbox, subject="Old"),
                    minutes_ago=letter_views.REPLY_WATCH.total_seconds() / 60 + 1)
    assert "hx-trigger" not in as_employee.get(f"/letters/{old.id}").get_data(as_text=True)


def test_an_unchanged_letter_answers_its_page_with_no_content_and_a_changed_one_with_the_fragment(
        as_employee, sending_mailbox, write_letter):
    letter = write_letter(sending_mailbox)
    version = letter_views.letter_version(Letter.get_by_id(letter.id))
    unchanged = as_employee.get(f"/letters/{letter.id}?seen={version}", headers=HTMX)
    assert unchanged.status_code == 204
    _finished(letter, minutes_ago=0)
    changed = as_employee.get(f"/letters/{letter.id}?seen={version}", headers=HTMX)
    assert changed.status_code == 200 and "The letter was sent." in page_text(changed)


def test_a_queued_letter_says_no_worker_is_running_until_a_worker_beats(as_employee, sending_mailbox, write_letter):
    from portal.health import beat

    letter = write_letter(sending_mailbox)
    assert "No worker is running to send it" in page_text(as_employee.get(f"/letters/{letter.id}"))
    assert "No worker is running to send it" in page_text(as_employee.get("/outbox"))
    beat("test-host:1")
    assert "No worker is running" not in page_text(as_employee.get(f"/letters/{letter.id}"))
    assert "No worker is running" not in page_text(as_employee.get("/outbox"))


FILTERS = [("state", "letter_outbox_state"), ("project_id", "letter_outbox_project"),
           ("mailbox_id", "letter_outbox_mailbox"), ("author_id", "letter_outbox_author")]


@pytest.mark.parametrize("column,index", FILTERS)
def test_each_outbox_filter_reads_its_page_from_an_index_without_sorting(app, column, index):
    """EXPLAIN of the Outbox's page query, filtered by one column: the index in its order, no sort step."""
    field = getattr(Letter, column.removesuffix("_id"))
    query = (Letter.select(Letter.id).where(field == ("failed" if column == "state" else 1))
             .order_by(Letter.created_at.desc(), Letter.id.desc()).limit(25))
    sql, params = query.sql()
    with database.connection_context():
        if postgres.wanted():
            database.execute_sql("SET enable_seqscan = off")  # an empty table would be read whole anyway
            plan = "\n".join(row[0] for row in database.execute_sql("EXPLAIN " + sql, params))
            assert index in plan and "Sort" not in plan, plan
        else:
            plan = "\n".join(row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
            assert index in plan and "TEMP B-TREE" not in plan, plan
