"""New letter, the Outbox and a letter's page, as people use them."""
import pytest

from portal.models import Contact, Letter, LetterRecipient, Reply
from tests.conftest import page_text


def _form(client, **overrides):
    """The New letter form as the page fills it, with the person's changes."""
    import re

    html = client.get("/letters/new" + overrides.pop("query", "")).get_data(as_text=True)
    token = re.search(r'name="submit_token" type="hidden" value="([^"]+)"', html).group(1)
    chosen = re.search(r'<option selected value="(\d+)"', html)
    data = {"submit_token": token, "project": "", "mailbox": chosen.group(1) if chosen else "",
            "to": "Friend <friend@example.com>", "cc": "", "subject": "Hello", "body": "Dear friend,\nhello."}
    data.update(overrides)
    return data


def test_new_letter_preselects_the_resolved_address_with_its_explanation(as_employee, sending_mailbox):
    page = as_employee.get("/letters/new")
    text = page_text(page)
    assert page.status_code == 200
    assert "Erik at Work &lt;sender@example.com&gt;" in text
    assert "Why this address?" in text and "own address" in text
    assert 'id="send-letter"' in page.get_data(as_text=True)


def test_when_nobody_can_send_the_page_says_why_and_offers_no_send_button(as_employee):
    page = as_employee.get("/letters/new")
    html = page.get_data(as_text=True)
    assert "Nobody can send this letter yet." in page_text(page)
    assert "Nobody can send Erik Employee’s letters outside a project" in page_text(page)
    assert 'id="send-letter"' not in html


def test_sending_queues_the_letter_and_shows_it_at_once(as_employee, sending_mailbox):
    data = _form(as_employee, subject="Offer", body="Price list <attached>.")
    response = as_employee.post("/letters/new", data=data, follow_redirects=True)
    assert response.status_code == 200
    [letter] = Letter.select()
    assert letter.state == "queued" and letter.mailbox_id == sending_mailbox.id
    text = page_text(response)
    assert "The letter is in the queue." in text and "Queued" in text and "Price list &lt;attached&gt;." in text
    assert 'hx-trigger="every 2s"' in response.get_data(as_text=True)


def test_a_double_click_or_replayed_post_makes_one_letter(as_employee, sending_mailbox):
    data = _form(as_employee)
    first = as_employee.post("/letters/new", data=data)
    second = as_employee.post("/letters/new", data=data)
    assert Letter.select().count() == 1
    assert first.headers["Location"] == second.headers["Location"]


@pytest.mark.parametrize("field,value", [
    ("subject", "Hello\r\nBcc: victim@example.com"),
    ("subject", "Hello\nBcc: victim@example.com"),
    ("subject", "Hello\x00"),
    ("subject", "Hello\u2028Bcc: victim@example.com"),
    ("to", "friend@example.com\r\nBcc: victim@example.com"),
    ("to", "Friend\u2028 <friend@example.com>"),
    ("cc", "a@example.com\x00"),
])
def test_header_injection_is_refused_with_a_message_and_nothing_is_queued(as_employee, sending_mailbox, field, value):
    response = as_employee.post("/letters/new", data=_form(as_employee, **{field: value}))
    assert response.status_code == 200
    assert "single line" in page_text(response)
    assert Letter.select().count() == 0


def test_a_display_name_with_a_line_break_is_refused(as_employee, sending_mailbox):
    sending_mailbox.display_name = "Erik\r\nBcc: victim@example.com"
    sending_mailbox.save()
    response = as_employee.post("/letters/new", data=_form(as_employee))
    assert "display name" in page_text(response) and Letter.select().count() == 0


def test_an_address_the_employee_may_not_use_is_refused(as_employee, sending_mailbox, make_mailbox, other_employee):
    foreign = make_mailbox(other_employee)
    response = as_employee.post("/letters/new", data=_form(as_employee, mailbox=str(foreign.id)))
    assert "Choose the address" in page_text(response) or "may not send" in page_text(response)
    assert Letter.select().count() == 0


def test_typed_addresses_can_be_saved_as_contacts(as_employee, sending_mailbox):
    as_employee.post("/letters/new", data=_form(as_employee, to="Ivan Petrov <ivan@example.com>",
                                                cc="anna@example.org", save_contacts="y"))
    assert sorted((c.name, c.email) for c in Contact.select()) == [("", "anna@example.org"),
                                                                   ("Ivan Petrov", "ivan@example.com")]


