"""The rule for which address a letter leaves from: a table of cases, properties over random companies,
and the queries."""
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.db import StatementCounter
from portal.sender import (
    Candidate,
    EmployeeRow,
    ProjectRow,
    decide,
    may_use,
    resolve_sender,
    sender_table,
    table_from_candidates,
)

ERIK = EmployeeRow(1, "Erik", "Sales")
OLGA = EmployeeRow(2, "Olga", "Support")
P1, P2 = ProjectRow(10, "Alpha"), ProjectRow(20, "Beta")
T0 = datetime.datetime(2024, 1, 1)


def box(id, scope="employee", owner=1, projects=(), default=False, active=True, tested=True,
        everyone=True, people=(), departments=(), age=None):
    """A mailbox as the rule sees it; a higher ``age`` means created later (defaults to the id)."""
    return Candidate(
        id=id, address=f"m{id}@example.com", scope=scope, owner_id=owner if scope == "employee" else None,
        projects=frozenset(projects), is_default=default, active=active, tested=tested,
        access_everyone=everyone, access_employees=frozenset(people),
        access_departments=frozenset(d.lower() for d in departments),
        created_at=T0 + datetime.timedelta(minutes=age if age is not None else id),
    )


def company(id, **kwargs):
    return box(id, scope="company", owner=None, **kwargs)


# (case, personal, company, project, expected mailbox id or None, level, conflict)
CASES = [
    ("nothing configured: nobody can send", [], [], P1, None, None, False),
    ("own address for every project", [box(1)], [], P1, 1, "employee", False),
    ("own Default beats own tied", [box(1, projects=[10]), box(2, default=True)], [], P1, 2, "employee", False),
    ("own tied beats own every", [box(1), box(2, projects=[10])], [], P1, 2, "employee", False),
    ("own address for another project only", [box(1, projects=[20])], [], P1, None, None, False),
    ("employee level beats a company Default", [box(1)], [company(2, default=True, projects=[10])], P1, 1,
     "employee", False),
    ("company when no own address serves the project", [box(1, projects=[20])], [company(2)], P1, 2, "company", False),
    ("company Default beats company tied", [], [company(1, projects=[10]), company(2, default=True)], P1, 2,
     "company", False),
    ("paused own address is skipped", [box(1, active=False)], [company(2)], P1, 2, "company", False),
    ("untested own address is skipped", [box(1, tested=False)], [company(2)], P1, 2, "company", False),
    ("someone else's personal address is never used", [box(1, owner=2)], [], P1, None, None, False),
    ("company address closed to the employee", [], [company(1, everyone=False, people=[2])], P1, None, None, False),
    ("company address shared by name", [], [company(1, everyone=False, people=[1])], P1, 1, "company", False),
    ("company address shared with the department", [], [company(1, everyone=False, departments=["sales"])], P1, 1,
     "company", False),
    ("two own addresses for every project tie: oldest wins", [box(2, age=5), box(1, age=9)], [], P1, 2,
     "employee", True),
    ("two company Defaults tie: oldest wins", [], [company(1, default=True, age=9), company(2, default=True, age=3)],
     P1, 2, "company", True),
    ("a letter outside projects uses only every-project addresses", [box(1, projects=[10]), box(2)], [], None, 2,
     "employee", False),
    ("paused company address: nobody", [], [company(1, active=False)], P1, None, None, False),
]


@pytest.mark.parametrize("case, personal, shared, project, expected, level, conflict", CASES, ids=[c[0] for c in CASES])
def test_rule_table(case, personal, shared, project, expected, level, conflict):
    decision = decide(ERIK, project, personal, shared)

    assert (decision.mailbox.id if decision.mailbox else None) == expected
    assert decision.level == level
    assert decision.conflict is conflict
    if expected is not None:
        assert decision.choices[0].id == expected
    else:
        assert decision.choices == []


def test_choices_list_every_usable_mailbox_resolved_first():
    decision = decide(ERIK, P1, [box(1), box(2, projects=[10])], [company(3), company(4, projects=[20])])

    assert [m.id for m in decision.choices] == [2, 1, 3]


def test_explanations_say_why_in_both_languages():
    chosen = decide(ERIK, P1, [box(1, projects=[20])], [company(2, default=True)])
    en, ru = chosen.explanation("en"), chosen.explanation("ru")
    assert "m2@example.com" in en and "Default" in en and "company" in en
    assert "m2@example.com" in ru and "По умолчанию" in ru and "компании" in ru

    tie = decide(ERIK, P1, [box(1), box(2)], [])
    assert "Conflict" in tie.explanation("en") and "m2@example.com" in tie.explanation("en")
    assert "Конфликт" in tie.explanation("ru")


