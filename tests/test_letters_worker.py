"""The huey wiring and the commands: a consumer sends what the page queued; one-pass commands for cron and tests."""
import datetime
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from huey import RedisHuey, SqliteHuey

from portal.letters.marks import data_marks
from portal.letters.worker import huey_for, make_consumer, make_huey
from portal.models import Letter, utcnow

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


def test_a_consumer_sends_the_letter_the_page_queued_at_once_on_its_doorbell(
        app, as_employee, sending_mailbox, smtp_server, mail_config, config):
    app.config.update(PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*,localhost:*", PORTAL_MAIL_CA_FILE=mail_config.ca_file,
                      PORTAL_MAIL_TIMEOUT=3)
    app.extensions.pop("portal.huey", None)
    huey = huey_for(app)
    # Polling alone would look at the queue once a minute: only the page's ring can start it sooner.
    consumer = make_consumer(huey, workers=1, periodic=False, initial_delay=60, max_delay=60)
    consumer.start()
    try:
        time.sleep(0.2)  # the worker has looked once and is asleep
        from tests.test_letters_views import _form

        as_employee.post("/letters/new", data=_form(as_employee))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Letter.get().state != "sent":
            time.sleep(0.05)
    finally:
        consumer.stop(graceful=True)
    assert Letter.get().state == "sent" and len(smtp_server.messages) == 1


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
    with data_marks() as marks:  # written before the dot, seen by another process
        assert marks.reached_data([letter.id]) == {letter.id}
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
    assert huey.pending_count() == 1  # two letters in a burst wake one send pass, not two

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


def test_a_wake_up_during_a_mailbox_s_pass_makes_that_pass_look_again_instead_of_a_second_pass_beside_it():
    from portal.letters.worker import MailboxPasses

    passes, inside, release = MailboxPasses(), threading.Event(), threading.Event()
    runs, at_once, busy = [], [], threading.Lock()

    def send_pass(name):
        def run():
            if not busy.acquire(blocking=False):
                at_once.append(name)  # two passes of one mailbox at the same time
                return
            try:
                runs.append(name)
                inside.set()
                release.wait(5)
            finally:
                busy.release()
            return name
        return run

    first = threading.Thread(target=lambda: passes.run(7, send_pass("first")))
    first.start()
    assert inside.wait(5)
    assert passes.run(7, send_pass("woken")) is None  # returns at once: the running pass will look again
    assert passes.run(8, lambda: "other mailbox") == "other mailbox"  # another mailbox is not held up
    release.set()
    first.join(5)

    assert runs == ["first", "first"] and at_once == []  # looked once more, never two at once
    assert passes.run(7, send_pass("later")) == "later"  # and the mailbox is free again


def test_a_pass_that_fails_with_a_wake_up_waiting_lets_the_next_letter_wake_a_new_pass():
    from portal.letters.worker import MailboxPasses

    passes, inside, release, lost = MailboxPasses(), threading.Event(), threading.Event(), []

    def failing_pass():
        inside.set()
        release.wait(5)
        raise OSError("database gone")

    errors = []
    first = threading.Thread(target=lambda: errors.append(_raised(passes.run, 3, failing_pass,
                                                                  on_lost_wakeup=lambda: lost.append(3))))
    first.start()
    assert inside.wait(5)
    assert passes.run(3, lambda: "second") is None  # a wake-up for the running pass
    release.set()
    first.join(5)
    assert errors == [OSError] and lost == [3]  # the flag is taken down: the next letter queues a new pass
    assert passes.run(3, lambda: "free again") == "free again"


def _raised(function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except Exception as error:
        return type(error)
    return None
