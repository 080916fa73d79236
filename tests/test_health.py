"""Health: /healthz, /readyz with its four checks, worker heartbeats and the admins' "no worker" banner."""
import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal.db import open_database
from portal.health import Heartbeat, WorkerHeartbeat, beat, last_heartbeat, letters_wait_for_a_worker
from portal.migrations import upgrade
from portal.models import Letter, utcnow
from tests.conftest import page_text
from tests.servers.smtp import free_port


def queued_letter(author):
    return Letter.create(author=author, from_address="box@example.com", to_header="friend@example.com",
                         subject="Waiting", message_id=f"<wait-{Letter.select().count()}@example.com>",
                         raw_message="Subject: Waiting\r\n\r\nHello\r\n", state="queued")


def test_healthz_says_only_that_the_process_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_data(as_text=True) == "ok\n"
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_ready_with_a_worker_seen_and_says_nothing_but_status_words(client, config):
    beat("host-a:1")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "database: ok\nmigrations: ok\nqueue: ok\nworker: ok\n"


def test_readyz_is_unready_when_no_worker_was_seen_for_two_minutes(client):
    beat("host-a:1", now=utcnow() - datetime.timedelta(seconds=121))
    response = client.get("/readyz")
    assert response.status_code == 503 and "worker: none" in response.get_data(as_text=True)


def test_readyz_is_unready_while_the_queue_is_down(config, redis_server):
    config["PORTAL_QUEUE_URL"] = redis_server.url
    from portal import create_app

    app = create_app(config)
    client = app.test_client()
    with app.app_context():
        beat("host-a:1")
    assert client.get("/readyz").status_code == 200
    redis_server.stop()
    response = client.get("/readyz")
    assert response.status_code == 503 and "queue: down" in response.get_data(as_text=True)
    assert redis_server.url not in response.get_data(as_text=True)


def test_readyz_is_unready_while_migrations_are_behind(config, tmp_path):
    from portal import create_app

    path = tmp_path / "old.sqlite3"
    old = open_database(f"sqlite:///{path}")
    upgrade(old, target="m0030_account_test_runs")
    old.close()
    config["PORTAL_DATABASE_URL"] = f"sqlite:///{path}"
    response = create_app(config).test_client().get("/readyz")
    assert response.status_code == 503
    assert "database: ok\nmigrations: behind\n" in response.get_data(as_text=True)


def test_while_the_database_is_down_readyz_says_so_and_healthz_still_answers(config):
    from portal import create_app

    config["PORTAL_DATABASE_URL"] = f"postgresql://portal:s3cret@127.0.0.1:{free_port('127.0.0.1')}/portal"
    client = create_app(config).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_data(as_text=True) == "database: down\nmigrations: down\nqueue: ok\nworker: down\n"
    assert client.get("/healthz").status_code == 200


def test_a_heartbeat_thread_beats_until_stopped_and_then_takes_its_row_away(app):
    heartbeat = Heartbeat(interval=0.05, worker="host-b:2").start()
    deadline = time.monotonic() + 5
    while last_heartbeat() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert WorkerHeartbeat.get_by_id("host-b:2").seen_at is not None
    heartbeat.stop()
    assert WorkerHeartbeat.select().count() == 0


def test_the_banner_needs_waiting_letters_and_no_worker(app, employee):
    assert not letters_wait_for_a_worker(120)  # nothing waits
    queued_letter(employee)
    assert letters_wait_for_a_worker(120)
    beat("host-a:1")
    assert not letters_wait_for_a_worker(120)
    assert letters_wait_for_a_worker(120, now=utcnow() + datetime.timedelta(seconds=121))


@pytest.mark.parametrize(("language", "words"), [("en", "Letters are waiting: no worker is running."),
                                                 ("ru", "Письма ждут отправки: не запущен ни один обработчик")])
def test_admins_see_the_banner_on_every_page_while_letters_wait_without_a_worker(client, auth, admin, employee,
                                                                                 language, words):
    admin.language = language
    admin.save()
    queued_letter(employee)
    auth.login(admin)
    for path in ("/", "/outbox", "/employees"):
        assert words in page_text(client.get(path)), path
    beat("host-a:1")
    assert words not in page_text(client.get("/"))


def test_employees_do_not_see_the_worker_banner(client, auth, employee):
    queued_letter(employee)
    auth.login(employee)
    assert "no worker is running" not in page_text(client.get("/"))


def test_the_worker_command_writes_a_heartbeat_while_it_runs(app, config, tmp_path):
    env = dict(os.environ, PORTAL_DATABASE_URL=config["PORTAL_DATABASE_URL"], PORTAL_INSTANCE_PATH=str(tmp_path / "w"),
               PORTAL_SECRET_KEY="worker-test")
    worker = subprocess.Popen([str(Path(sys.executable).with_name("portal")), "worker", "--workers", "1"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while WorkerHeartbeat.select().count() == 0 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.1)
        assert WorkerHeartbeat.select().count() == 1, worker.stdout.read1().decode() if worker.poll() else ""
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=20)
    assert WorkerHeartbeat.select().count() == 0  # a clean stop takes the row away at once