def test_nobody_can_send_says_what_to_configure():
    decision = decide(ERIK, P1, [box(1, active=False), box(2, projects=[20])],
                      [company(3, everyone=False, people=[2]), company(4, tested=False)])
    en, ru = decision.explanation("en"), decision.explanation("ru")

    assert decision.nobody and decision.problem == "nobody"
    assert "Nobody can send" in en and "system address" in en
    assert "paused: m1@example.com" in en
    assert "not passed the account test: m4@example.com" in en
    assert "not shared with Erik: m3@example.com" in en
    assert "other projects only: m2@example.com" in en
    assert "My addresses" in en and "Outgoing messages" in en
    assert "Мои адреса" in ru and "Исходящие сообщения" in ru


def test_explanations_agree_with_how_many_addresses_they_name():
    one_tie = decide(ERIK, P1, [box(1), box(2)], [])
    two_ties = decide(ERIK, P1, [box(1), box(2), box(3)], [])
    assert "Conflict: m2@example.com matches just as well" in one_tie.explanation("en")
    assert "Conflict: m2@example.com, m3@example.com match just as well" in two_ties.explanation("en")
    assert "m2@example.com подходит так же" in one_tie.explanation("ru")
    assert "m2@example.com, m3@example.com подходят так же" in two_ties.explanation("ru")

    def paused(count):
        return decide(ERIK, P1, [box(number, active=False) for number in range(1, count + 1)], [])

    assert "1 suitable address is paused: m1@example.com." in paused(1).explanation("en")
    assert "2 suitable addresses are paused" in paused(2).explanation("en")
    # Russian has three forms: 1 (and 21) адрес, 2–4 адреса, 5–20 адресов.
    assert "1 подходящий адрес приостановлен: m1@example.com." in paused(1).explanation("ru")
    assert "3 подходящих адреса приостановлены" in paused(3).explanation("ru")
    assert "5 подходящих адресов приостановлены" in paused(5).explanation("ru")
    assert "21 подходящий адрес приостановлен" in paused(21).explanation("ru")
    assert "У сотрудника Erik 1 собственный адрес, настроенный только для других проектов: m1@example.com." in (
        decide(ERIK, P1, [box(1, projects=[20])], []).explanation("ru"))
    elsewhere = decide(ERIK, P1, [box(number, projects=[20]) for number in range(1, 22)], []).explanation("ru")
    assert "У сотрудника Erik 21 собственный адрес, настроенный только для других проектов" in elsewhere
    closed = decide(ERIK, P1, [], [company(number, everyone=False) for number in range(1, 23)]).explanation("ru")
    assert "22 адреса компании подходят, но не открыты сотруднику Erik" in closed


# ---------------------------------------------------------------- properties over random companies

@st.composite
def companies(draw):
    employees = [EmployeeRow(i, f"E{i}", draw(st.sampled_from(["Sales", "Support", ""])))
                 for i in range(1, draw(st.integers(1, 4)) + 1)]
    projects = [ProjectRow(10 * i, f"P{i}") for i in range(1, draw(st.integers(1, 3)) + 1)]
    project_ids = [p.id for p in projects]
    mailboxes = []
    for number in range(1, draw(st.integers(0, 12)) + 1):
        scope = draw(st.sampled_from(["employee", "company"]))
        mailboxes.append(Candidate(
            id=number,
            address=f"m{number}@example.com",
            scope=scope,
            owner_id=draw(st.sampled_from([e.id for e in employees])) if scope == "employee" else None,
            projects=frozenset(draw(st.lists(st.sampled_from(project_ids), max_size=2))),
            is_default=draw(st.booleans()),
            active=draw(st.booleans()),
            tested=draw(st.booleans()),
            access_everyone=draw(st.booleans()),
            access_employees=frozenset(draw(st.lists(st.sampled_from([e.id for e in employees]), max_size=2))),
            access_departments=frozenset(draw(st.lists(st.sampled_from(["sales", "support"]), max_size=1))),
            created_at=T0 + datetime.timedelta(minutes=draw(st.integers(0, 5))),
        ))
    return employees, projects, mailboxes


def _split(employee, mailboxes):
    personal = [m for m in mailboxes if m.scope == "employee" and m.owner_id == employee.id]
    shared = [m for m in mailboxes if m.scope == "company"]
    return personal, shared


