"""POST /api/v1/letters and GET /api/v1/letters/<id>: queued through the sender rule,
sent by the real queue to aiosmtpd."""
import pytest

from portal.models import Letter, LetterRecipient, Reply


def letter_body(**overrides):
    body = {"project": None, "to": ["Friend <friend@example.com>"], "cc": ["boss@example.com"],
            "subject": "Quarterly report", "body": "Hello,\n\nthe report is attached.\n"}
    body.update(overrides)
    return body


def test_a_letter_is_queued_from_the_address_the_rule_picks_and_then_sent(api_employee, sending_mailbox, run_queue,
                                                                          smtp_server):
    response = api_employee.post("/letters", json=letter_body())
    assert response.status_code == 202, response.get_json()
    queued = response.get_json()
    assert queued["state"] == "queued" and queued["mailbox"] == {"id": sending_mailbox.id,
                                                                 "address": smtp_server.username}
    assert queued["attempt_count"] == 0 and queued["problem"] is None and queued["replies"] == []
    assert [(r["address"], r["kind"]) for r in queued["recipients"]] == [("friend@example.com", "to"),
                                                                         ("boss@example.com", "cc")]
    assert response.headers["Location"].endswith(f"/api/v1/letters/{queued['id']}")
    run_queue()
    sent = api_employee.get(f"/letters/{queued['id']}").get_json()
    assert sent["state"] == "sent" and sent["sent_at"] and sent["next_attempt_at"] is None
    assert sent["attempt_count"] == 1 and sent["attempts"][0]["outcome"] == "sent"
    assert {r["status"] for r in sent["recipients"]} == {"accepted"}
    [message] = smtp_server.messages
    assert b"Quarterly report" in message.content and sorted(message.rcpt_tos) == ["boss@example.com",
                                                                                   "friend@example.com"]


def test_the_same_idempotency_key_returns_the_first_letter(api_employee, api_as, other_employee, sending_mailbox,
                                                           make_mailbox):
    first = api_employee.post("/letters", json=letter_body(idempotency_key="crm-4711"))
    again = api_employee.post("/letters", json=letter_body(idempotency_key="crm-4711", subject="Changed"))
    assert first.status_code == again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"] and again.get_json()["subject"] == "Quarterly report"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Letter.select().count() == 1
    # Keys belong to their author: someone else's identical key is another letter.
    make_mailbox(other_employee)
    theirs = api_as(other_employee).post("/letters", json=letter_body(idempotency_key="crm-4711"))
    assert theirs.status_code == 202 and theirs.get_json()["id"] != first.get_json()["id"]
    assert api_employee.post("/letters", json=letter_body()).get_json()["id"] not in (first.get_json()["id"],)
    assert Letter.select().count() == 3


def test_a_named_mailbox_the_caller_may_use_is_used(api_employee, employee, sending_mailbox, make_mailbox,
                                                    make_project):
    alpha = make_project("Alpha")
    company = make_mailbox(address="sales@example.com", projects=[alpha])
    response = api_employee.post("/letters", json=letter_body(project="Alpha", mailbox_id=company.id))
    assert response.status_code == 202
    assert response.get_json()["from"] == "sales@example.com"


@pytest.mark.parametrize("which", ["someone_elses", "closed_company", "other_project", "paused", "missing"])
def test_a_mailbox_the_caller_may_not_use_is_404_like_a_missing_one(api_employee, other_employee, make_mailbox,
                                                                    make_project, which):
    alpha, beta = make_project("Alpha"), make_project("Beta")
    mailbox_id = {
        "someone_elses": lambda: make_mailbox(other_employee).id,
        "closed_company": lambda: make_mailbox(access_everyone=False, access_departments=["Support"]).id,
        "other_project": lambda: make_mailbox(projects=[beta]).id,
        "paused": lambda: make_mailbox(active=False).id,
        "missing": lambda: 424242,
    }[which]()
    response = api_employee.post("/letters", json=letter_body(project=alpha.name, mailbox_id=mailbox_id))
    assert response.status_code == 404
    assert response.get_json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}
    assert Letter.select().count() == 0


def test_when_nobody_can_send_the_answer_is_422_with_the_explanation(api_employee, make_project):
    make_project("Alpha")
    response = api_employee.post("/letters", json=letter_body(project="Alpha"), headers={"Accept-Language": "ru"})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "nobody_can_send" and "отправить не с чего" in error["explanation"]
    assert Letter.select().count() == 0


