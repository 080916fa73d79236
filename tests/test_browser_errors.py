"""In Chromium: a form over one of the request limits gets the portal's page, inside the layout, saying which limit
it went over (in English and Russian, at 1366 and 390 px)."""
import pytest

from portal.models import Contact
from tests.fixtures.browser import assert_no_sideways_scroll
from tests.test_errors import WORDS

pytestmark = pytest.mark.browser

# What goes over each limit, added to the form by script before it is sent (no portal form has a thousand fields
# or a multipart text field, so a person only meets these with a page another program changed).
OVER = {
    "field": "form.insertAdjacentHTML('beforeend', '<textarea name=note></textarea>');"
             "form.querySelector('[name=note]').value = 'x'.repeat(600000);",
    "parts": "for (let n = 0; n <= 1000; n++) form.insertAdjacentHTML('beforeend', `<input type=hidden name=p${n}>`);",
    "whole": "form.querySelector('[name=notes]').value = 'x'.repeat(6 * 1024 * 1024);",
}


@pytest.mark.console_errors("413 (REQUEST ENTITY TOO LARGE)")  # the page itself answers 413, on purpose
@pytest.mark.parametrize(("limit", "language", "width"), [
    ("field", "en", 1366), ("parts", "ru", 1366), ("whole", "en", 1366), ("whole", "ru", 390), ("field", "ru", 390),
])
def test_a_form_over_a_limit_gets_the_portals_page_naming_it(limit, language, width, live_server, signed_in_page,
                                                             page, employee, tmp_path, screenshot):
    employee.language = language
    employee.save()
    page.set_viewport_size({"width": width, "height": 800})
    signed_in_page(employee)
    # The import form is the portal's multipart one (where the field and parts limits apply); the whole body's
    # limit applies to any form, here New contact with six megabytes pasted into its notes.
    form = "main form[method=post]"
    if limit == "whole":
        page.goto(live_server + "/contacts/new")
        page.fill(f"{form} [name=email]", "ann@client.example")
    else:
        page.goto(live_server + "/contacts/import")
        csv = tmp_path / "contacts.csv"
        csv.write_text("email\nann@client.example\n")
        page.set_input_files("input[type=file]", str(csv))
    page.locator(form).first.evaluate(f"form => {{ {OVER[limit]} }}")
    with page.expect_navigation():
        page.locator(f"{form} button[type=submit]").first.click()
    assert WORDS[limit, language] in " ".join(page.locator("main").inner_text().split())
    assert page.locator("header.site-header nav").count() == 1  # the layout, to go on from
    assert Contact.select().count() == 0
    assert_no_sideways_scroll(page)
    screenshot(page, f"form-over-the-{limit}-limit-{language}-{width}")
