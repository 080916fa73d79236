"""The huey wiring and the commands: a consumer sends what the page queued; one-pass commands for cron and tests."""
import time

from huey import RedisHuey, SqliteHuey

from portal.letters.worker import huey_for, make_huey
from portal.models import Letter


def test_sqlite_storage_in_the_instance_folder_by_default_and_redis_by_url(tmp_path):
    default = make_huey({}, str(tmp_path))
    assert isinstance(default, SqliteHuey) and default.storage.filename == str(tmp_path / "queue.sqlite3")
    redis = make_huey({"PORTAL_QUEUE_URL": "redis://127.0.0.1:1/0"}, str(tmp_path))
    assert isinstance(redis, RedisHuey)
    names = " ".join(default._registry._registry)
    assert all(name in names for name in ("portal.send_letters", "portal.sweep_letters", "portal.fetch_replies"))


def test_a_consumer_sends_the_letter_the_page_queued(app, as_employee, sending_mailbox, smtp_server, mail_config,
                                                    config):
    app.config.update(PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1,localhost", PORTAL_MAIL_CA_FILE=mail_config.ca_file,
                      PORTAL_MAIL_TIMEOUT=3)
    app.extensions.pop("portal.huey", None)
    huey = huey_for(app)
    consumer = huey.create_consumer(workers=1, worker_type="thread", periodic=False, initial_delay=0.05,
                                    max_delay=0.1)
    consumer.start()
    try:
        from tests.test_letters_views import _form

        as_employee.post("/letters/new", data=_form(as_employee))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Letter.get().state != "sent":
            time.sleep(0.05)
    finally:
        consumer.stop(graceful=True)
    assert Letter.get().state == "sent" and len(smtp_server.messages) == 1


def test_send_letters_and_fetch_replies_commands(app, runner, sending_mailbox, write_letter, smtp_server, mail_config):
    app.config.update(PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1,localhost", PORTAL_MAIL_CA_FILE=mail_config.ca_file)
    write_letter(sending_mailbox)
    result = runner.invoke(args=["send-letters"])
    assert result.exit_code == 0 and "sent: 1" in result.output
    assert runner.invoke(args=["fetch-replies"]).output.strip() == "No mailbox receives replies."
    assert "worker" in runner.invoke(args=["--help"]).output
