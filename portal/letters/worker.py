"""huey wiring: where the queue lives, thin tasks over the sending core and the reply fetcher, and waking them.

SQLite storage in the instance folder by default (nothing else to run), Redis when
PORTAL_QUEUE_URL is redis://… (several workers on several machines). The database, not huey,
holds the letters: a lost huey message only delays a letter until the next sweep.
"""
import datetime
import logging
import os
import threading
import time
from types import SimpleNamespace

from huey import RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer, Worker

from portal.directory import register_directory_sync
from portal.letters.doorbell import Doorbell, ring
from portal.letters.queue import QueuePolicy, process_due_letters
from portal.letters.replies import fetch_replies
from portal.mail.settings import MailConfig
from portal.secret_box import active_box

log = logging.getLogger("portal.letters")
EXTENSION = "portal.huey"


def make_huey(config, instance_path):
    """A huey for these settings, with the portal's tasks registered on it (``huey.portal_tasks``)."""
    url = (config.get("PORTAL_QUEUE_URL") or "").strip()
    # results=False: nothing reads a task's return value, and kept they would pile up in the storage.
    if url.split(":", 1)[0] in ("redis", "rediss", "unix"):
        huey = RedisHuey("portal", url=url, results=False)
    else:
        os.makedirs(instance_path, exist_ok=True)
        huey = SqliteHuey("portal", filename=os.path.join(instance_path, "queue.sqlite3"), results=False)
    huey.portal_tasks = _register(huey, dict(config))
    return huey


def _register(huey, config):
    def mail_config():
        return MailConfig.from_mapping(config)

    def policy():
        return QueuePolicy.from_mapping(config)

    passes = MailboxPasses()

    def send_pass(mailbox_id):
        if mailbox_id is not None:
            # Taken down before the first claim: a letter stored from now on either is claimed by this
            # pass or raises the flag again and queues the next one. No wake-up is lost.
            huey.delete(_wake_key(mailbox_id))
        # A lingering pass gives way as soon as anything else is queued for the worker's threads.
        report = process_due_letters(mail_config(), policy(), mailbox_id=mailbox_id,
                                     others_waiting=lambda: huey.pending_count() > 0)
        if report.total:
            log.info("letters: %s", dict(report.outcomes))
        return dict(report.outcomes)

    @huey.task(name="portal.send_letters")
    def send_letters(mailbox_id=None):
        """Send what is due (one mailbox's letters, or all)."""
        if mailbox_id is None:
            return send_pass(None)
        return passes.run(mailbox_id, lambda: send_pass(mailbox_id),
                          on_lost_wakeup=lambda: huey.delete(_wake_key(mailbox_id)))

    @huey.periodic_task(crontab(minute="*"), name="portal.sweep_letters")
    def sweep_letters():
        """Every minute: retries that came due, letters held by a limit, and leases a dead worker left."""
        return send_letters.call_local()

    minutes = max(1, int(config.get("PORTAL_REPLY_FETCH_MINUTES") or 2))

    @huey.periodic_task(crontab(minute=f"*/{minutes}"), name="portal.fetch_replies")
    def fetch_replies_task():
        """Every few minutes: fetch replies for every mailbox that receives them."""
        reports = fetch_replies(mail_config())
        return {report.address: len(report.replies) for report in reports}

    sync_directory = register_directory_sync(huey, config, active_box)
    return SimpleNamespace(send_letters=send_letters, sweep_letters=sweep_letters,
                           fetch_replies=fetch_replies_task, sync_directory=sync_directory)


