"""GET /api/v1/senders/resolve: the sender rule's answer, for oneself or (admins) anyone; everything else is 404."""
import pytest


@pytest.fixture
def alpha(make_project):
    return make_project("Alpha")


def test_an_employee_resolves_their_own_sender_with_every_choice_and_why(api_employee, employee, alpha,
                                                                         make_mailbox):
    company = make_mailbox(address="sales@example.com", display_name="Sales")
    own = make_mailbox(employee, address="erik@work.example.com", display_name="Erik", projects=[alpha])
    answer = api_employee.get("/senders/resolve?project=Alpha")
    assert answer.status_code == 200
    found = answer.get_json()
    assert found["mailbox"] == {"id": own.id, "address": "erik@work.example.com", "display_name": "Erik",
                                "level": "employee"}
    assert [c["address"] for c in found["choices"]] == ["erik@work.example.com", "sales@example.com"]
    assert found["choices"][1]["level"] == "company" and found["choices"][1]["id"] == company.id
    assert found["conflict"] is False and found["reason"] == "employee.tied"
    assert "erik@work.example.com" in found["explanation"] and "Employee-level" in found["explanation"]


def test_the_project_may_be_named_by_id_and_the_employee_by_email(api_admin, employee, alpha, make_mailbox):
    make_mailbox(employee, address="erik@work.example.com")
    by_name = api_admin.get("/senders/resolve?employee=ERIK@example.com&project=alpha").get_json()
    by_id = api_admin.get(f"/senders/resolve?employee=erik@example.com&project={alpha.id}").get_json()
    assert by_name == by_id and by_name["mailbox"]["address"] == "erik@work.example.com"


def test_a_tie_is_reported_as_a_conflict(api_employee, employee, alpha, make_mailbox):
    make_mailbox(employee, address="first@example.com", projects=[alpha])
    make_mailbox(employee, address="second@example.com", projects=[alpha])
    found = api_employee.get("/senders/resolve?project=Alpha").get_json()
    assert found["conflict"] is True and found["mailbox"]["address"] == "first@example.com"
    assert "second@example.com" in found["explanation"]


def test_nobody_can_send_is_an_answer_not_an_error(api_employee, alpha):
    answer = api_employee.get("/senders/resolve?project=Alpha")
    assert answer.status_code == 200
    found = answer.get_json()
    assert found["mailbox"] is None and found["choices"] == [] and found["reason"] == "nobody"
    assert "Nobody can send" in found["explanation"]


def test_explanations_follow_accept_language_then_the_owners_language(api_as, make_employee, alpha):
    person = make_employee(language="ru")
    api = api_as(person)
    assert "Письма сотрудника" in api.get("/senders/resolve?project=Alpha").get_json()["explanation"]
    english = api.get("/senders/resolve?project=Alpha", headers={"Accept-Language": "en-GB"})
    assert "Nobody can send" in english.get_json()["explanation"]


@pytest.mark.parametrize("who, project", [
    ("olga@example.com", "Alpha"),  # someone else: an employee may ask only about themself
    ("nobody@example.com", "Alpha"),  # no such employee
    ("erik@example.com", "Beta"),  # no such project
    ("erik@example.com", "999999"),
    ("erik@example.com", "99999999999999999999999"),
])
def test_an_employee_asking_about_others_or_unknowns_gets_the_same_404(api_employee, other_employee, alpha,
                                                                       who, project):
    answer = api_employee.get(f"/senders/resolve?employee={who}&project={project}")
    assert answer.status_code == 404
    assert answer.get_json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}


def test_an_admin_may_ask_about_anyone(api_admin, other_employee, alpha, make_mailbox):
    make_mailbox(other_employee, address="olga@work.example.com")
    found = api_admin.get("/senders/resolve?employee=olga@example.com&project=Alpha").get_json()
    assert found["mailbox"]["address"] == "olga@work.example.com"


def test_the_project_is_required(api_employee):
    answer = api_employee.get("/senders/resolve")
    assert answer.status_code == 422
    assert answer.get_json()["error"]["fields"] == {"project": "This field is required."}
