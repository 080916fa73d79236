"""The portal's own error pages: a form over the limits gets the portal's page in the reader's language (or JSON
under /api/), never Werkzeug's bare 413."""
import io

import pytest

from portal.models import Contact
from tests.conftest import page_text

FIELD_LIMIT_KB = 500_000 // 1024  # Flask's MAX_FORM_MEMORY_SIZE: one text field of a multipart form


@pytest.mark.parametrize(("language", "words"), [
    ("en", f"The form was too large (over {FIELD_LIMIT_KB} KB): nothing was saved."),
    ("ru", f"Форма слишком большая (больше {FIELD_LIMIT_KB} КБ): ничего не сохранено."),
])
def test_a_form_field_over_the_memory_limit_gets_the_portals_page_and_saves_nothing(as_employee, employee,
                                                                                    language, words):
    employee.language = language
    employee.save()
    response = as_employee.post("/contacts/new", content_type="multipart/form-data",
                                data={"name": "x" * 600_000, "email": "friend@example.com"})
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert words in page_text(response)
    assert '<nav' in html and 'class="site-header' in html  # the layout, with the navigation to go on from
    assert Contact.select().count() == 0


def test_a_form_over_the_whole_request_limit_names_that_limit(as_employee):
    padding = (io.BytesIO(b"x" * (6 * 1024 * 1024)), "padding.bin")
    response = as_employee.post("/profile", data={"name": "Erik", "padding": padding},
                                content_type="multipart/form-data")
    assert response.status_code == 413
    assert "The form was too large (over 5120 KB): nothing was saved." in page_text(response)


def test_an_htmx_form_over_the_limit_gets_the_notice(as_employee):
    response = as_employee.post("/contacts/new", content_type="multipart/form-data", data={"name": "x" * 600_000},
                                headers={"HX-Request": "true"})
    assert response.status_code == 413 and response.headers["HX-Retarget"] == "#request-problem-text"
    assert f"The form was too large (over {FIELD_LIMIT_KB} KB)" in page_text(response)


@pytest.mark.parametrize("path", ["/api/v1/letters", "/api/v1/mailboxes"])
def test_an_api_request_over_the_limit_is_answered_in_json(api_employee, path):
    response = api_employee.client.post(path, data=b"x" * (6 * 1024 * 1024), headers=api_employee.headers(
        {"Content-Type": "application/json"}))
    assert response.status_code == 413 and response.is_json
    assert response.get_json()["error"]["code"] == "too_large"


def test_the_limit_named_is_the_one_the_request_went_over():
    from portal.errors import refused_form_limit

    config = {"MAX_CONTENT_LENGTH": 5 * 1024 * 1024, "MAX_FORM_MEMORY_SIZE": 500_000}
    assert refused_form_limit(config, 6 * 1024 * 1024) == 5 * 1024 * 1024
    assert refused_form_limit(config, 700_000) == 500_000
    assert refused_form_limit(config, None) == 500_000
