"""Page or fragment: one helper decides, and answers vary on HX-Request."""
import re

import pytest


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({}, "home/index.html"),
        ({"HX-Request": "true"}, "home/partial/index.html"),
        ({"HX-Request": "true", "HX-Boosted": "true"}, "home/index.html"),
        ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, "home/index.html"),
    ],
)
def test_page_or_fragment(as_employee, rendered, headers, expected):
    response = as_employee.get("/", headers=headers)
    assert rendered[0] == expected
    assert response.headers["Vary"] == "HX-Request" or "HX-Request" in response.headers["Vary"]
    has_layout = "<html" in response.get_data(as_text=True)
    assert has_layout == (expected == "home/index.html")


def test_an_error_answers_htmx_with_a_notice_for_the_problem_region(as_admin, rendered):
    response = as_admin.get("/admin/employees/999999", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 404
    assert rendered[-1] == "partial/problem.html" and "<html" not in body
    assert "Not found." in body
    # htmx swaps no error answer into the request's target: these send it to the notice instead.
    assert response.headers["HX-Retarget"] == "#request-problem-text"
    assert response.headers["HX-Reswap"] == "innerHTML"
    # and nothing of the requesting element applies: not its hx-select, not its hx-push-url
    assert response.headers["HX-Reselect"] == "unset" and response.headers["HX-Push-Url"] == "false"


def test_the_same_error_without_htmx_is_a_whole_page(as_admin, rendered):
    response = as_admin.get("/admin/employees/999999")
    assert response.status_code == 404 and rendered[-1] == "errors.html"
    assert "HX-Retarget" not in response.headers


def test_an_expired_form_sent_by_htmx_says_so_in_the_notice(client):
    client.get("/sign-in")
    response = client.post("/language", data={"language": "ru"}, headers={"HX-Request": "true"}, csrf=False)
    assert response.status_code == 400 and response.headers["HX-Retarget"] == "#request-problem-text"
    assert "The form has expired." in response.get_data(as_text=True)


def test_every_page_carries_the_problem_notice_hidden_until_needed(client):
    body = client.get("/sign-in").get_data(as_text=True)
    notice = re.search(r'<div id="request-problem"[^>]*>', body).group(0)
    assert " hidden" in notice and 'role="alert"' in notice
    assert 'id="request-problem-text"' in body and "data-close-problem" in body
