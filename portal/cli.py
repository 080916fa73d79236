"""The `portal` command: Flask's own commands over create_app, plus the portal's."""
import os
import secrets
import sys
from dataclasses import fields
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from portal.api.cli import create_token_command
from portal.db import database, init_db_command
from portal.directory import DirectoryError, configured_settings, sync_directory_alone
from portal.letters.cli import COMMANDS as LETTER_COMMANDS
from portal.mail.cli import check_account_command, presets_command
from portal.mail.cli import discover_command
from portal.models import Employee
from portal.people import EmployeeError, create_employee, import_employees, set_password
from portal.projects import ProjectError, create_project
from portal.rotation import rotate_secrets
from portal.secret_box import SecretError, active_box


def _create_app():
    from portal import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def main():
    """Manage the external-addresses portal."""


def register_commands(app):
    """Attach the portal's commands to the app (and so to `flask` and `portal`)."""
    for command in (create_user_command, create_project_command, import_employees_command, ensure_admin_command,
                    create_token_command, rotate_secrets_command, set_password_command):
        app.cli.add_command(command)
    app.cli.add_command(check_account_command)
    app.cli.add_command(presets_command)
    app.cli.add_command(discover_command)
    app.cli.add_command(init_db_command)
    for command in LETTER_COMMANDS:
        app.cli.add_command(command)
    app.cli.add_command(sync_directory_command)
    app.cli.add_command(backup_command)
    from portal.oauth.cli import oauth_app_command

    app.cli.add_command(oauth_app_command)


def _fail(message):
    click.echo(message, err=True)
    sys.exit(1)


@click.command("rotate-secrets")
@with_appcontext
def rotate_secrets_command():
    """Re-encrypt every stored secret with the newest key of PORTAL_SECRET_KEYS: mailboxes, webhooks, the single
    sign-on and directory pages, sign-in apps, OAuth tokens, single sign-on. Then the older keys may be removed."""
    try:
        with database.connection_context():
            rotated = rotate_secrets(current_app.extensions["portal_secret_box"])
    except SecretError as error:  # a wrong or missing key: one line, and nothing was changed
        raise click.ClickException(f"{error}. Nothing was changed: list the key it was made with in "
                                   "PORTAL_SECRET_KEYS after the new one, and run rotate-secrets again.") from None
    counts = [(getattr(rotated, kind.name), kind.metadata) for kind in fields(rotated)]
    for heading, trouble in (("Re-encrypted with the newest key:", False),
                             ("Opened by no key (the rotation went on without them):", True)):
        lines = [f"  {count} {words['one'] if count == 1 else words['several']}"
                 for count, words in counts if words["trouble"] == trouble and (count or not trouble)]
        if lines:
            click.echo("\n".join([heading, *lines]))


