"""`portal backup DEST` and a restore from it: the people, the mailboxes and their secrets come back."""
import stat

import pytest
from peewee import SqliteDatabase

from portal import create_app
from portal.db import database
from portal.models import Employee, Mailbox
from tests.conftest import PASSWORD
from tests.fixtures.mailboxes import MAILBOX_PASSWORD


@pytest.fixture
def generated_keys(config):
    """Both keys generated into the instance folder, as `make run` and a plain deployment have them."""
    config.pop("SECRET_KEY")
    return config


def test_a_backup_restores_into_a_new_instance_with_every_secret_readable(
        generated_keys, app, runner, config, tmp_path, employee, make_mailbox):
    if not isinstance(database.obj, SqliteDatabase):
        pytest.skip("an online copy of the SQLite database; on PostgreSQL the backup prints pg_dump (tested below)")
    mailbox = make_mailbox(employee)
    dest = tmp_path / "backup-1"
    result = runner.invoke(args=["backup", str(dest)])
    assert result.exit_code == 0, result.output
    written = sorted(path.name for path in dest.iterdir())
    assert written == ["mailbox_secret_key", "portal.sqlite3", "secret_key"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in dest.iterdir()} == {0o600}
    database.close()

    # A new machine: an empty instance folder, the backup's files put into it.
    restored = tmp_path / "restored-instance"
    restored.mkdir(mode=0o700)
    for path in dest.iterdir():
        (restored / path.name).write_bytes(path.read_bytes())
    new_config = dict(config, INSTANCE_PATH=str(restored),
                      PORTAL_DATABASE_URL=f"sqlite:///{restored / 'portal.sqlite3'}")
    new_app = create_app(new_config)
    with new_app.app_context():
        database.connect(reuse_if_open=True)
        assert Mailbox.get_by_id(mailbox.id).secret("smtp_password") == MAILBOX_PASSWORD
        assert Employee.get_by_id(employee.id).check_password(PASSWORD)
        database.close()


def test_a_backup_never_overwrites_a_folder_that_holds_something(runner, tmp_path):
    dest = tmp_path / "used"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    result = runner.invoke(args=["backup", str(dest)])
    assert result.exit_code == 1 and "is not empty" in result.output
    assert (dest / "keep.txt").read_text() == "mine"


def test_on_postgresql_it_prints_the_dump_command_without_the_password(app, runner, tmp_path):
    app.config["PORTAL_DATABASE_URL"] = "postgresql://portal:s3cret@db.internal:5432/portal"
    result = runner.invoke(args=["backup", str(tmp_path / "pg")])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert f"pg_dump --format=custom --file {tmp_path / 'pg' / 'portal.dump'} " \
           "'postgresql://portal@db.internal:5432/portal'" in result.output
    assert "Wrote" in result.output and "mailbox_secret_key" in result.output
