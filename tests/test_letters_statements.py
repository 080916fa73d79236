"""How many SQL statements storing one letter takes, page and API alike (issue 14, defect 6), counted at
peewee's level (every statement through ``execute_sql``; the driver's own BEGIN/COMMIT are not among them) on the
real database: SQLite, or PostgreSQL with PORTAL_TEST_POSTGRES=1.

Before: 8 statements for the page, 10 for the API (13 on the issue's PostgreSQL deployment, a version earlier).
The page needs 7: who is signed in; the addresses the rule offers and their projects and access (two); the
active projects for the form; the submit token's letter (a double click); the letter and its recipients. The API
needs 6: the token; the addresses and their scoping (two); the letter and its recipients; the recipients read back
for the answer.
"""
from portal.db import StatementCounter
from portal.models import Letter
from tests.test_letters_views import _form

PAGE_BUDGET = 7
API_BUDGET = 6


class Recorded(StatementCounter):
    """A StatementCounter that also keeps each statement, to say which ones went over the budget."""

    def __enter__(self):
        super().__enter__()
        self.statements = []
        counting = self.db.execute_sql

        def recording(sql, params=None, *args, **kwargs):
            self.statements.append(sql)
            return counting(sql, params, *args, **kwargs)

        self.db.execute_sql = recording
        return self

    def __str__(self):
        return "\n".join(f"{number}. {sql[:160]}" for number, sql in enumerate(self.statements, 1))


def test_post_letters_on_the_page_stays_within_its_statement_budget(as_employee, sending_mailbox):
    data = _form(as_employee, subject="Counted")
    with Recorded() as counted:
        response = as_employee.post("/letters/new", data=data)
    assert response.status_code == 302 and Letter.select().count() == 1
    assert counted.count <= PAGE_BUDGET, str(counted)


def test_post_letters_in_the_api_stays_within_its_statement_budget(api_employee, sending_mailbox):
    body = {"project": None, "to": ["Friend <friend@example.com>"], "subject": "Counted", "body": "Hello.\n"}
    assert api_employee.post("/letters", json=body).status_code == 202  # the token's first use notes the time
    with Recorded() as counted:
        response = api_employee.post("/letters", json=body)
    assert response.status_code == 202
    assert response.get_json()["attempts"] == [] and response.get_json()["replies"] == []
    assert [r["address"] for r in response.get_json()["recipients"]] == ["friend@example.com"]
    assert counted.count <= API_BUDGET, str(counted)