class MailboxPasses:
    """One send pass per mailbox at a time in this worker: a wake-up for a mailbox whose pass is running
    asks that pass to look once more before it ends, instead of opening a second connection beside it.

    A worker thread that took the wake-up is free again at once; the running pass picks up what the
    wake-up was for. Across worker processes the claims still keep every letter to one sender.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._running: set = set()
        self._again: set = set()

    def run(self, mailbox_id, send_pass, on_lost_wakeup=None):
        """``send_pass()`` for this mailbox, repeated while wake-ups came in during it; None if one was running.

        If the pass fails with a wake-up waiting for it, ``on_lost_wakeup()`` is called (the worker takes its
        flag down, so that the next letter wakes a new pass instead of waiting for the minute sweep).
        """
        with self._lock:
            if mailbox_id in self._running:
                self._again.add(mailbox_id)
                return None
            self._running.add(mailbox_id)
        try:
            while True:
                outcome = send_pass()
                with self._lock:  # decided and let go under one lock: a wake-up is either seen here or runs anew
                    if mailbox_id not in self._again:
                        self._running.discard(mailbox_id)
                        return outcome
                    self._again.discard(mailbox_id)
        except BaseException:
            with self._lock:
                self._running.discard(mailbox_id)
                lost = mailbox_id in self._again
                self._again.discard(mailbox_id)
            if lost and on_lost_wakeup is not None:
                on_lost_wakeup()
            raise


def make_consumer(huey, workers=2, *, periodic=True, initial_delay=0.05, backoff=1.15, max_delay=2.0):
    """huey's consumer (worker threads, the periodic sweeps) that sleeps on the queue's doorbell when it has one.

    Rung by ``wake``, an idle worker starts on a letter at once however long it has been asleep;
    without a doorbell (another worker holds it, not Linux) it polls, at most ``max_delay`` apart.
    """
    doorbell = None if huey.storage.blocking else Doorbell.bind(huey.storage.filename)
    if doorbell is None and not huey.storage.blocking:
        log.warning("no doorbell for %s (another worker holds it, or not Linux): polling the queue every %.1f s "
                    "at most", huey.storage.filename, max_delay)

    class BellWorker(Worker):
        def sleep(self):
            if doorbell is None:
                return super().sleep()
            self.delay = min(self.delay, self.max_delay)
            self.delay = self.default_delay if doorbell.wait(self.delay) else self.delay * self.backoff

    class BellConsumer(Consumer):
        worker_class = BellWorker

        def stop(self, graceful=False):
            if doorbell is not None:
                self.stop_flag.set()
                ring(huey.storage.filename)  # the threads asleep on the bell see the stop flag now
            return super().stop(graceful)

    consumer = BellConsumer(huey, workers=workers, worker_type="thread", periodic=periodic, initial_delay=initial_delay,
                            backoff=backoff, max_delay=max_delay)
    consumer.doorbell = doorbell
    return consumer


def huey_for(app):
    """The app's huey, made once per app."""
    huey = app.extensions.get(EXTENSION)
    if huey is None:
        huey = app.extensions[EXTENSION] = make_huey(app.config, app.instance_path)
    return huey


def _wake_key(mailbox_id):
    return f"portal.wake.{mailbox_id}"


WAKE_STALE = 60.0  # seconds after which a raised flag no longer stops a wake-up (its task was lost)


def wake(huey, mailbox_id):
    """Queue a send pass for the mailbox unless one is already waiting: a burst of letters wakes one pass, not one each.

    The flag is a key in huey's own storage (SQLite or Redis) holding when it was raised, set only
    if absent and taken down when the pass starts. A flag older than WAKE_STALE (a crash between
    raising it and queueing the task, a task lost with its Redis) is raised again.
    """
    if mailbox_id is None:
        return _queue_pass(huey, None)
    key, now = _wake_key(mailbox_id), time.time()
    raised = huey.get(key, peek=True)  # a read first: in a burst the flag is nearly always up already
    if isinstance(raised, (int, float)) and now - raised < WAKE_STALE:
        return None
    if raised is None:
        if not huey.put_if_empty(key, now):
            return None  # raised by someone else just now
    else:
        huey.put(key, now)
    try:
        return _queue_pass(huey, mailbox_id)
    except Exception:
        huey.delete(key)
        raise


def _queue_pass(huey, mailbox_id):
    """Queue a send pass and ring the doorbell of a worker sleeping on the SQLite queue."""
    task = huey.portal_tasks.send_letters(mailbox_id)
    if not huey.storage.blocking:
        ring(huey.storage.filename)
    return task


def wake_sender(app, letter):
    """Ask a worker to send this letter's mailbox's due letters now; the minute sweep covers a failure here."""
    try:
        wake(huey_for(app), letter.mailbox_id)
    except Exception:  # the queue storage is down: the letter is safe in the database all the same
        log.exception("could not wake the sending worker for letter %s", letter.id)


def next_sweep(now=None):
    """When the minute sweep will next look at the queue (shown beside a held-back letter)."""
    now = now or datetime.datetime.utcnow()
    return now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
