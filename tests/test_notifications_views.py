"""The notification centre's pages: the bell with its unread count, the list, marking read, opening an entry."""
import re

import pytest

from portal.db import StatementCounter
from portal.models import Notification
from portal.notifications import notify
from tests.conftest import page_text


def bell(response):
    """The bell's unread number as the navigation shows it (0 when it shows none)."""
    found = re.search(r'data-unread-notifications="(\d+)"', response.get_data(as_text=True))
    return int(found.group(1)) if found else 0


def test_the_bell_counts_the_persons_unread_entries_on_every_page(client, auth, employee, other_employee):
    notify(employee, "mailbox_assigned", about="a@example.com", target="mailbox:1")
    notify(employee, "letter_failed", about="Offer", detail="recipient_unknown")
    notify(other_employee, "mailbox_assigned", about="b@example.com")
    auth.login(employee)
    for url in ("/", "/outbox", "/replies", "/profile"):
        response = client.get(url)
        assert response.status_code == 200 and bell(response) == 2, url
    assert "2 unread notifications" in page_text(client.get("/"))


def test_the_bell_costs_one_query_and_is_counted_once_a_page(client, auth, employee, monkeypatch):
    import portal.views.notifications as views

    notify(employee, "mailbox_assigned", about="a@example.com")
    auth.login(employee)
    client.get("/notifications")  # warm: sessions, templates
    with StatementCounter() as with_bell:
        assert bell(client.get("/notifications")) == 1  # the page asks twice (bell, Mark all read)
    calls = []
    monkeypatch.setattr(views, "unread_count", lambda employee_id: calls.append(employee_id) or 1)
    with StatementCounter() as without:
        assert bell(client.get("/notifications")) == 1
    assert with_bell.count - without.count == 1 and calls == [employee.id]


def test_the_list_shows_entries_newest_first_in_the_persons_language(client, auth, make_employee):
    reader = make_employee(language="ru")
    notify(reader, "mailbox_assigned", about="old@example.com")
    notify(reader, "letter_failed", about="Предложение", detail="recipient_unknown", target="letter:7")
    auth.login(reader)
    text = page_text(client.get("/notifications"))
    assert text.index("Предложение") < text.index("old@example.com")
    assert "Ваше письмо «Предложение» не отправлено" in text
    assert "Отметить все как прочитанные" in text


def test_opening_an_entry_marks_it_read_and_leads_to_the_place_to_act(client, auth, employee, other_employee):
    entry = notify(employee, "letter_failed", about="Offer", detail="recipient_unknown", target="letter:42")
    gone = notify(employee, "mailbox_assigned", about="x@example.com", target="")
    theirs = notify(other_employee, "mailbox_assigned", about="y@example.com", target="mailbox:3")
    auth.login(employee)
    response = client.post(f"/notifications/{entry.id}")
    assert response.status_code == 303 and response.headers["Location"].endswith("/letters/42")
    assert Notification.get_by_id(entry.id).read_at is not None
    assert client.post(f"/notifications/{gone.id}").headers["Location"].endswith("/notifications")
    # Someone else's entry, or one deleted with its letter: the person's own list, and nothing marked.
    assert client.post(f"/notifications/{theirs.id}").headers["Location"].endswith("/notifications")
    assert client.post("/notifications/999999").headers["Location"].endswith("/notifications")
    assert Notification.get_by_id(theirs.id).read_at is None


def test_a_get_of_an_entry_leads_to_the_place_to_act_and_marks_nothing(client, auth, employee, other_employee):
    """A link prefetcher, or an <img src> on another page, must not mark the person's entries read."""
    entry = notify(employee, "letter_failed", about="Offer", detail="recipient_unknown", target="letter:42")
    theirs = notify(other_employee, "mailbox_assigned", about="y@example.com", target="mailbox:3")
    auth.login(employee)
    response = client.get(f"/notifications/{entry.id}")
    assert response.status_code == 302 and response.headers["Location"].endswith("/letters/42")
    assert client.get(f"/notifications/{theirs.id}").headers["Location"].endswith("/notifications")
    assert Notification.get_by_id(entry.id).read_at is None
    assert bell(client.get("/")) == 1


def test_opening_an_entry_needs_the_csrf_token(client, auth, employee):
    entry = notify(employee, "letter_failed", about="Offer", detail="recipient_unknown", target="letter:42")
    auth.login(employee)
    assert client.post(f"/notifications/{entry.id}", csrf=False).status_code == 400
    assert Notification.get_by_id(entry.id).read_at is None


