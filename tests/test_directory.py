"""Directory sync against a real OpenLDAP (tests/servers/ldap.py): 1,000 people, StartTLS, a size limit of 500."""
import dataclasses

import pytest

from portal.directory import (ENVIRONMENT, DirectoryError, DirectoryPerson, DirectorySettings, read_people,
                              sync_directory)
from portal.letters.worker import make_huey
from portal.models import DirectoryLink, DirectorySync, Employee
from tests.servers.ldap import PEOPLE, SIZE_LIMIT, person_dn, person_email


def settings_for(directory, **overrides):
    """Settings reaching the test directory (its access fields are named as DirectorySettings names them)."""
    return DirectorySettings(**dict(dataclasses.asdict(directory.access()), **overrides))


def employee(number):
    return Employee.by_email(person_email(number))


@pytest.fixture
def synced(app, ldap_directory):
    """The directory after a first real sync."""
    record = sync_directory(settings_for(ldap_directory))
    assert record.ok, record.problem
    return ldap_directory


def test_reading_pages_past_the_servers_size_limit(ldap_directory):
    people, roles_from_group = read_people(settings_for(ldap_directory, page_size=200))
    assert len(people) == 1000 > SIZE_LIMIT
    assert roles_from_group
    assert {person.email for person in people if person.admin} == {person_email(n) for n in (1, 2, 3)}


def test_first_sync_creates_everyone_with_their_department_and_admins_from_the_group(app, ldap_directory,
                                                                                     make_employee):
    make_employee(email="local.admin@example.com", role="admin")
    record = sync_directory(settings_for(ldap_directory))
    report = record.details
    assert record.ok and not record.dry_run
    assert len(report["created"]) == 1000 and report["rows_written"] == 1000
    assert report["hand_kept"] == 1 and report["skipped"] == []
    person = employee(12)
    assert (person.name, person.department, person.position, person.role, person.active) == (
        "Person 0012", "Support", "Specialist 2", "employee", True)
    assert employee(2).role == "admin"
    assert DirectoryLink.get(DirectoryLink.employee == person).manager_dn == person_dn(4)
    # The hand-kept admin is left alone and can still sign in with a password.
    assert Employee.by_email("local.admin@example.com").role == "admin"
    assert not DirectoryLink.select().join(Employee).where(Employee.email == "local.admin@example.com").exists()


def test_a_second_sync_writes_only_what_changed(synced):
    synced.modify(12, departmentNumber="Legal", title="Lead")
    before = employee(13).updated_at
    report = sync_directory(settings_for(synced)).details
    assert report["rows_written"] == 1 and report["unchanged"] == 999
    assert report["updated"] == [{"email": person_email(12), "changes": {
        "position": ["Specialist 2", "Lead"], "department": ["Support", "Legal"]}}]
    assert employee(12).department == "Legal"
    assert employee(13).updated_at == before


def test_a_disabled_account_is_deactivated_and_comes_back_when_enabled(synced):
    synced.disable(20)
    report = sync_directory(settings_for(synced)).details
    assert report["deactivated"] == [{"email": person_email(20), "reason": "disabled"}]
    assert not employee(20).active
    synced.enable(20)
    sync_directory(settings_for(synced))
    assert employee(20).active


def test_a_removed_person_is_deactivated_never_deleted(synced):
    synced.remove(30)
    report = sync_directory(settings_for(synced)).details
    assert report["deactivated"] == [{"email": person_email(30), "reason": "gone"}]
    person = employee(30)
    assert person is not None and not person.active
    assert DirectoryLink.get(DirectoryLink.employee == person).gone
    assert sync_directory(settings_for(synced)).details["rows_written"] == 0


def test_a_renamed_entry_keeps_its_employee_active(synced):
    synced.rename(50, "renamed0050")
    report = sync_directory(settings_for(synced)).details
    assert report["deactivated"] == [] and report["created"] == []
    person = employee(50)
    assert person.active
    assert DirectoryLink.get(DirectoryLink.employee == person).dn == f"uid=renamed0050,{PEOPLE}"


def test_leaving_the_admin_group_takes_the_admin_role(synced):
    synced.leave_admins(3)
    report = sync_directory(settings_for(synced)).details
    assert report["updated"] == [{"email": person_email(3), "changes": {"role": ["admin", "employee"]}}]


def test_bad_entries_are_skipped_whole_and_reported(synced):
    synced.add(1001, mail="")
    synced.add(1002, mail=person_email(5))  # the e-mail of person 5 a second time
    synced.add(1003, department="D" * 300)
    report = sync_directory(settings_for(synced)).details
    reasons = {entry["dn"]: entry["reason"] for entry in report["skipped"]}
    assert reasons[person_dn(1001)] == "no e-mail"
    assert "2 directory entries" in reasons[person_dn(1002)] and "2 directory entries" in reasons[person_dn(5)]
    assert reasons[person_dn(1003)] == "department longer than 255 characters"
    assert report["created"] == [] and report["deactivated"] == []
    assert employee(5).active  # skipped, not taken for gone
    assert Employee.select().count() == 1000


def test_a_hand_kept_employee_with_the_same_e_mail_is_linked_not_duplicated(app, ldap_directory, make_employee):
    make_employee(email=person_email(7), name="Old Name", department="")
    report = sync_directory(settings_for(ldap_directory)).details
    assert report["linked"] == [person_email(7)] and len(report["created"]) == 999
    assert employee(7).name == "Person 0007" and report["hand_kept"] == 0


