"""Account management → Directory, against the real OpenLDAP: settings, preview, sync, the report."""
import dataclasses
import json

import pytest

from portal.models import Employee, PortalSetting
from tests.servers.ldap import person_email


def settings_form(directory, **overrides):
    """The settings form filled in for the test directory."""
    values = dict(dataclasses.asdict(directory.access()), search_filter="(objectClass=inetOrgPerson)",
                  name_attribute="cn", mail_attribute="mail", title_attribute="title",
                  department_attribute="departmentNumber", manager_attribute="manager")
    values.update(overrides)
    return values


@pytest.mark.parametrize("path", ["/admin/directory"])
def test_only_admins_see_the_page(client, as_employee, path):
    assert client.get(path).status_code == 404
    assert client.post(path + "/sync").status_code == 404


def test_saving_keeps_the_password_encrypted_and_never_shows_it(client, as_admin, ldap_directory):
    answer = client.post("/admin/directory", data=settings_form(ldap_directory))
    assert answer.status_code == 302
    stored = json.dumps(PortalSetting.read("directory"))
    assert ldap_directory.service_password not in stored
    page = client.get("/admin/directory").get_data(as_text=True)
    assert ldap_directory.service_password not in page
    assert "A password is stored." in page
    # Saving again with the password left empty keeps it: the preview still binds.
    client.post("/admin/directory", data=settings_form(ldap_directory, bind_password=""))
    preview = client.post("/admin/directory/preview", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "A sync would create 1000, update 0 and deactivate 0 employees" in preview


@pytest.mark.parametrize("change", [{"url": "ldaps://127.0.0.9:636"}, {"bind_dn": "cn=someone-else,dc=example,dc=com"}])
def test_a_kept_bind_password_goes_to_no_other_directory_or_account(client, as_admin, ldap_directory, change):
    client.post("/admin/directory", data=settings_form(ldap_directory))
    before = PortalSetting.read("directory")

    answer = client.post("/admin/directory", data=settings_form(ldap_directory, bind_password="", **change))

    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert 'id="bind_password-error"' in page and "Type the bind password again" in page
    assert "Leave empty to keep the current one" not in page  # which the error just said it cannot
    assert PortalSetting.read("directory") == before


def test_the_configurations_bind_password_goes_to_no_directory_the_page_names(app, client, as_admin, ldap_directory):
    # PORTAL_LDAP_BIND_PASSWORD was given for PORTAL_LDAP_URL: a page naming another directory must bring its own.
    from portal.directory import DirectorySettings

    access = ldap_directory.access()
    app.config.update(PORTAL_LDAP_URL=access.url, PORTAL_LDAP_BIND_PASSWORD=access.bind_password)
    elsewhere = "ldaps://127.0.0.9:636"

    answer = client.post("/admin/directory", data=settings_form(ldap_directory, bind_password="", url=elsewhere))

    assert answer.status_code == 200 and "Type the bind password again" in answer.get_data(as_text=True)
    assert PortalSetting.read("directory") is None
    # Stored some other way (an older version, the database edited): still never sent there.
    assert DirectorySettings.from_mapping(app.config, {"url": elsewhere}).bind_password == ""
    assert DirectorySettings.from_mapping(app.config, {"url": access.url}).bind_password == access.bind_password


def test_bad_settings_are_refused_beside_their_fields(client, as_admin, ldap_directory):
    page = client.post("/admin/directory", data=settings_form(
        ldap_directory, url="http://dc.example.com", ca_file="/nonexistent.pem", search_filter="uid=x"))
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Use an address starting with ldaps://" in text and "No such file on the server." in text
    assert "An LDAP filter is written in parentheses" in text
    assert PortalSetting.read("directory") is None


def test_preview_first_then_sync_and_the_report(client, as_admin, ldap_directory):
    client.post("/admin/directory", data=settings_form(ldap_directory))
    page = client.get("/admin/directory").get_data(as_text=True)
    assert "Preview the sync" in page and "Sync now" not in page  # nothing to confirm yet
    preview = client.post("/admin/directory/preview", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Sync now" in preview and "Person 0001 &lt;person0001@example.com&gt;, Engineering" in preview
    assert Employee.select().count() == 1  # the admin only
    ldap_directory.disable(9)
    synced = client.post("/admin/directory/sync", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Created 1000, updated 0, deactivated 0 employees; 0 entries skipped." in synced
    assert "1 kept by hand" in synced
    assert not Employee.by_email(person_email(9)).active
    assert "The directory is synced every hour." in client.get("/admin/directory").get_data(as_text=True)


def test_a_wrong_password_is_explained_on_the_page(client, as_admin, ldap_directory):
    client.post("/admin/directory", data=settings_form(ldap_directory, bind_password="wrong"))
    answer = client.post("/admin/directory/preview", headers={"HX-Request": "true"})
    assert answer.status_code == 200
    assert "The directory refused the bind DN or password; nothing was changed." in answer.get_data(as_text=True)


def test_a_russian_admin_reads_the_problems_in_russian(client, auth, make_employee, ldap_directory):
    auth.login(make_employee(role="admin", language="ru"))
    client.post("/admin/directory", data=settings_form(ldap_directory, bind_password="wrong"))
    refused = client.post("/admin/directory/preview", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Каталог не принял DN или пароль для подключения; ничего не изменено." in refused
    client.post("/admin/directory", data=settings_form(ldap_directory))
    ldap_directory.add(1001, mail="")
    preview = client.post("/admin/directory/preview", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "uid=person1001,ou=people,dc=example,dc=com</code>: нет e-mail" in preview


def test_the_employee_card_says_where_the_details_come_from(client, as_admin, admin, ldap_directory):
    client.post("/admin/directory", data=settings_form(ldap_directory))
    client.post("/admin/directory/sync")
    kept = Employee.by_email(person_email(4))
    card = client.get(f"/admin/employees/{kept.id}").get_data(as_text=True)
    assert "The directory <code>uid=person0004,ou=people,dc=example,dc=com</code>" in card
    assert "Kept by hand" in client.get(f"/admin/employees/{admin.id}").get_data(as_text=True)
