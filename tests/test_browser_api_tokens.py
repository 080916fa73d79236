"""API tokens in Chromium: create one on My profile, copy it once, use it, revoke it;
the admins' list; both languages."""
import pytest
from playwright.sync_api import expect

from portal.api.tokens import create_token
from portal.models import ApiToken

pytestmark = pytest.mark.browser


def test_create_use_and_revoke_a_token_on_my_profile(live_server, signed_in_page, employee, screenshot, app):
    page = signed_in_page(employee)
    page.goto(live_server + "/profile")
    assert page.get_by_text("No tokens yet.").is_visible()
    screenshot(page, "profile-empty")
    page.fill("#token-name", "Task tracker")
    page.press("#token-name", "Enter")  # keyboard only
    box = page.locator(".token-value")
    box.wait_for()
    token = box.input_value()
    assert token.startswith("ptk_")
    # htmx moves focus to the autofocus box once the swap settles; wait for it rather than race it.
    expect(box).to_be_focused()  # focus lands on it to copy
    page.get_by_role("button", name="Copy").click()
    assert page.get_by_role("button", name="Copied").is_visible()
    screenshot(page, "profile-token-shown-once")
    client = app.test_client(use_cookies=False)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    page.reload()
    assert page.locator(".token-value").count() == 0  # shown once
    assert "Task tracker" in page.locator(".token-table").inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke Task tracker").click()
    page.locator(".token-table .badge-fail").wait_for()
    screenshot(page, "profile-revoked")
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_missing_name_is_explained_beside_the_field(live_server, signed_in_page, employee, screenshot):
    page = signed_in_page(employee)
    page.goto(live_server + "/profile")
    page.click("text=Create token")
    page.locator("#token-name-error").wait_for()
    assert page.locator("#token-name").get_attribute("aria-invalid") == "true"
    screenshot(page, "profile-name-missing")
    assert ApiToken.select().count() == 0


def test_the_tokens_section_in_russian_at_phone_width(live_server, signed_in_page, make_employee, screenshot):
    person = make_employee(name="Ирина Петрова", email="irina@example.com", language="ru")
    for name in ("CRM", "Трекер задач", "Очень длинное название интеграции с системой учёта заказов клиентов"):
        create_token(person, name)
    page = signed_in_page(person)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server + "/profile")
    assert page.get_by_role("heading", name="API-токены").is_visible()
    screenshot(page, "profile-ru-phone")
    page.fill("#token-name", "Почта")
    page.click("text=Создать токен")
    page.locator(".token-value").wait_for()
    screenshot(page, "profile-ru-phone-token-shown")
    box = page.locator("#api-tokens").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, "the tokens section is wider than the phone"


def test_admins_see_every_token_and_create_one_for_anyone(live_server, signed_in_page, admin, make_employee,
                                                          screenshot):
    people = [make_employee(name=f"Person {n:02d}", email=f"person{n}@example.com") for n in range(12)]
    for person in people:
        create_token(person, f"CRM of {person.name}")
    row, _ = create_token(people[0], "Old integration")
    row.revoked_at = row.created_at
    row.save()
    page = signed_in_page(admin)
    page.goto(live_server + "/admin/api-tokens")
    screenshot(page, "admin-list")
    page.select_option("#token-owner", str(people[3].id))
    page.fill("#token-name", "Reports")
    page.click("#every-token button[type=submit]")
    page.locator(".token-value").wait_for()
    assert "person3@example.com" in page.locator(".token-once").inner_text()
    screenshot(page, "admin-created")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server + f"/admin/employees/{people[3].id}/api-tokens")
    screenshot(page, "admin-employee-phone")
    page.set_viewport_size({"width": 1280, "height": 800})
    admin.language = "ru"  # the pages follow the admin's own language
    admin.save()
    page.goto(live_server + "/admin/api-tokens")
    screenshot(page, "admin-list-ru")
