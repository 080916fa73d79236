"""My profile: every employee's own name, language and password."""
import pytest

from portal.models import Employee
from tests.conftest import PASSWORD, page_text

NEW = "a brand new passphrase"


def test_every_signed_in_employee_has_a_profile(as_employee):
    text = page_text(as_employee.get("/profile"))
    assert "My profile" in text and "erik@example.com" in text


def test_change_name_and_language_applies_at_once(as_employee, employee):
    response = as_employee.post("/profile", data={"name": "Erik E.", "language": "ru"})
    assert response.status_code == 302
    page = as_employee.get("/profile")
    assert '<html lang="ru">' in page.get_data(as_text=True)
    assert "Мой профиль" in page_text(page)
    assert Employee.get_by_id(employee.id).name == "Erik E."


def test_empty_name_refused(as_employee, employee):
    response = as_employee.post("/profile", data={"name": "  ", "language": ""})
    assert 'id="name-error"' in response.get_data(as_text=True)
    assert Employee.get_by_id(employee.id).name == "Erik Employee"


def test_over_long_and_control_character_names_refused(as_employee, employee):
    assert "At most 255 characters." in page_text(as_employee.post("/profile",
                                                                   data={"name": "x" * 256, "language": ""}))
    assert "control characters" in page_text(as_employee.post("/profile", data={"name": "a\x1bb", "language": ""}))
    assert Employee.get_by_id(employee.id).name == "Erik Employee"


def test_change_password(as_employee, employee, auth):
    response = as_employee.post(
        "/profile/password",
        data={"current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW},
    )
    assert response.status_code == 302
    assert "Your password is changed." in page_text(as_employee.get("/profile"))
    auth.logout()
    assert auth.login(employee).status_code == 200  # the old one no longer works
    assert auth.login(employee, NEW).status_code == 302


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"current_password": "wrong", "new_password": NEW, "confirm_password": NEW}, "current_password",
         "The current password is wrong."),
        ({"current_password": PASSWORD, "new_password": "short", "confirm_password": "short"}, "new_password",
         "At least 10 characters."),
        ({"current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW + "!"}, "confirm_password",
         "The two passwords differ."),
    ],
)
def test_password_change_refusals(as_employee, employee, data, field, message):
    response = as_employee.post("/profile/password", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and f'id="{field}-error"' in html and message in page_text(response)
    assert NEW not in html and PASSWORD not in html  # passwords are never echoed back
    assert Employee.get_by_id(employee.id).check_password(PASSWORD)


def test_a_password_change_signs_out_every_other_browser(another_browser, as_employee, employee):
    laptop = another_browser(employee)
    phone = another_browser(employee, remember=True)
    as_employee.post("/profile/password", data={"current_password": PASSWORD, "new_password": NEW,
                                                "confirm_password": NEW})
    assert laptop.get("/").status_code == 302 and phone.get("/").status_code == 302
    assert as_employee.get("/profile").status_code == 200  # the browser that changed it stays signed in


def test_the_profile_says_on_how_many_browsers_one_is_signed_in(another_browser, as_employee, employee):
    another_browser(employee)
    assert "You are signed in on 2 browsers, this one included." in page_text(as_employee.get("/profile"))


def test_sign_out_everywhere_ends_every_session(another_browser, as_employee, employee):
    laptop = another_browser(employee)
    phone = another_browser(employee, remember=True)
    response = as_employee.post("/profile/sign-out-everywhere")
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in"
    for browser in (as_employee, laptop, phone):
        assert browser.get("/").status_code == 302
    assert "You have signed out on every browser." in page_text(as_employee.get("/sign-in"))


def test_sign_out_everywhere_needs_the_form_token(another_browser, as_employee, employee):
    laptop = another_browser(employee)
    assert as_employee.post("/profile/sign-out-everywhere", csrf=False).status_code == 400
    assert laptop.get("/").status_code == 200