def test_the_list_opens_each_entry_with_a_form_that_carries_the_csrf_token(client, auth, employee):
    """The entry's sentence is the button of a POST form (a link would be a GET); no link leads to the entry."""
    entry = notify(employee, "letter_failed", about="Offer", detail="recipient_unknown", target="letter:42")
    auth.login(employee)
    html = client.get("/notifications").get_data(as_text=True)
    form = re.search(rf'<form method="post" action="/notifications/{entry.id}"[^>]*>(.*?)</form>', html, re.S)
    assert form and 'name="csrf_token"' in form.group(1)
    button = re.search(r'<button type="submit"[^>]*>(.*?)</button>', form.group(1), re.S)
    assert button and "Your letter “Offer” could not be sent" in button.group(1)
    assert f'href="/notifications/{entry.id}"' not in html
    response = client.post(f"/notifications/{entry.id}",
                           data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', form.group(1))[1]},
                           csrf=False)
    assert response.headers["Location"].endswith("/letters/42")
    assert Notification.get_by_id(entry.id).read_at is not None


def test_opening_a_reply_entry_marks_the_reply_read_too(client, auth, employee, make_mailbox, write_letter):
    from portal.models import Reply

    letter = write_letter(make_mailbox(employee, address="erik@example.com"), subject="Offer")
    reply = Reply.create(letter=letter, message_id="<r@example.com>", sender="ann@client.example", subject="Re: Offer")
    entry = notify(employee, "reply_received", about="Offer", detail="ann@client.example", target=f"reply:{reply.id}")
    auth.login(employee)
    client.get(f"/notifications/{entry.id}")
    assert Reply.get_by_id(reply.id).read_at is None
    assert client.post(f"/notifications/{entry.id}").headers["Location"].endswith(f"/replies/{reply.id}")
    assert Reply.get_by_id(reply.id).read_at is not None


def test_mark_read_and_mark_all_read(client, auth, employee):
    first = notify(employee, "mailbox_assigned", about="a@example.com")
    notify(employee, "mailbox_assigned", about="b@example.com")
    auth.login(employee)
    assert bell(client.get("/")) == 2
    assert client.post(f"/notifications/{first.id}/read").status_code == 302
    assert bell(client.get("/")) == 1
    assert client.post("/notifications/read").status_code == 302
    page = client.get("/notifications")
    assert bell(page) == 0 and "Mark all read" not in page_text(page)


def test_marking_read_needs_the_csrf_token(client, auth, employee):
    entry = notify(employee, "mailbox_assigned", about="a@example.com")
    auth.login(employee)
    assert client.post("/notifications/read", csrf=False).status_code == 400
    assert Notification.get_by_id(entry.id).read_at is None


@pytest.mark.parametrize("url", ["/notifications", "/notifications/1"])
def test_the_notification_pages_need_a_signed_in_person(client, url):
    assert client.get(url).status_code == 302


def test_an_empty_centre_says_what_will_appear_there(client, auth, employee):
    auth.login(employee)
    text = page_text(client.get("/notifications"))
    assert "No notifications yet" in text and bell(client.get("/")) == 0


def test_my_profile_offers_each_kind_in_the_portal_or_also_by_e_mail(client, auth, employee):
    from portal.notifications import KINDS, preferences

    auth.login(employee)
    page = client.get("/profile").get_data(as_text=True)
    assert page.count('value="email"') == len(KINDS) and 'name="reply_received"' in page
    assert re.search(r'name="letter_failed" type="radio" value="email" checked|'
                     r'checked[^>]*name="letter_failed"[^>]*value="email"', page)
    assert "an administrator has not chosen its system mailbox" in page

    choice = {kind: "portal" for kind in KINDS} | {"reply_received": "email"}
    response = client.post("/notifications/preferences", data=choice)
    assert response.status_code == 302 and response.headers["Location"].endswith("/profile#notifications")
    assert preferences(employee) == {kind: kind == "reply_received" for kind in KINDS}
    assert "Your notification choices are saved." in page_text(client.get("/profile"))


def test_a_choice_outside_the_list_changes_nothing(client, auth, employee):
    from portal.notifications import KINDS, preferences

    auth.login(employee)
    before = preferences(employee)
    response = client.post("/notifications/preferences", data={kind: "sms" for kind in KINDS})
    assert response.status_code == 302 and preferences(employee) == before
    assert "nothing was changed" in page_text(client.get("/profile"))


def test_looking_at_a_failed_letter_reads_its_failure_notification(
        client, auth, employee, sending_mailbox, write_letter, run_queue, smtp_server):
    smtp_server.refuse("nobody@example.com")
    letter = write_letter(sending_mailbox, to="nobody@example.com")
    run_queue()
    notify(employee, "mailbox_assigned", about="other@example.com")
    auth.login(employee)
    assert bell(client.get("/outbox")) == 2
    client.get(f"/letters/{letter.id}")  # fetched (a prefetcher could): nothing read yet
    assert bell(client.get("/outbox")) == 2
    client.post(f"/letters/{letter.id}/seen", headers={"HX-Request": "true"})  # the page, once on screen
    assert bell(client.get("/outbox")) == 1