@click.command("create-user")
@click.option("--email", required=True, help="E-mail, also the sign-in name.")
@click.option("--name", required=True, help="Full name.")
@click.option("--department", default="", help="Department.")
@click.option("--position", default="", help="Position.")
@click.option("--admin", is_flag=True, help="Make the employee an admin.")
@click.option("--password", help="Password; asked for when left out.")
@with_appcontext
def create_user_command(email, name, department, position, admin, password):
    """Create an employee who can sign in."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with database.connection_context():
        try:
            employee = create_employee(
                email=email,
                name=name,
                department=department,
                position=position,
                role="admin" if admin else "employee",
                password=password,
            )
        except EmployeeError as error:
            _fail(f"Error: {error.field}: {error.message}")
    click.echo(f"Created {'admin' if admin else 'employee'} {employee.email}")


@click.command("create-project")
@click.argument("name")
@with_appcontext
def create_project_command(name):
    """Create a project that addresses can be tied to."""
    with database.connection_context():
        try:
            project = create_project(name)
        except ProjectError as error:
            _fail(f"Error: {error.message}")
    click.echo(f"Created project {project.name}")


@click.command("import-employees")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_employees_command(path):
    """Import employees from a CSV file (name, email, position, department, role)."""
    with database.connection_context():
        report = import_employees(path.read_bytes())
    if report.error:
        _fail(f"Error: {report.error}")
    for row in report.rows:
        reason = f": {row.reason}" if row.reason else ""
        click.echo(f"line {row.line}: {row.email or '-'} {row.outcome}{reason}")
    if not report.ok:
        _fail("Nothing was imported: fix the refused rows and run the import again.")
    click.echo(f"Created {report.count('created')}, updated {report.count('updated')}.")


@click.command("backup")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@with_appcontext
def backup_command(dest):
    """Copy the database (SQLite) and the instance keys into the new folder DEST (mode 0700, its files 0600)."""
    from portal.backup import BackupError, backup
    from portal.db import database_url

    try:
        report = backup(database_url(current_app), current_app.instance_path, dest)
    except BackupError as error:
        _fail(f"Error: {error}")
    for path in report.written:
        click.echo(f"Wrote {path}")
    if report.pg_dump:
        click.echo("The database is PostgreSQL: dump it with")
        click.echo(f"  {report.pg_dump}")
    if current_app.config.get("PORTAL_SECRET_KEYS"):
        click.echo("PORTAL_SECRET_KEYS is set in the environment: keep a copy of it too, or no stored mailbox "
                   "password can be read after a restore.")


@click.command("ensure-admin")
@with_appcontext
def ensure_admin_command():
    """Create the first admin when there are no employees yet."""
    with database.connection_context():
        if Employee.select().exists():
            _say_where_the_admins_are()
            return
        email = current_app.config["PORTAL_ADMIN_EMAIL"]
        password = current_app.config.get("PORTAL_ADMIN_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        create_employee(email=email, name="Administrator", role="admin", password=password)
    click.echo(f"Created the first admin: {email}")
    if generated:
        click.echo(f"Password (shown once): {password}")


@click.command("sync-directory")
@click.option("--dry-run", is_flag=True, help="Only report what a sync would change (the page's preview).")
@with_appcontext
def sync_directory_command(dry_run):
    """Bring employees in line with the LDAP / Active Directory directory."""
    from portal.letters.worker import huey_for

    with database.connection_context():
        try:
            record = sync_directory_alone(huey_for(current_app), configured_settings(current_app.config,
                                                                                     active_box()), dry_run=dry_run)
        except DirectoryError as running:
            _fail(f"Error: {running}")
    if not record.ok:
        _fail(f"Error: {record.problem}")
    report = record.details
    for entry in report["skipped"]:
        click.echo(f"skipped {entry['dn']}: {entry['reason']}")
    click.echo(f"{'Would' if dry_run else 'Did'}: create {len(report['created'])}, update {len(report['updated'])}, "
               f"deactivate {len(report['deactivated'])}, skip {len(report['skipped'])}; "
               f"{report['unchanged']} unchanged, {report['hand_kept']} kept by hand, "
               f"{report['rows_written']} rows written.")


def _say_where_the_admins_are():
    """Every start repeats who can sign in as admin and how to get back in without the password."""
    admins = [e.email for e in Employee.select(Employee.email).where(
        (Employee.role == "admin") & Employee.active).order_by(Employee.email).limit(5)]
    if admins:
        click.echo(f"Admins: {', '.join(admins)}. A lost password: portal set-password --email <e-mail>")
    else:
        click.echo("No active admin. Make one: portal create-user --admin --email <e-mail> --name <name>")


@click.command("set-password")
@click.option("--email", required=True, help="The employee's e-mail (their sign-in name).")
@click.option("--password-env", metavar="VAR",
              help="Read the new password from this environment variable (for scripts); asked for when left out.")
@with_appcontext
def set_password_command(email, password_env):
    """Give an employee a new password (a lost one, say); every session they have ends."""
    if password_env:
        password = os.environ.get(password_env, "")
        if not password:
            _fail(f"Error: the environment variable {password_env} is not set or empty.")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    with database.connection_context():
        employee = Employee.by_email(email)
        if employee is None:
            _fail(f"Error: no employee has the e-mail {email}.")
        try:
            set_password(employee, password)
        except EmployeeError as error:
            _fail(f"Error: {error.message}")
    click.echo(f"New password set for {employee.email}; their sessions have ended.")
    if not employee.active:
        click.echo("They are deactivated: they can sign in once an admin reactivates them.")