@pytest.mark.parametrize("changes, field, message", [
    ({"project": "Nope"}, "project", "No such project."),
    ({"project": "Old"}, "project", "This project is archived: letters are no longer sent in it."),
    ({"to": ["not-an-address"]}, "to[0]", "“not-an-address” is not a valid e-mail address."),
    ({"to": ["a@example.com, b@example.com"]}, "to[0]", "Give one address per item."),
    ({"cc": ["", "x@example.com"]}, "cc[0]", "Give one address per item."),
    ({"subject": "   "}, "subject", "Write a subject."),
    ({"body": " \n "}, "body", "Write the text of the letter."),
])
def test_bad_letters_are_refused_by_field_and_nothing_is_queued(api_employee, sending_mailbox, make_project, changes,
                                                                field, message):
    make_project("Old", archived=True)
    response = api_employee.post("/letters", json=letter_body(**changes))
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"][field] == message
    assert Letter.select().count() == LetterRecipient.select().count() == 0


def test_a_project_may_be_named_by_id(api_employee, employee, make_mailbox, make_project):
    alpha = make_project("Alpha")
    make_mailbox(employee, projects=[alpha])
    response = api_employee.post("/letters", json=letter_body(project=alpha.id))
    assert response.status_code == 202 and response.get_json()["project"] == "Alpha"


def test_a_failed_letter_shows_its_problem_explained_with_the_servers_reply(api_employee, sending_mailbox,
                                                                            run_queue, smtp_server):
    letter_id = api_employee.post("/letters", json=letter_body(cc=[])).get_json()["id"]
    smtp_server.fail("RCPT", "550 5.1.1 User unknown")
    run_queue()
    failed = api_employee.get(f"/letters/{letter_id}").get_json()
    assert failed["state"] == "failed"
    assert failed["problem"]["code"] == "recipient_unknown"
    assert "User unknown" in failed["problem"]["server_reply"] and failed["problem"]["smtp_code"] == 550
    assert failed["problem"]["explanation"] and failed["attempts"][0]["problem"]["code"] == "recipient_unknown"
    russian = api_employee.get(f"/letters/{letter_id}", headers={"Accept-Language": "ru"}).get_json()
    assert russian["problem"]["explanation"] != failed["problem"]["explanation"]


def test_replies_come_with_the_letter(api_employee, sending_mailbox, write_letter):
    letter = write_letter(sending_mailbox)
    Reply.create(letter=letter, mailbox=sending_mailbox, message_id="<r1@example.com>",
                 sender="Friend <friend@example.com>", subject="Re: Quarterly report", body_text="Thanks!",
                 attachments_json='[{"name": "notes.pdf", "size": 1234}]')
    found = api_employee.get(f"/letters/{letter.id}").get_json()
    assert found["replies"] == [{"id": found["replies"][0]["id"], "from": "Friend <friend@example.com>",
                                 "subject": "Re: Quarterly report", "date": None, "text": "Thanks!",
                                 "attachments": [{"name": "notes.pdf", "size": 1234}]}]


def test_someone_elses_letter_is_404_and_an_admin_sees_it(api_as, api_admin, other_employee, sending_mailbox,
                                                          write_letter):
    letter = write_letter(sending_mailbox)
    other = api_as(other_employee)
    assert other.get(f"/letters/{letter.id}").get_json() == other.get("/letters/999999").get_json()
    assert other.get(f"/letters/{letter.id}").status_code == 404
    assert api_admin.get(f"/letters/{letter.id}").get_json()["id"] == letter.id


def test_the_queue_s_own_problems_are_explained_in_the_api_as_on_the_page(api_employee, sending_mailbox,
                                                                          write_letter, run_queue):
    # A paused mailbox holds its letters; the API used to call that "an unexpected answer".
    letter = write_letter(sending_mailbox)
    sending_mailbox.active = False  # paused after the letter was written
    sending_mailbox.save()
    run_queue()

    shown = api_employee.get(f"/letters/{letter.id}").get_json()
    [held] = [a for a in shown["attempts"] if a["problem"]]
    assert held["problem"]["code"] == "mailbox_paused"
    assert held["problem"]["title"] == "The address is paused"
    assert "unexpected" not in held["problem"]["title"]
