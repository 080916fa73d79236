"""The huey wiring and the commands: a consumer sends what the page queued; one-pass commands for cron and tests."""
import datetime
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from huey import RedisHuey, SqliteHuey

from portal.letters.worker import huey_for, make_consumer, make_huey
from portal.models import Letter, Mailbox, utcnow
from tests.fixtures.letters import passed_test

LEASE = 60  # seconds, PORTAL_LETTER_LEASE of the worker process


def start_send_letters(config, mail_config):
    """`portal send-letters` in its own process, on this test's database and instance folder (its secret key)."""
    env = dict(os.environ, PORTAL_DATABASE_URL=config["PORTAL_DATABASE_URL"],
               PORTAL_INSTANCE_PATH=config["INSTANCE_PATH"], PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*,localhost:*",
               PORTAL_MAIL_CA_FILE=mail_config.ca_file, PORTAL_MAIL_TIMEOUT="10",
               PORTAL_MAILBOX_LETTERS_PER_MINUTE="0", PORTAL_LETTER_LEASE=str(LEASE))
    return subprocess.Popen([str(Path(sys.executable).parent / "portal"), "send-letters"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_when_stalled(worker, smtp_server):
    """SIGKILL the worker once the server holds its reply back (the worker is in the middle of a letter)."""
    try:
        stalled = smtp_server.stalled.wait(30)
        assert stalled, worker.stderr.read1().decode() if worker.poll() is not None else "the worker never got there"
        return Letter.get()
    finally:
        worker.kill()
        worker.wait(timeout=10)


def test_sqlite_storage_in_the_instance_folder_by_default_and_redis_by_url(tmp_path):
    default = make_huey({}, str(tmp_path))
    assert isinstance(default, SqliteHuey) and default.storage.filename == str(tmp_path / "queue.sqlite3")
    redis = make_huey({"PORTAL_QUEUE_URL": "redis://127.0.0.1:1/0"}, str(tmp_path))
    assert isinstance(redis, RedisHuey)
    names = " ".join(default._registry._registry)
    assert all(name in names for name in ("portal.send_letters", "portal.sweep_letters", "portal.fetch_replies"))


def test_an_idle_consumer_sends_the_letter_the_page_queued_within_a_second(
        app, as_employee, sending_mailbox, smtp_server, mail_config, config):
    app.config.update(PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*,localhost:*", PORTAL_MAIL_CA_FILE=mail_config.ca_file,
                      PORTAL_MAIL_TIMEOUT=3)
    app.extensions.pop("portal.huey", None)
    huey = huey_for(app)
    consumer = make_consumer(huey, workers=1, periodic=False)
    consumer.start()
    try:
        time.sleep(3)  # idle long enough for the polling to back off as far as it goes
        from tests.test_letters_views import _form

        as_employee.post("/letters/new", data=_form(as_employee))
        queued = time.monotonic()
        while time.monotonic() - queued < 10 and Letter.get().state != "sent":
            time.sleep(0.02)
        took = time.monotonic() - queued
    finally:
        consumer.stop(graceful=True)
    assert Letter.get().state == "sent" and len(smtp_server.messages) == 1
    assert took < 1.5  # the SQLite queue's polling looks at least every half second; then one SMTP round


def test_send_letters_and_fetch_replies_commands(app, runner, sending_mailbox, write_letter, smtp_server, mail_config):
    app.config.update(PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*,localhost:*", PORTAL_MAIL_CA_FILE=mail_config.ca_file)
    write_letter(sending_mailbox)
    result = runner.invoke(args=["send-letters"])
    assert result.exit_code == 0 and "sent: 1" in result.output
    assert runner.invoke(args=["fetch-replies"]).output.strip() == "No mailbox receives replies."
    assert "worker" in runner.invoke(args=["--help"]).output


def test_a_worker_killed_before_the_final_dot_leaves_the_letter_to_the_next_pass_which_sends_it_once(
        sending_mailbox, write_letter, smtp_server, config, mail_config, run_queue):
    letter = write_letter(sending_mailbox)
    smtp_server.stall("RCPT", 60)

    during = kill_when_stalled(start_send_letters(config, mail_config), smtp_server)

    assert during.state == "sending" and during.phase == ""
    assert during.lease_expires_at <= utcnow() + datetime.timedelta(seconds=LEASE)
    smtp_server.clear_script()
    run_queue()  # the dead worker's lease still holds: nobody touches the letter
    assert Letter.get_by_id(letter.id).state == "sending" and smtp_server.messages == []

    run_queue.later(seconds=LEASE + 1)
    run_queue()
    run_queue.later(hours=1)
    run_queue()

    sent = Letter.get_by_id(letter.id)
    assert sent.state == "sent" and len(smtp_server.messages) == 1
    assert smtp_server.messages[0].rcpt_tos == ["friend@example.com"]


def test_a_worker_killed_after_the_final_dot_leaves_the_letter_uncertain_and_it_is_never_sent_twice(
        sending_mailbox, write_letter, smtp_server, config, mail_config, run_queue):
    letter = write_letter(sending_mailbox)
    smtp_server.stall("DATA", 60)  # the server has taken the letter and holds back its "250"

    during = kill_when_stalled(start_send_letters(config, mail_config), smtp_server)

    assert during.state == "sending"
    assert during.phase == "data"  # the mark, written before the dot, seen by another process
    smtp_server.clear_script()
    run_queue.later(seconds=LEASE + 1)
    run_queue()
    run_queue.later(days=1)
    run_queue()

    lost = Letter.get_by_id(letter.id)
    assert lost.state == "uncertain" and lost.problem_code == "worker_lost"
    assert len(smtp_server.messages) == 1  # the one the killed worker sent; no second copy


def test_a_letter_queued_through_redis_is_sent_by_a_consumer(app, as_employee, sending_mailbox, smtp_server,
                                                             mail_config, redis_server):
    app.config.update(PORTAL_QUEUE_URL=redis_server.url, PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*,localhost:*",
                      PORTAL_MAIL_CA_FILE=mail_config.ca_file, PORTAL_MAIL_TIMEOUT=3)
    app.extensions.pop("portal.huey", None)
    huey = huey_for(app)
    assert isinstance(huey, RedisHuey)
    from tests.test_letters_views import _form

    for subject in ("First", "Second"):
        as_employee.post("/letters/new", data=_form(as_employee, subject=subject))
    assert huey.pending_count() == 2  # a send pass per letter; one runs at a time per mailbox

    consumer = huey.create_consumer(workers=2, worker_type="thread", periodic=False)
    consumer.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and {letter.state for letter in Letter.select()} != {"sent"}:
            time.sleep(0.05)
    finally:
        consumer.stop(graceful=True)
    assert {letter.state for letter in Letter.select()} == {"sent"} and len(smtp_server.messages) == 2
    assert huey.pending_count() == 0


def test_a_pass_that_finds_its_mailbox_s_lock_taken_looks_again_a_moment_later(
        app, sending_mailbox, write_letter, smtp_server, mail_config):
    app.config.update(PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*,localhost:*", PORTAL_MAIL_CA_FILE=mail_config.ca_file)
    app.extensions.pop("portal.huey", None)
    huey = huey_for(app)
    send_letters = huey.portal_tasks.send_letters
    write_letter(sending_mailbox)

    with huey.lock_task(f"portal.send.{sending_mailbox.id}"):  # another worker's pass for this mailbox
        assert send_letters.call_local(sending_mailbox.id) is None
        assert smtp_server.messages == [] and huey.pending_count() == 1  # enqueued again, due a second from now
    assert send_letters.call_local(sending_mailbox.id) == {"sent": 1}
    assert len(smtp_server.messages) == 1


def test_while_one_mailbox_s_server_tarpits_another_mailbox_s_letter_leaves_at_once(
        app, sending_mailbox, make_mailbox, employee, write_letter, make_smtp_server, smtp_server, mail_config):
    # The sweep finds letters of two mailboxes due; one server answers MAIL a byte at a time, forever (each byte
    # beats the read timeout). The other mailbox's letter must not wait behind it, and the tarpit must cost its
    # mailbox no more than the pass's own deadline, then a back-off of its own.
    app.config.update(PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*,localhost:*", PORTAL_MAIL_CA_FILE=mail_config.ca_file,
                      PORTAL_MAIL_TIMEOUT=3, PORTAL_LETTER_PASS_DEADLINE=4, PORTAL_MAILBOX_LETTERS_PER_MINUTE=0)
    app.extensions.pop("portal.huey", None)
    huey = huey_for(app)
    other_server = make_smtp_server()
    other = passed_test(make_mailbox(employee, address=other_server.username, smtp_host="localhost",
                                     smtp_port=other_server.port, smtp_security="starttls",
                                     smtp_username=other_server.username, password=other_server.password))
    smtp_server.tarpit("MAIL", every=0.5)
    stuck, free = write_letter(sending_mailbox), write_letter(other)
    consumer = make_consumer(huey, workers=2, periodic=False)
    consumer.start()
    try:
        huey.portal_tasks.sweep_letters()
        swept = time.monotonic()
        while time.monotonic() - swept < 30 and (Letter.get_by_id(free.id).state != "sent"
                                                 or Letter.get_by_id(stuck.id).state == "sending"):
            time.sleep(0.05)
        stuck_ended = time.monotonic() - swept
    finally:
        consumer.stop(graceful=True)

    assert Letter.get_by_id(free.id).sent_at - Letter.get_by_id(free.id).queued_at < datetime.timedelta(seconds=3)
    assert smtp_server.stalled.is_set()
    assert stuck_ended < 10  # the pass's deadline (4 s), not the tarpit's forever
    stuck = Letter.get_by_id(stuck.id)
    assert stuck.state == "deferred" and smtp_server.messages == []
    backed_off = Mailbox.get_by_id(sending_mailbox.id).stalled_until
    assert backed_off is not None and backed_off > utcnow() + datetime.timedelta(minutes=4)
    assert Mailbox.get_by_id(other.id).stalled_until is None


def test_sigterm_lets_the_worker_finish_the_letter_in_progress_give_back_the_rest_and_exit(
        sending_mailbox, write_letter, smtp_server, config, mail_config):
    first, second = write_letter(sending_mailbox), write_letter(sending_mailbox, to="second@example.com")
    smtp_server.stall("DATA", 2)  # the first letter's dot is taken; its "250" comes two seconds later
    env = dict(os.environ, PORTAL_DATABASE_URL=config["PORTAL_DATABASE_URL"],
               PORTAL_INSTANCE_PATH=config["INSTANCE_PATH"], PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*,localhost:*",
               PORTAL_MAIL_CA_FILE=mail_config.ca_file, PORTAL_MAIL_TIMEOUT="10",
               PORTAL_MAILBOX_LETTERS_PER_MINUTE="0")
    worker = subprocess.Popen([str(Path(sys.executable).parent / "portal"), "worker", "--workers", "1"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        make_huey({}, config["INSTANCE_PATH"]).portal_tasks.send_letters(sending_mailbox.id)
        assert smtp_server.stalled.wait(30), "the worker never reached the first letter's DATA"
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert worker.returncode == 0, worker.stderr.read().decode()
    first, second = Letter.get_by_id(first.id), Letter.get_by_id(second.id)
    assert first.state == "sent" and first.phase == ""  # the transaction in progress was finished and recorded
    assert (second.state, second.lease_token, second.attempts) == ("queued", None, 0)  # given back, untouched
    assert len(smtp_server.messages) == 1


def _immediate_tasks(app, mail_config):
    """The app's huey tasks, run at once in this thread (huey's immediate mode), reaching the test servers."""
    app.config.update(PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*,localhost:*", PORTAL_MAIL_CA_FILE=mail_config.ca_file,
                      PORTAL_MAILBOX_LETTERS_PER_MINUTE=0)
    app.extensions.pop("portal.huey", None)
    huey = huey_for(app)
    huey.immediate = True
    return huey.portal_tasks


def _histogram_count(histogram):
    return next(sample.value for sample in histogram.collect()[0].samples if sample.name.endswith("_count"))


def test_each_send_pass_is_one_info_line_and_its_letters_are_timed(
        app, sending_mailbox, write_letter, smtp_server, mail_config, caplog):
    from portal import metrics

    tasks = _immediate_tasks(app, mail_config)
    write_letter(sending_mailbox, to="a@example.com")
    write_letter(sending_mailbox, to="b@example.com")
    timed = _histogram_count(metrics.worker_metrics().send_seconds)
    with caplog.at_level("INFO", logger="portal.letters"):
        tasks.send_letters(sending_mailbox.id)
    lines = [record.getMessage() for record in caplog.records if record.name == "portal.letters"]
    assert len(lines) == 1, lines
    assert re.fullmatch(rf"send pass: mailbox {sending_mailbox.id}, 2 sent, 0 deferred, 0 failed, 0 uncertain, "
                        r"0 held back, \d+\.\d\d s", lines[0]), lines[0]
    assert _histogram_count(metrics.worker_metrics().send_seconds) == timed + 2


def test_a_failing_send_pass_is_logged_once_with_its_cause_until_it_works_again(
        app, sending_mailbox, write_letter, smtp_server, mail_config, caplog):
    from portal.db import database

    tasks = _immediate_tasks(app, mail_config)
    write_letter(sending_mailbox)
    database.execute_sql("ALTER TABLE letter RENAME TO letter_away")  # a real database fault
    with caplog.at_level("DEBUG", logger="portal.letters"):
        for _ in range(3):
            tasks.send_letters(sending_mailbox.id)
        database.execute_sql("ALTER TABLE letter_away RENAME TO letter")
        tasks.send_letters(sending_mailbox.id)
    records = [record for record in caplog.records if record.name == "portal.letters"]
    errors = [record for record in records if record.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None  # once, without a traceback
    assert f"send pass for mailbox {sending_mailbox.id} failed: " in errors[0].getMessage()
    assert re.search(r"no such table: letter|relation \"letter\" does not exist", errors[0].getMessage())
    assert any("works again" in record.getMessage() for record in records if record.levelname == "INFO")
    assert Letter.get().state == "sent" and len(smtp_server.messages) == 1


def test_letters_stored_while_the_queue_is_down_log_that_once_and_no_traceback(
        app, as_employee, sending_mailbox, caplog):
    from tests.test_letters_views import _form

    app.config["PORTAL_QUEUE_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    app.extensions.pop("portal.huey", None)
    with caplog.at_level("DEBUG", logger="portal.letters"):
        for number in range(3):
            assert as_employee.post("/letters/new", data=_form(as_employee, subject=f"Stored {number}")).status_code \
                == 302
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None and "ConnectionError" in errors[0].getMessage()
    assert Letter.select().count() == 3