def test_other_people_s_letters_answer_404(client, auth, other_employee, sending_mailbox, write_letter):
    letter = write_letter(sending_mailbox)
    auth.login(other_employee)
    assert client.get(f"/letters/{letter.id}").status_code == 404
    assert client.post(f"/letters/{letter.id}/cancel").status_code == 404
    assert "Quarterly report" not in page_text(client.get("/outbox"))


def test_admins_see_every_letter_and_filter_it(client, auth, admin, sending_mailbox, write_letter, run_queue,
                                               smtp_server):
    sent = write_letter(sending_mailbox, subject="Went out")
    run_queue()
    write_letter(sending_mailbox, subject="Still queued")
    auth.login(admin)
    everything = page_text(client.get("/outbox"))
    assert "Went out" in everything and "Still queued" in everything
    only_sent = client.get("/outbox?state=sent", headers={"HX-Request": "true"})
    assert "Went out" in page_text(only_sent) and "Still queued" not in page_text(only_sent)
    assert 'hx-trigger="every 2s"' not in only_sent.get_data(as_text=True)  # nothing in flight: no polling
    by_mailbox = page_text(client.get(f"/outbox?mailbox={sending_mailbox.id}&employee={sent.author_id}"))
    assert "Went out" in by_mailbox


def test_the_outbox_polls_while_letters_are_pending_and_stops_after(as_employee, sending_mailbox, write_letter,
                                                                    run_queue, smtp_server):
    write_letter(sending_mailbox)
    pending = as_employee.get("/outbox", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in pending and "Queued" in pending
    run_queue()
    done = as_employee.get("/outbox", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'hx-trigger="every 2s"' not in done and "Sent" in done


def test_a_failed_letter_is_explained_in_russian_with_the_server_reply_and_badged(
        as_employee, employee, sending_mailbox, write_letter, run_queue, smtp_server):
    employee.language = "ru"
    employee.save()
    letter = write_letter(sending_mailbox, to="nobody@example.com")
    smtp_server.fail("RCPT", "550 5.1.1 <nobody@example.com>: User unknown")
    run_queue()

    outbox = page_text(as_employee.get("/outbox"))
    assert "Адрес получателя не существует" in outbox or "не существует" in outbox
    assert "550 5.1.1" in outbox
    assert "Исходящие" in outbox and 'nav-badge' in as_employee.get("/outbox").get_data(as_text=True)

    page = page_text(as_employee.get(f"/letters/{letter.id}"))
    assert "550 5.1.1" in page and "nobody@example.com" in page
    # The page, once shown, tells the portal its failure was seen (a POST): that clears the badge.
    assert 'nav-badge' in as_employee.get("/outbox").get_data(as_text=True)
    answer = as_employee.post(f"/letters/{letter.id}/seen", headers={"HX-Request": "true"})
    # The answer is the navigation's counts, swapped into the page on screen: the badge goes there, not on the next.
    assert answer.status_code == 200 and '<span id="nav-outbox-count" hx-swap-oob="true"></span>' in \
        answer.get_data(as_text=True)
    assert 'nav-badge' not in as_employee.get("/outbox").get_data(as_text=True)


def test_a_get_of_a_failed_letter_marks_nothing_seen_and_the_page_posts_it(
        as_employee, employee, sending_mailbox, write_letter, run_queue, smtp_server):
    """A link prefetcher, or an <img src> on another page, must not mark the author's failed letter seen."""
    from portal.models import Notification

    letter = write_letter(sending_mailbox, to="nobody@example.com", subject="Offer")
    smtp_server.fail("RCPT", "550 5.1.1 <nobody@example.com>: User unknown")
    run_queue()
    assert Notification.select().where(Notification.read_at.is_null()).count() == 1
    html = as_employee.get(f"/letters/{letter.id}").get_data(as_text=True)
    assert Letter.needing_attention(employee) == 1
    assert Notification.select().where(Notification.read_at.is_null()).count() == 1
    assert f'hx-post="/letters/{letter.id}/seen" hx-trigger="load"' in html
    assert as_employee.post(f"/letters/{letter.id}/seen", csrf=False).status_code == 400
    assert Letter.needing_attention(employee) == 1
    answer = as_employee.post(f"/letters/{letter.id}/seen")
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/letters/{letter.id}")
    assert Letter.needing_attention(employee) == 0
    assert Notification.select().where(Notification.read_at.is_null()).count() == 0
    assert "/seen" not in as_employee.get(f"/letters/{letter.id}").get_data(as_text=True)  # nothing left to mark


def test_retry_and_cancel_buttons(as_employee, sending_mailbox, write_letter, run_queue, smtp_server):
    letter = write_letter(sending_mailbox)
    assert as_employee.post(f"/letters/{letter.id}/cancel").status_code == 302
    assert Letter.get_by_id(letter.id).state == "cancelled"
    as_employee.post(f"/letters/{letter.id}/retry")
    assert Letter.get_by_id(letter.id).state == "queued"
    run_queue()
    as_employee.post(f"/letters/{letter.id}/cancel")
    assert Letter.get_by_id(letter.id).state == "sent"


def test_the_letter_page_shows_history_and_replies_and_answers_them(as_employee, sending_mailbox, write_letter,
                                                                    run_queue, smtp_server):
    letter = write_letter(sending_mailbox)
    run_queue()
    reply = Reply.create(letter=letter, message_id="<r1@example.com>", sender="Friend <friend@example.com>",
                         subject="Re: Quarterly report", body_text="Thanks!",
                         attachments_json='[{"name": "scan.pdf", "size": 2048, "type": "application/pdf"}]')
    Letter.update(reply_count=1).where(Letter.id == letter.id).execute()
    text = page_text(as_employee.get(f"/letters/{letter.id}"))
    assert "Accepted by the server" in text and "250" in text
    assert "Thanks!" in text and "scan.pdf" in text and "2.0 kB" in text
    assert "1 reply" in page_text(as_employee.get("/outbox"))

    answer = as_employee.get(f"/letters/new?reply={reply.id}").get_data(as_text=True)
    assert "Re: Quarterly report" in answer and 'value="&lt;r1@example.com&gt;"' in answer
    data = _form(as_employee, query=f"?reply={reply.id}", to="friend@example.com", subject="Re: Quarterly report",
                 in_reply_to="<r1@example.com>", references=f"{letter.message_id} <r1@example.com>")
    as_employee.post("/letters/new", data=data)
    answer_letter = Letter.select().order_by(Letter.id.desc()).first()
    assert answer_letter.in_reply_to == "<r1@example.com>"
    assert letter.message_id in answer_letter.references
    assert "In-Reply-To: <r1@example.com>" in answer_letter.raw_message


def test_the_sender_fragment_follows_the_project(as_employee, sending_mailbox, make_project):
    project = make_project("Apollo")
    fragment = as_employee.get(f"/letters/new/sender?project={project.id}", headers={"HX-Request": "true"})
    html = fragment.get_data(as_text=True)
    assert "sender@example.com" in html and 'hx-swap-oob="true"' in html and 'id="send-letter"' in html


def test_a_quoted_display_name_with_a_comma_is_one_recipient(as_employee, sending_mailbox, run_queue, smtp_server):
    import email
    from email import policy as email_policy

    response = as_employee.post("/letters/new", data=_form(
        as_employee, to='"Doe, John" <j@example.com>; "Smith; Ann" <ann@example.org>'))

    assert response.status_code == 302, page_text(response)
    [letter] = Letter.select()
    assert [(r.name, r.address) for r in letter.recipients.order_by(LetterRecipient.id)] == [
        ("Doe, John", "j@example.com"), ("Smith; Ann", "ann@example.org")]
    assert "Doe, John" in page_text(as_employee.get("/outbox"))
    run_queue()
    [received] = smtp_server.messages
    assert sorted(received.rcpt_tos) == ["ann@example.org", "j@example.com"]
    to = email.message_from_bytes(received.content, policy=email_policy.default)["To"]
    assert [(a.display_name, a.addr_spec) for a in to.addresses] == [("Doe, John", "j@example.com"),
                                                                     ("Smith; Ann", "ann@example.org")]


@pytest.mark.parametrize("value", ['"Doe, John" <j@example.com>\r\nBcc: victim@example.com',
                                   '"Doe,\u2028John" <j@example.com>', '"Doe, John\x00" <j@example.com>'])
def test_a_quoted_name_is_still_refused_with_a_line_break_or_nul(as_employee, sending_mailbox, value):
    response = as_employee.post("/letters/new", data=_form(as_employee, to=value))
    assert "single line" in page_text(response) and Letter.select().count() == 0


def test_an_unquoted_name_with_a_comma_is_refused_naming_the_bad_part(as_employee, sending_mailbox):
    response = as_employee.post("/letters/new", data=_form(as_employee, to="Doe, John <j@example.com>"))
    assert "“Doe” is not a valid e-mail address." in page_text(response) and Letter.select().count() == 0


@pytest.mark.parametrize("kind", ["archived", "unknown"])
def test_an_archived_or_unknown_project_is_refused_beside_the_project_field(kind, as_employee, sending_mailbox,
                                                                            make_project):
    project = make_project("Old contract")
    if kind == "archived":
        project.archived = True
        project.save()
        value = str(project.id)
    else:
        value = "987654"

    response = as_employee.post("/letters/new", data=_form(as_employee, project=value))

    assert response.status_code == 200 and Letter.select().count() == 0
    html = response.get_data(as_text=True)
    error = "This project is archived or does not exist. Choose another project."
    assert error in page_text(response)
    # Beside the project field: after its select, before the next field.
    assert html.index('name="project"') < html.index(error) < html.index('name="mailbox"')


@pytest.mark.parametrize("field,next_field", [("to", "cc"), ("cc", "subject")])
def test_a_non_latin_name_before_the_at_is_refused_beside_its_field(as_employee, sending_mailbox, field, next_field):
    response = as_employee.post("/letters/new", data=_form(as_employee, **{field: "юзер@example.com"}))

    assert response.status_code == 200 and Letter.select().count() == 0
    html = response.get_data(as_text=True)
    error = "has letters other than Latin before the @"
    assert error in page_text(response) and "could not be built" not in page_text(response)
    assert html.index(f'name="{field}"') < html.index(error) < html.index(f'name="{next_field}"')


def test_a_letter_every_recipient_refused_is_not_retried_into_a_false_sent(as_employee, sending_mailbox,
                                                                           write_letter, run_queue, smtp_server):
    letter = write_letter(sending_mailbox, to="nobody@example.com")
    smtp_server.refuse("nobody@example.com", "550 5.1.1 <nobody@example.com>: User unknown")
    run_queue()
    assert Letter.get_by_id(letter.id).state == "failed"

    outbox = as_employee.get("/outbox")
    assert "Refused by every recipient: write a new letter" in page_text(outbox)
    assert f"/letters/{letter.id}/retry" not in outbox.get_data(as_text=True)
    page = as_employee.get(f"/letters/{letter.id}")
    assert "Every recipient refused this letter" in page_text(page)
    assert f"/letters/{letter.id}/retry" not in page.get_data(as_text=True)

    answer = as_employee.post(f"/letters/{letter.id}/retry", follow_redirects=True)  # a stale page's button
    assert "would change nothing" in page_text(answer)
    run_queue.later(minutes=5)
    run_queue()
    refused = Letter.get_by_id(letter.id)
    assert refused.state == "failed" and refused.attempts == 1 and smtp_server.messages == []


def test_a_queued_letter_with_nobody_left_to_send_to_follows_its_recipients(sending_mailbox, write_letter,
                                                                            run_queue, smtp_server):
    refused = write_letter(sending_mailbox, to="nobody@example.com")
    mixed = write_letter(sending_mailbox, to="ann@example.com, nobody@example.com")
    # As a retry queued before it was refused would leave them: every recipient has answered already.
    LetterRecipient.update(status="refused", smtp_code=550).where(
        LetterRecipient.address == "nobody@example.com").execute()
    LetterRecipient.update(status="accepted").where(LetterRecipient.address == "ann@example.com").execute()

    run_queue()

    assert smtp_server.messages == []
    failed = Letter.get_by_id(refused.id)
    assert failed.state == "failed" and failed.problem_code == "all_refused" and failed.attempts == 0
    assert Letter.get_by_id(mixed.id).state == "sent"


@pytest.mark.parametrize("beating", [False, True])
def test_an_admins_outbox_asks_for_the_workers_heartbeat_once(client, auth, admin, employee, write_letter,
                                                              make_mailbox, beating):
    """The Outbox's "no worker" line and the admins' banner share one look at the heartbeats per page."""
    from portal.db import StatementCounter
    from portal.health import beat

    write_letter(make_mailbox(employee, address="erik@example.com"), subject="Waiting")
    if beating:
        beat("host-a:1")
    auth.login(admin)
    client.get("/outbox")  # warm: sessions, templates
    with StatementCounter() as counted:
        text = page_text(client.get("/outbox"))
    assert ("No worker is running to send it" in text) is not beating
    assert ("Letters are waiting: no worker is running." in text) is not beating
    assert sum("worker_heartbeat" in sql.lower() for sql in counted.statements) == 1
