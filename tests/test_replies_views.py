"""The Replies page: newest first, unread marked and counted in the navigation, filters, read on opening."""
import datetime
import re

import pytest

from portal.models import Reply
from tests.conftest import page_text


@pytest.fixture
def replies(employee, make_mailbox, make_project, write_letter):
    """Two letters of Erik's in two projects from two addresses, each with one reply (the later one newer)."""
    alpha, beta = make_project("Alpha"), make_project("Beta")
    first = make_mailbox(employee, address="erik.alpha@example.com", projects=[alpha])
    second = make_mailbox(employee, address="erik.beta@example.com", projects=[beta])
    old_letter = write_letter(first, subject="Offer for Alpha", project=alpha)
    new_letter = write_letter(second, subject="Invoice for Beta", project=beta)
    start = datetime.datetime(2024, 1, 2, 10, 0)
    older = Reply.create(letter=old_letter, mailbox=first, message_id="<a@example.com>", sender="ann@client.example",
                         subject="Re: Offer for Alpha", fetched_at=start)
    newer = Reply.create(letter=new_letter, mailbox=second, message_id="<b@example.com>", sender="bob@client.example",
                         subject="Re: Invoice for Beta", fetched_at=start + datetime.timedelta(hours=1))
    return {"older": older, "newer": newer, "alpha": alpha, "second": second, "letter": old_letter}


def _badge(html):
    """The Replies count the navigation shows (0: none), in a page or in an out-of-band answer."""
    holder = re.search(r'<span id="nav-replies-count"[^>]*>(.*?</span></span>)?</span>', html)
    assert holder, "no Replies count in the answer"
    found = re.search(r'<span aria-hidden="true">(\d+)', holder.group(1) or "")
    return int(found.group(1)) if found else 0


def test_replies_newest_first_with_unread_marked_and_counted(as_employee, replies):
    html = as_employee.get("/replies").get_data(as_text=True)
    text = page_text(as_employee.get("/replies"))
    assert text.index("Re: Invoice for Beta") < text.index("Re: Offer for Alpha")
    assert html.count('class="unread"') == 2 and _badge(html) == 2


def test_opening_a_reply_marks_it_read_and_shows_it_in_its_letter(as_employee, replies):
    older = replies["older"]
    looked = as_employee.get(f"/replies/{older.id}")  # a GET (a prefetcher, a link in an e-mail) marks nothing
    assert looked.status_code == 302 and Reply.get_by_id(older.id).read_at is None
    assert as_employee.post(f"/replies/{older.id}", csrf=False).status_code == 400
    assert Reply.get_by_id(older.id).read_at is None
    opened = as_employee.post(f"/replies/{older.id}")
    assert opened.status_code == 303
    assert opened.headers["Location"].endswith(f"/letters/{replies['letter'].id}#reply-{older.id}")
    assert Reply.get_by_id(older.id).read_at is not None
    html = as_employee.get("/replies").get_data(as_text=True)
    assert html.count('class="unread"') == 1 and _badge(html) == 1


def test_filter_by_project_and_by_mailbox(as_employee, replies):
    by_project = page_text(as_employee.get(f"/replies?project={replies['alpha'].id}"))
    assert "Re: Offer for Alpha" in by_project and "Re: Invoice for Beta" not in by_project
    by_mailbox = page_text(as_employee.get(f"/replies?mailbox={replies['second'].id}"))
    assert "Re: Invoice for Beta" in by_mailbox and "Re: Offer for Alpha" not in by_mailbox
    assert "No reply matches" in page_text(as_employee.get("/replies?project=999999"))


def test_others_cannot_open_a_reply_and_an_admin_reading_marks_nothing(client, auth, admin, other_employee, replies):
    auth.login(other_employee)
    assert client.get(f"/replies/{replies['older'].id}").status_code == 404
    assert client.post(f"/replies/{replies['older'].id}").status_code == 404
    assert "Re: Offer for Alpha" not in page_text(client.get("/replies"))
    auth.logout()
    auth.login(admin)
    assert client.post(f"/replies/{replies['older'].id}").status_code == 303
    assert Reply.get_by_id(replies["older"].id).read_at is None  # still new for Erik


def test_the_replies_page_in_russian(as_employee, employee, replies):
    employee.language = "ru"
    employee.save()
    text = page_text(as_employee.get("/replies"))
    assert "Ответы на ваши письма" in text and "новый" in text


# ---- A reply opened on its letter's page (the link in a notification e-mail leads there) ----

