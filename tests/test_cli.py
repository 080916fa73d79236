"""The `portal` command line."""
import os
import subprocess
import sys
from pathlib import Path

from portal.models import Employee, Mailbox, Project


def test_init_db_is_repeatable(runner):
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0 and "up to date" in result.output


def test_create_user_with_password(runner, app):
    result = runner.invoke(args=["create-user", "--email", "Ivan@Example.com", "--name", "Ivan Petrov",
                                 "--department", "Sales", "--admin", "--password", "long enough pass"])
    assert result.exit_code == 0, result.output
    ivan = Employee.by_email("ivan@example.com")
    assert ivan.is_admin and ivan.department == "Sales" and ivan.check_password("long enough pass")
    assert "long enough pass" not in result.output


def test_create_user_prompts_for_password(runner):
    result = runner.invoke(args=["create-user", "--email", "p@example.com", "--name", "P"],
                           input="s3cret pw\ns3cret pw\n")
    assert result.exit_code == 0, result.output
    assert Employee.by_email("p@example.com").check_password("s3cret pw")


def test_create_user_refuses_duplicate_email(runner, employee):
    result = runner.invoke(args=["create-user", "--email", employee.email.upper(), "--name", "Twin",
                                 "--password", "x" * 12])
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert Employee.select().count() == 1


def test_create_project_refuses_blank_and_duplicate(runner):
    assert runner.invoke(args=["create-project", "Brand A"]).exit_code == 0
    duplicate = runner.invoke(args=["create-project", "brand a"])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    assert runner.invoke(args=["create-project", "   "]).exit_code == 1
    assert runner.invoke(args=["create-project", "x" * 256]).exit_code == 1
    assert [p.name for p in Project.select()] == ["Brand A"]


def test_import_employees_reports_each_row(runner, tmp_path, employee):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "name,email,position,department,role\n"
        "Maria Ivanova,maria@example.com,Lawyer,Legal,employee\n"
        f"Erik Renamed,{employee.email},Lead,Sales,admin\n",
        encoding="utf-8",
    )
    result = runner.invoke(args=["import-employees", str(csv_file)])
    assert result.exit_code == 0, result.output
    assert "maria@example.com created" in result.output and f"{employee.email} updated" in result.output
    assert Employee.by_email(employee.email).name == "Erik Renamed"


def test_import_with_a_bad_row_imports_nothing(runner, tmp_path):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("name,email\nGood Person,good@example.com\nBad Person,not-an-address\n", encoding="utf-8")
    result = runner.invoke(args=["import-employees", str(csv_file)])
    assert result.exit_code == 1
    assert "line 3" in result.output and "refused" in result.output
    assert Employee.select().count() == 0


def test_ensure_admin_creates_first_admin_once(runner, config):
    result = runner.invoke(args=["ensure-admin"])
    assert result.exit_code == 0 and "admin@example.com" in result.output and "Password (shown once)" in result.output
    assert Employee.by_email("admin@example.com").is_admin
    again = runner.invoke(args=["ensure-admin"])  # every later start says where the admin is
    assert "Password" not in again.output and Employee.select().count() == 1
    assert "Admins: admin@example.com" in again.output and "portal set-password --email" in again.output


def test_ensure_admin_uses_configured_email_and_password(app, runner):
    app.config.update(PORTAL_ADMIN_EMAIL="boss@example.com", PORTAL_ADMIN_PASSWORD="given password 1")
    result = runner.invoke(args=["ensure-admin"])
    assert "given password 1" not in result.output
    assert Employee.by_email("boss@example.com").check_password("given password 1")


def test_rotate_secrets_with_a_wrong_key_says_so_in_one_line(app, config, make_mailbox):
    mailbox = make_mailbox()  # encrypted with the instance folder's own key
    stored = Mailbox.select(Mailbox.smtp_password).where(Mailbox.id == mailbox.id).scalar()
    environ = {**os.environ, "PORTAL_INSTANCE_PATH": config["INSTANCE_PATH"],
               "PORTAL_DATABASE_URL": config["PORTAL_DATABASE_URL"], "PORTAL_SECRET_KEYS": "a-key-that-never-was",
               "PORTAL_SECRET_KEY": config["SECRET_KEY"]}
    portal = Path(sys.executable).with_name("portal")

    done = subprocess.run([str(portal), "rotate-secrets"], env=environ, capture_output=True, text=True, timeout=60)

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"mailbox {mailbox.id} ({mailbox.address})" in lines[0] and "Nothing was changed" in lines[0]
    assert Mailbox.select(Mailbox.smtp_password).where(Mailbox.id == mailbox.id).scalar() == stored


def test_set_password_from_an_environment_variable_ends_sessions(runner, as_admin, admin, monkeypatch):
    assert as_admin.get("/").status_code == 200  # signed in in a browser
    monkeypatch.setenv("NEW_ADMIN_PASSWORD", "a brand new password")
    result = runner.invoke(args=["set-password", "--email", "ADMIN@example.com",
                                 "--password-env", "NEW_ADMIN_PASSWORD"])
    assert result.exit_code == 0, result.output
    assert "a brand new password" not in result.output
    assert Employee.by_email("admin@example.com").check_password("a brand new password")
    assert "/sign-in" in as_admin.get("/").headers["Location"]  # that session ended


def test_set_password_prompts_twice_and_refuses_a_short_one(runner, admin):
    short = runner.invoke(args=["set-password", "--email", "admin@example.com"], input="short\nshort\n")
    assert short.exit_code == 1 and "At least 10 characters" in short.output
    prompted = runner.invoke(args=["set-password", "--email", "admin@example.com"],
                             input="typed at the prompt\ntyped at the prompt\n")
    assert prompted.exit_code == 0 and Employee.by_email("admin@example.com").check_password("typed at the prompt")


def test_set_password_for_an_unknown_e_mail_or_empty_variable_fails_clearly(runner, admin, monkeypatch):
    unknown = runner.invoke(args=["set-password", "--email", "nobody@example.com", "--password-env", "HOME"])
    assert unknown.exit_code == 1 and "no employee has the e-mail nobody@example.com" in unknown.output
    monkeypatch.delenv("UNSET_PASSWORD_VAR", raising=False)
    empty = runner.invoke(args=["set-password", "--email", "admin@example.com", "--password-env", "UNSET_PASSWORD_VAR"])
    assert empty.exit_code == 1 and "UNSET_PASSWORD_VAR is not set or empty" in empty.output
