"""Account management → Directory in Chromium: preview through htmx, then sync, in English and Russian."""
import dataclasses

import pytest

from portal.directory import store_settings
from portal.models import Employee
from portal.secret_box import active_box


def configure(directory):
    store_settings(active_box(), dataclasses.asdict(directory.access()), "browser-test")


@pytest.mark.browser
@pytest.mark.parametrize("language, width", [("en", 1280), ("ru", 1280), ("en", 390)])
def test_preview_then_sync_in_the_browser(live_server, signed_in_page, make_employee, ldap_directory, screenshot,
                                          language, width):
    admin = make_employee(role="admin", language=language)
    configure(ldap_directory)
    ldap_directory.add(1001, mail="")
    page = signed_in_page(admin)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server + "/admin/directory")
    page.get_by_role("button", name="Preview the sync" if language == "en" else "Проверить без изменений").click()
    page.wait_for_selector("#directory-report")
    assert Employee.select().count() == 1
    assert "person1001" in page.inner_text("#directory-report")  # the entry without an e-mail, skipped
    screenshot(page, f"preview-{language}-{width}")
    page.get_by_role("button", name="Sync now" if language == "en" else "Синхронизировать сейчас").click()
    page.wait_for_selector("text=" + ("Last sync" if language == "en" else "Последняя синхронизация"))
    assert Employee.select().count() == 1001
    screenshot(page, f"synced-{language}-{width}")
    screenshot(page, f"synced-{language}-{width}-top", full_page=False)
    kept = Employee.by_email("person0004@example.com")
    page.goto(f"{live_server}/admin/employees/{kept.id}")
    assert "uid=person0004" in page.inner_text("main")
    screenshot(page, f"card-{language}-{width}")