def _read_form(html):
    """The form on a letter's page that marks the replies shown read: (its attributes, the reply ids it sends)."""
    found = re.search(r'<form ([^>]*action="/letters/\d+/replies/read"[^>]*)>(.*?)</form>', html, re.S)
    return (found.group(1), re.findall(r'name="reply" value="(\d+)"', found.group(2))) if found else (None, [])


def test_the_letter_page_marks_the_replies_it_shows_read_by_a_post_once_shown(as_employee, employee, replies):
    from portal.models import Notification
    from portal.notifications import notify

    older, letter = replies["older"], replies["letter"]
    entry = notify(employee, "reply_received", about="Offer for Alpha", target=f"reply:{older.id}")
    opened = as_employee.get(f"/replies/{older.id}", follow_redirects=True)  # the notification e-mail's link
    attributes, shown = _read_form(opened.get_data(as_text=True))
    assert f'hx-post="/letters/{letter.id}/replies/read" hx-trigger="load"' in attributes and shown == [str(older.id)]
    assert "Mark as read" in re.search(r"<noscript>(.*?)</noscript>", opened.get_data(as_text=True), re.S).group(1)
    assert Reply.get_by_id(older.id).read_at is None and Notification.get_by_id(entry.id).read_at is None
    assert as_employee.post(f"/letters/{letter.id}/replies/read", data={"reply": older.id}, csrf=False).status_code \
        == 400
    assert Reply.get_by_id(older.id).read_at is None
    answer = as_employee.post(f"/letters/{letter.id}/replies/read", data={"reply": older.id},
                              headers={"HX-Request": "true"})  # what the page sends once it is on screen
    # The answer is the navigation's counts, swapped into the page on screen: the Replies badge goes 2 -> 1 there.
    assert answer.status_code == 200 and 'id="nav-replies-count" hx-swap-oob="true"' in answer.get_data(as_text=True)
    assert _badge(answer.get_data(as_text=True)) == 1
    assert Reply.get_by_id(older.id).read_at is not None and Notification.get_by_id(entry.id).read_at is not None
    html = as_employee.get("/replies").get_data(as_text=True)
    assert html.count('class="unread"') == 1 and _badge(html) == 1  # the other letter's reply is still new
    assert _read_form(as_employee.get(f"/letters/{letter.id}").get_data(as_text=True)) == (None, [])


def test_without_scripts_the_button_marks_them_read_and_shows_the_letter_again(as_employee, replies):
    older, letter = replies["older"], replies["letter"]
    answer = as_employee.post(f"/letters/{letter.id}/replies/read", data={"reply": older.id})
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/letters/{letter.id}")
    assert Reply.get_by_id(older.id).read_at is not None


def test_a_reply_that_came_after_the_page_was_shown_stays_new(as_employee, replies):
    older, letter = replies["older"], replies["letter"]
    later = Reply.create(letter=letter, mailbox=replies["second"], message_id="<c@example.com>",
                         sender="ann@client.example", subject="Re: Offer for Alpha, again")
    as_employee.post(f"/letters/{letter.id}/replies/read", data={"reply": older.id}, headers={"HX-Request": "true"})
    assert Reply.get_by_id(older.id).read_at is not None and Reply.get_by_id(later.id).read_at is None
    # Nor does a reply of another letter named in the form count as read.
    newer = replies["newer"]
    as_employee.post(f"/letters/{letter.id}/replies/read", data={"reply": newer.id}, headers={"HX-Request": "true"})
    assert Reply.get_by_id(newer.id).read_at is None


def test_another_employee_cannot_mark_replies_read_and_an_admin_marks_nothing(client, auth, admin, other_employee,
                                                                              replies):
    older, letter = replies["older"], replies["letter"]
    auth.login(other_employee)
    assert client.post(f"/letters/{letter.id}/replies/read", data={"reply": older.id}).status_code == 404
    assert Reply.get_by_id(older.id).read_at is None
    auth.logout()
    auth.login(admin)
    assert _read_form(client.get(f"/letters/{letter.id}").get_data(as_text=True)) == (None, [])  # not the author
    assert client.post(f"/letters/{letter.id}/replies/read", data={"reply": older.id}).status_code == 303
    assert Reply.get_by_id(older.id).read_at is None  # still new for Erik


def test_opening_a_reply_from_the_list_reads_its_notification_too(as_employee, employee, replies):
    from portal.models import Notification
    from portal.notifications import notify

    older = replies["older"]
    entry = notify(employee, "reply_received", about="Offer for Alpha", target=f"reply:{older.id}")
    other = notify(employee, "reply_received", about="Invoice for Beta", target=f"reply:{replies['newer'].id}")
    as_employee.post(f"/replies/{older.id}")
    assert Notification.get_by_id(entry.id).read_at is not None and Notification.get_by_id(other.id).read_at is None
