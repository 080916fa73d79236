"""GET /api/v1/mailboxes/<id> tells the mailbox's health and its domain's deliverability (issue 16)."""
from portal import deliverability
from portal import mailbox_health as health
from portal.models import utcnow
from portal.models.health import MailboxHealth


def test_a_mailbox_answers_with_its_health_and_deliverability(api_employee, employee, make_mailbox, dns_server):
    mailbox = make_mailbox(employee, address="erik@example.ru", smtp_host="smtp.yandex.ru")
    MailboxHealth.create(mailbox=mailbox, last_check_at=utcnow(), last_check_ok=False, failed_checks=1,
                         problem_code="auth_failed", problem_stage="smtp.login", server_reply="535 5.7.8 bad")

    before = api_employee.get(f"/mailboxes/{mailbox.id}", headers={"Accept-Language": "ru"}).get_json()
    assert before["health"]["state"] == health.WARNING
    assert before["health"]["problem"]["code"] == "auth_failed" and before["health"]["last_check_at"].endswith("Z")
    assert before["health"]["problem"]["title"] == "Вход отклонён: неверный логин или пароль"
    assert before["deliverability"] is None  # DNS not asked yet: the API never waits on it

    dns_server.add_txt("example.ru", "v=spf1 -all")
    deliverability.mailbox_checklist(mailbox, dns_server.resolver())  # as the background check does
    after = api_employee.get(f"/mailboxes/{mailbox.id}").get_json()["deliverability"]

    assert after["domain"] == "example.ru" and after["ok"] is False
    spf = after["checks"][0]
    assert (spf["kind"], spf["ok"], spf["code"]) == ("spf", False, "spf_refuses")
    assert "does not authorise smtp.yandex.ru" in spf["text"]


def test_the_list_stays_as_it_was(api_employee, employee, make_mailbox):
    make_mailbox(employee)
    [listed] = api_employee.get("/mailboxes").get_json()["mailboxes"]
    assert "health" not in listed and "deliverability" not in listed
