"""The portal's own error pages: a form over the limits gets the portal's page in the reader's language (or JSON
under /api/), never Werkzeug's bare 413."""
import io

import pytest

from portal.models import Contact
from tests.conftest import page_text

FIELD_LIMIT_KB = 500_000 // 1024  # Flask's MAX_FORM_MEMORY_SIZE: one text field of a multipart form
WHOLE_LIMIT_KB = 5 * 1024  # PORTAL_MAX_REQUEST_BYTES: the whole body
PARTS_LIMIT = 1000  # Flask's MAX_FORM_PARTS: fields and files of one multipart form

# What a person reads for each limit, in English and Russian.
WORDS = {
    ("field", "en"): f"One field of the form was longer than {FIELD_LIMIT_KB} KB: nothing was saved.",
    ("field", "ru"): f"Одно из полей формы длиннее {FIELD_LIMIT_KB} КБ: ничего не сохранено.",
    ("parts", "en"): f"The form had more than {PARTS_LIMIT} fields and files: nothing was saved.",
    ("parts", "ru"): f"В форме больше {PARTS_LIMIT} полей и файлов: ничего не сохранено.",
    ("whole", "en"): f"The form was larger than {WHOLE_LIMIT_KB} KB in all: nothing was saved.",
    ("whole", "ru"): f"Форма больше {WHOLE_LIMIT_KB} КБ в сумме: ничего не сохранено.",
}


def over_the_limit(limit, **fields):
    """A multipart form's data that goes over one limit: a long text field, too many parts, or a large body."""
    if limit == "field":
        return {**fields, "name": "x" * 600_000}
    if limit == "parts":
        return {**fields, **{f"extra{number}": "x" for number in range(PARTS_LIMIT + 1)}}
    return {**fields, "padding": (io.BytesIO(b"x" * (6 * 1024 * 1024)), "padding.bin")}


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("limit", ["field", "parts", "whole"])
def test_a_form_over_a_limit_gets_the_portals_page_naming_that_limit(as_employee, employee, limit, language):
    employee.language = language
    employee.save()
    response = as_employee.post("/contacts/new", content_type="multipart/form-data",
                                data=over_the_limit(limit, email="friend@example.com"))
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert WORDS[limit, language] in page_text(response)
    assert '<nav' in html and 'class="site-header' in html  # the layout, with the navigation to go on from
    assert Contact.select().count() == 0


@pytest.mark.parametrize("limit", ["field", "parts", "whole"])
def test_an_htmx_form_over_a_limit_gets_the_notice_naming_that_limit(as_employee, limit):
    response = as_employee.post("/contacts/new", content_type="multipart/form-data",
                                data=over_the_limit(limit, email="friend@example.com"), headers={"HX-Request": "true"})
    assert response.status_code == 413 and response.headers["HX-Retarget"] == "#request-problem-text"
    assert WORDS[limit, "en"] in page_text(response) and "<nav" not in response.get_data(as_text=True)
    assert Contact.select().count() == 0


@pytest.mark.parametrize(("limit", "message"), [
    ("field", f"A form field was larger than {FIELD_LIMIT_KB} KB: nothing was saved."),
    ("parts", f"The form had more than {PARTS_LIMIT} parts: nothing was saved."),
    ("whole", f"The body was larger than {WHOLE_LIMIT_KB} KB: nothing was saved."),
])
def test_a_form_over_a_limit_under_the_api_prefix_is_answered_in_json(app, limit, message):
    # No API endpoint reads a form today; one that did (or the CSRF check that reads every form posted
    # outside the API blueprint) must still answer in JSON.
    app.add_url_rule("/api/v1/form-reader", "form_reader", lambda: "read", methods=["POST"])
    response = app.test_client().post("/api/v1/form-reader", content_type="multipart/form-data",
                                      data=over_the_limit(limit))
    assert response.status_code == 413 and response.is_json
    assert response.get_json()["error"] == {"code": "too_large", "message": message, "fields": {}}


@pytest.mark.parametrize("path", ["/api/v1/letters", "/api/v1/mailboxes"])
def test_an_api_request_over_the_limit_is_answered_in_json(api_employee, path):
    response = api_employee.client.post(path, data=b"x" * (6 * 1024 * 1024), headers=api_employee.headers(
        {"Content-Type": "application/json"}))
    assert response.status_code == 413 and response.is_json
    assert response.get_json()["error"]["code"] == "too_large"


def test_the_limit_named_is_the_one_the_request_went_over():
    from portal.errors import FormLimit, refused_form_limit

    config = {"MAX_CONTENT_LENGTH": 5 * 1024 * 1024, "MAX_FORM_MEMORY_SIZE": 500_000, "MAX_FORM_PARTS": 1000}
    assert refused_form_limit(config, 6 * 1024 * 1024) == FormLimit("whole body", 5 * 1024 * 1024)
    assert refused_form_limit(config, None) == FormLimit("whole body", 5 * 1024 * 1024)  # streamed, cut at the limit
    assert refused_form_limit(config, 700_000) == FormLimit("one field", 500_000)
    assert refused_form_limit(config, 120_000) == FormLimit("parts", 1000)  # no field can be that long in it