@settings(max_examples=150, deadline=None)
@given(companies())
def test_properties_of_the_rule(company_data):
    employees, projects, mailboxes = company_data
    for employee in employees:
        personal, shared = _split(employee, mailboxes)
        for project in projects + [None]:
            decision = decide(employee, project, mailboxes, mailboxes)
            pid = project.id if project else None
            # The result is always among the choices, first.
            if decision.mailbox is not None:
                assert decision.choices[0] is decision.mailbox
            else:
                assert decision.choices == []
            # Paused, untested, other people's and closed mailboxes are never chosen nor offered.
            for choice in decision.choices:
                assert choice.active and choice.tested and choice.serves(pid) and choice.open_to(employee)
                assert may_use(employee, choice, project)
            # An applicable personal mailbox always beats every company one.
            applicable = [m for m in personal if m.active and m.tested and m.serves(pid)]
            if applicable:
                assert decision.level == "employee" and decision.mailbox.scope == "employee"
                assert decision.mailbox.owner_id == employee.id
            elif decision.mailbox is not None:
                assert decision.level == "company"
            # Nobody can send only when nothing usable serves the project.
            usable_company = [m for m in shared if m.active and m.tested and m.serves(pid) and m.open_to(employee)]
            assert (decision.mailbox is None) == (not applicable and not usable_company)
            # The same input always gives the same answer, in whatever order the rows come.
            again = decide(employee, project, list(reversed(mailboxes)), list(reversed(mailboxes)))
            assert again.mailbox == decision.mailbox and again.conflict == decision.conflict
            assert [m.id for m in again.choices] == [m.id for m in decision.choices]
            assert decision.explanation("ru") and decision.explanation("en")


@settings(max_examples=100, deadline=None)
@given(companies())
def test_the_grid_agrees_with_one_decision_at_a_time(company_data):
    employees, projects, mailboxes = company_data
    table = table_from_candidates(employees, projects, mailboxes)
    for employee in employees:
        for project in projects:
            single = decide(employee, project, mailboxes, mailboxes)
            cell = table.cell(employee, project)
            assert cell.mailbox == single.mailbox and cell.conflict == single.conflict
            assert cell.explanation("en") == single.explanation("en")


# ---------------------------------------------------------------- against the database

def test_resolve_sender_reads_rows_in_two_queries(app, employee, other_employee, make_project, make_mailbox):
    alpha, beta = make_project("Alpha"), make_project("Beta")
    make_mailbox(address="sales@example.com", projects=[alpha], is_default=True)
    make_mailbox(address="closed@example.com", access_everyone=False, access_employees=[other_employee])
    own = make_mailbox(employee, address="erik@example.com", projects=[beta])

    with StatementCounter() as queries:
        in_alpha = resolve_sender(employee, alpha)
    with StatementCounter() as more:
        in_beta = resolve_sender(employee, beta)

    assert queries.count <= 2 and more.count <= 2
    assert in_alpha.mailbox.address == "sales@example.com" and in_alpha.level == "company"
    assert [m.address for m in in_alpha.choices] == ["sales@example.com"]
    assert in_beta.mailbox.id == own.id and in_beta.level == "employee"
    assert [m.address for m in in_beta.choices] == ["erik@example.com"]
    # The row is a real Mailbox the letters queue can turn into settings.
    assert in_beta.mailbox.to_settings().smtp.password


def test_may_use_refuses_what_the_employee_may_not_pick(app, employee, other_employee, make_project, make_mailbox):
    alpha, beta = make_project("Alpha"), make_project("Beta")
    theirs = make_mailbox(other_employee)
    closed = make_mailbox(access_everyone=False, access_departments=["Support"])
    shared = make_mailbox(access_everyone=False, access_departments=["sales"], projects=[alpha])
    paused = make_mailbox(employee, active=False)

    assert not may_use(employee, theirs, alpha)
    assert not may_use(employee, closed, alpha)
    assert may_use(other_employee, closed, alpha)
    assert may_use(employee, shared, alpha) and not may_use(employee, shared, beta)
    assert not may_use(employee, paused, alpha)


def test_sender_table_uses_a_constant_number_of_queries(app, make_employee, make_project, make_mailbox):
    def build(employee_count, project_count):
        people = [make_employee() for _ in range(employee_count)]
        projects = [make_project() for _ in range(project_count)]
        for person in people:
            make_mailbox(person, projects=projects[:1])
        make_mailbox(projects=projects[1:2], is_default=True)
        with StatementCounter() as queries:
            table = sender_table(people, projects)
        return queries.count, table

    small, table = build(2, 2)
    large, _ = build(12, 6)
    assert small == large <= 4
    first = table.employees[0]
    assert table.cell(first, table.projects[0]).level == "employee"
    assert table.cell(first, table.projects[1]).level == "company"


def test_department_access_and_projects_come_back_from_one_union_query(app, employee, make_mailbox, make_project):
    alpha = make_project("Alpha")
    shared = make_mailbox(projects=[alpha], access_everyone=False, access_departments=["SALES"])

    assert resolve_sender(employee, alpha).mailbox.id == shared.id
    assert resolve_sender(employee, None).mailbox is None
