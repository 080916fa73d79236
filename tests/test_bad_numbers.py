"""Absurd numbers in URLs and query strings are a plain 404 or the first page, never a server error."""
import pytest

HUGE = "99999999999999999999999"
BIG = str(10**18)

LISTS = ["/admin/employees", "/contacts", "/outbox", "/admin/mail/employees", "/admin/mail/senders",
         "/admin/mail/audit"]
QUERIES = ["page={n}", "project={n}", "mailbox={n}&employee={n}", "reply={n}"]
PATHS = ["/letters/{n}", "/mailboxes/{n}/edit", "/admin/mail/employees/{n}", "/admin/mail/senders/{n}/1",
         "/admin/employees/{n}", "/letters/new?project={n}", "/letters/new?reply={n}"]


@pytest.mark.parametrize("number", [HUGE, BIG, "-1", "abc"])
def test_lists_survive_absurd_query_numbers(as_admin, number):
    for url in LISTS:
        for query in QUERIES:
            response = as_admin.get(f"{url}?{query.format(n=number)}")
            assert response.status_code == 200, f"{url}?{query.format(n=number)}: {response.status_code}"


@pytest.mark.parametrize("number", [HUGE, BIG])
def test_absurd_ids_are_not_found(as_admin, number):
    for path in PATHS:
        response = as_admin.get(path.format(n=number))
        assert response.status_code in (200, 404), f"{path.format(n=number)}: {response.status_code}"
    for path in ("/mailboxes/{n}/pause", "/mailboxes/{n}/delete", "/letters/{n}/retry"):
        assert as_admin.post(path.format(n=number)).status_code == 404


def test_absurd_ids_answer_404_for_every_method_not_405(as_admin):
    # /mailboxes/<id>/edit has GET and POST rules; a refused id must not turn into "method not allowed".
    for method in ("GET", "POST"):
        response = as_admin.open(f"/mailboxes/{HUGE}/edit", method=method)
        assert response.status_code == 404, f"{method}: {response.status_code}"
