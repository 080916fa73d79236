"""GET /api/v1/notifications: the token owner's notification centre as JSON, in the caller's language."""
from portal.models import Notification
from portal.notifications import mark_read, notify


def test_the_owner_gets_their_own_notifications_newest_first_with_links(api_as, employee, other_employee):
    old = notify(employee, "mailbox_assigned", about="erik@example.com", target="mailbox:4")
    new = notify(employee, "letter_failed", about="Offer", detail="recipient_unknown", target="letter:9")
    notify(other_employee, "mailbox_assigned", about="x@example.com")
    mark_read(employee, [old.id])

    answer = api_as(employee).get("/notifications")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["unread"] == 1
    assert [n["id"] for n in body["notifications"]] == [new.id, old.id]
    first = body["notifications"][0]
    assert first["kind"] == "letter_failed" and first["about"] == "Offer" and first["read_at"] is None
    assert first["text"] == "Your letter “Offer” could not be sent: The recipient address does not exist."
    assert first["link"] == "http://localhost/letters/9"
    assert body["notifications"][1]["link"] == "http://localhost/mailboxes/4/edit"
    assert body["notifications"][1]["read_at"] is not None


def test_only_unread_and_in_russian(api_as, employee):
    read = notify(employee, "mailbox_assigned", about="a@example.com")
    notify(employee, "mailbox_assigned", about="b@example.com")
    mark_read(employee, [read.id])
    body = api_as(employee).get("/notifications?unread=true", headers={"Accept-Language": "ru"}).get_json()
    assert [n["about"] for n in body["notifications"]] == ["b@example.com"]
    assert body["notifications"][0]["text"] == "Теперь вы можете отправлять письма с адреса b@example.com."


def test_reading_through_the_api_marks_nothing_and_bad_input_is_refused(api_as, employee):
    notify(employee, "mailbox_assigned", about="a@example.com")
    api = api_as(employee)
    assert api.get("/notifications").status_code == 200
    assert Notification.select().where(Notification.read_at.is_null()).count() == 1
    refused = api.get("/notifications?unread=yes")
    assert refused.status_code == 422 and "unread" in refused.get_json()["error"]["fields"]
    assert api.get("/notifications?everything=1").status_code == 422
    assert api_as(None).get("/notifications").status_code == 401
