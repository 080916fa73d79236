"""Where settings come from, the secret key, and the instance folder's modes."""
import os
import stat
from pathlib import Path

from portal import create_app
from portal.db import database
from portal.letters.worker import make_huey
from portal.models import Employee


def test_caller_mapping_beats_environment_beats_instance_file(config, monkeypatch):
    instance = Path(config["INSTANCE_PATH"])
    instance.mkdir(parents=True)
    (instance / "config.py").write_text("PORTAL_PAGE_SIZE = 7\nPORTAL_MAIL_TIMEOUT = 3.0\n"
                                        "PORTAL_DEFAULT_LANGUAGE = 'ru'\n")
    monkeypatch.setenv("PORTAL_MAIL_TIMEOUT", "4.5")
    monkeypatch.setenv("PORTAL_DEFAULT_LANGUAGE", "en")
    app = create_app({**config, "PORTAL_DEFAULT_LANGUAGE": "ru"})
    assert app.config["PORTAL_PAGE_SIZE"] == 7  # instance file beats the default
    assert app.config["PORTAL_MAIL_TIMEOUT"] == 4.5  # environment beats the instance file, typed
    assert app.config["PORTAL_DEFAULT_LANGUAGE"] == "ru"  # the caller beats the environment


def test_secret_key_is_generated_once_with_mode_0600(config):
    del config["SECRET_KEY"]
    first = create_app(config).config["SECRET_KEY"]
    second = create_app(config).config["SECRET_KEY"]
    key_file = Path(config["INSTANCE_PATH"]) / "secret_key"
    assert first == second and len(first) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_secret_key_from_environment(config, monkeypatch):
    del config["SECRET_KEY"]
    monkeypatch.setenv("PORTAL_SECRET_KEY", "from-the-environment-" + "x" * 20)
    assert create_app(config).config["SECRET_KEY"].startswith("from-the-environment-")
    assert not (Path(config["INSTANCE_PATH"]) / "secret_key").exists()


def test_environment_values_take_the_type_of_their_default(config, monkeypatch):
    monkeypatch.setenv("PORTAL_LETTER_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("PORTAL_MAIL_PROVIDER_MX_LOOKUP", "off")
    monkeypatch.setenv("PORTAL_MAIL_TIMEOUT", "2.5")
    app = create_app(config)
    assert app.config["PORTAL_LETTER_MAX_ATTEMPTS"] == 5
    assert app.config["PORTAL_MAIL_PROVIDER_MX_LOOKUP"] is False
    assert app.config["PORTAL_MAIL_TIMEOUT"] == 2.5


def test_a_malformed_number_in_the_environment_is_named(config, monkeypatch):
    import pytest

    monkeypatch.setenv("PORTAL_PAGE_SIZE", "many")
    with pytest.raises(ValueError, match="PORTAL_PAGE_SIZE"):
        create_app(config)


def test_the_instance_folder_is_0700_and_every_file_made_in_it_0600(config):
    instance = Path(config["INSTANCE_PATH"])
    del config["SECRET_KEY"]
    config.update(PORTAL_DATABASE_URL=None, PORTAL_QUEUE_URL=None)
    umask = os.umask(0o002)  # a lenient umask: the modes must not depend on it
    try:
        app = create_app(config)
        assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
        database.connect(reuse_if_open=True)
        Employee.create(name="Writer", email="writer@example.com")  # the open connection keeps its WAL files
        assert make_huey(app.config, app.instance_path).pending_count() == 0  # the letters queue's file
        files = sorted(path.name for path in instance.iterdir())
        assert {"portal.sqlite3", "portal.sqlite3-wal", "portal.sqlite3-shm", "queue.sqlite3", "secret_key",
                "mailbox_secret_key"} <= set(files), files
        assert stat.S_IMODE(instance.stat().st_mode) == 0o700
        assert {name: oct(stat.S_IMODE((instance / name).stat().st_mode)) for name in files} \
            == {name: oct(0o600) for name in files}
    finally:
        os.umask(umask)
        database.close()