def test_a_dry_run_previews_and_changes_nothing(app, ldap_directory):
    record = sync_directory(settings_for(ldap_directory), dry_run=True)
    assert record.dry_run and len(record.details["created"]) == 1000 and record.details["rows_written"] == 0
    assert Employee.select().count() == 0
    assert DirectorySync.latest(dry_run=False) is None


def test_a_bad_bind_password_is_a_clear_message_and_changes_nothing(synced):
    synced.modify(12, departmentNumber="Legal")
    record = sync_directory(settings_for(synced, bind_password="wrong"))
    assert not record.ok
    assert record.problem == "The directory refused the bind DN or password; nothing was changed."
    assert employee(12).department == "Support"


def test_a_certificate_from_an_unknown_ca_is_refused(app, ldap_directory, untrusted_certificate):
    with pytest.raises(DirectoryError, match="certificate could not be verified"):
        read_people(settings_for(ldap_directory, ca_file=untrusted_certificate.ca_file))


def test_a_wrong_base_dn_is_explained(ldap_directory):
    with pytest.raises(DirectoryError, match="does not exist"):
        read_people(settings_for(ldap_directory, base_dn="ou=nobody,dc=example,dc=com"))


def test_an_empty_answer_never_deactivates_everyone(synced):
    record = sync_directory(settings_for(synced, search_filter="(uid=nobody)"))
    assert not record.ok and "found nobody" in record.problem
    assert Employee.select().where(Employee.active == True).count() == 1000  # noqa: E712


def test_settings_from_the_environment_and_the_page():
    settings = DirectorySettings.from_mapping(
        {"PORTAL_LDAP_URL": "ldaps://dc.example.com", "PORTAL_LDAP_BASE_DN": "dc=example,dc=com",
         "PORTAL_LDAP_BIND_PASSWORD": "secret"}, stored={"base_dn": "ou=staff,dc=example,dc=com"})
    assert settings.configured and settings.base_dn == "ou=staff,dc=example,dc=com"
    assert "secret" not in repr(settings) and settings.public()["bind_password"] is True


def test_a_person_read_without_a_group_keeps_the_role(app, make_employee):
    make_employee(email="a@example.com", role="admin")
    person = DirectoryPerson(dn="uid=a,dc=x", name="A", email="a@example.com")
    settings = DirectorySettings(url="ldaps://x", base_dn="dc=x")
    sync_directory(settings, people=[person])
    assert Employee.by_email("a@example.com").role == "admin"
    assert dataclasses.replace(person, disabled=True).disabled


def directory_config(config, directory):
    config.update({ENVIRONMENT[name]: value for name, value in dataclasses.asdict(directory.access()).items()})
    return config


@pytest.fixture
def directory_app(config, ldap_directory, request):
    """The app with PORTAL_LDAP_* pointing at the test directory."""
    directory_config(config, ldap_directory)
    return request.getfixturevalue("app")


def test_the_command_previews_then_syncs(directory_app, ldap_directory):
    runner = directory_app.test_cli_runner()
    preview = runner.invoke(args=["sync-directory", "--dry-run"])
    assert preview.exit_code == 0, preview.output
    assert "Would: create 1000, update 0, deactivate 0, skip 0" in preview.output
    assert Employee.select().count() == 0
    result = runner.invoke(args=["sync-directory"])
    assert "Did: create 1000" in result.output and "1000 rows written" in result.output
    assert Employee.select().count() == 1000


def test_the_command_fails_with_the_reason(directory_app, ldap_directory):
    directory_app.config["PORTAL_LDAP_BIND_PASSWORD"] = "wrong"
    result = directory_app.test_cli_runner().invoke(args=["sync-directory"])
    assert result.exit_code == 1
    assert "refused the bind DN or password" in result.output
    assert "wrong" not in result.output


def test_the_hourly_task_waits_for_a_first_real_sync(directory_app, ldap_directory, tmp_path):
    task = make_huey(directory_app.config, str(tmp_path / "queue")).portal_tasks.sync_directory
    assert task.call_local() is None and Employee.select().count() == 0  # the admin previews first
    sync_directory(settings_for(ldap_directory))
    ldap_directory.disable(40)
    assert task.call_local() == {"ok": True, "problem": ""}
    assert not employee(40).active


def test_a_sync_by_hand_and_the_scheduled_one_never_run_together(directory_app, ldap_directory, client, auth, admin):
    """While one holds huey's sync lock, the other does not start: the command and the page say a sync is running,
    and the scheduled task is refused by huey; once it is free, a sync runs."""
    from huey.exceptions import TaskLockedException

    from portal.directory import SYNC_LOCK, sync_directory_alone
    from portal.letters.worker import huey_for

    huey = huey_for(directory_app)
    runner = directory_app.test_cli_runner()
    auth.login(admin)
    sync_directory(settings_for(ldap_directory), dry_run=True)  # the preview that shows "Sync now"
    with huey.lock_task(SYNC_LOCK):  # a sync is running (the scheduled one, or another admin's)
        refused = runner.invoke(args=["sync-directory"])
        assert refused.exit_code == 1 and "Another directory sync is running" in refused.output
        page = client.post("/admin/directory/sync", headers={"HX-Request": "true"}).get_data(as_text=True)
        assert 'id="directory-running"' in page
        with pytest.raises(TaskLockedException):
            huey.portal_tasks.sync_directory.call_local()
        assert Employee.select().count() == 1  # only the admin: nothing was synced meanwhile
    assert DirectorySync.select().where(DirectorySync.dry_run == False).count() == 0  # noqa: E712
    assert "Did: create 1000" in runner.invoke(args=["sync-directory"]).output
    with pytest.raises(DirectoryError):
        with huey.lock_task(SYNC_LOCK):
            sync_directory_alone(huey, settings_for(ldap_directory))
