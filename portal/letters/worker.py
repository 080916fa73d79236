"""huey wiring: where the queue lives, thin tasks over the sending core and the reply fetcher, and waking them.

SQLite storage in the instance folder by default (nothing else to run), Redis when
PORTAL_QUEUE_URL is redis://… (several workers on several machines). The database, not huey,
holds the letters: a lost huey message only delays a letter until the next minute's sweep.

One wake-up: a page or API call that queues a letter enqueues a send pass for its mailbox. One pass
per mailbox runs at a time (huey's ``lock_task``); a pass that finds the lock taken enqueues itself
again a moment later, so a letter stored while another pass ends is not left to the sweep. Passes
for different mailboxes run side by side in the consumer's worker threads, so a mailbox whose
server stalls holds up only its own letters. The sweep enqueues one pass per mailbox with letters due.
"""
import datetime
import logging
import os
import signal
import threading
import time

from huey import RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer
from huey.exceptions import TaskLockedException

from portal import password_ending
from portal.directory import register_directory_sync
from portal.letters.claims import NO_MAILBOX
from portal.letters.queue import QueuePolicy, due_mailboxes, process_due_letters
from portal.letters.replies import fetch_replies
from portal.logs import FaultLog
from portal.mail.settings import MailConfig
from portal.mailbox_health import register_health_checks
from portal.models import Letter, utcnow
from portal.portal_mail import register_digest
from portal.secret_box import active_box
from portal.webhooks import register_webhook_tasks

log = logging.getLogger("portal.letters")
faults = FaultLog(log)  # a pass, sweep or fetch that fails says so once, with its cause, until it works again
EXTENSION = "portal.huey"
RELOCK_DELAY = 1.0  # seconds before a pass that found its mailbox's lock taken looks again
POLL_MAX = 0.5  # seconds an idle consumer on the SQLite queue sleeps at most between looks

# Set by the worker's SIGTERM/SIGINT: every running pass finishes the SMTP transaction in progress, gives its other
# letters back and ends.
stopping = threading.Event()


def make_huey(config, instance_path):
    """A huey for these settings, with the portal's tasks registered on it (``huey.portal_tasks``)."""
    url = (config.get("PORTAL_QUEUE_URL") or "").strip()
    # results=False: nothing reads a task's return value, and kept they would pile up in the storage.
    if url.split(":", 1)[0] in ("redis", "rediss", "unix"):
        huey = RedisHuey("portal", url=url, results=False)
    else:
        os.makedirs(instance_path, mode=0o700, exist_ok=True)
        filename = os.path.join(instance_path, "queue.sqlite3")
        os.close(os.open(filename, os.O_RDONLY | os.O_CREAT, 0o600))  # before SQLite: its WAL files take this mode
        huey = SqliteHuey("portal", filename=filename, results=False)
    huey.portal_tasks = _register(huey, dict(config))
    return huey


class PortalTasks:
    """The tasks registered on one huey."""

    def __init__(self, send_letters, sweep_letters, fetch_replies, sync_directory):
        self.send_letters, self.sweep_letters, self.fetch_replies = send_letters, sweep_letters, fetch_replies
        self.sync_directory = sync_directory


def _register(huey, config):
    def mail_config():
        return MailConfig.from_mapping(config)

    policy = QueuePolicy.from_mapping(config)

    @huey.task(name="portal.send_letters")
    def send_letters(mailbox_id=None):
        """One send pass for a mailbox's due letters (or everyone's), one pass per mailbox at a time."""
        job = f"send pass for mailbox {mailbox_id}"
        started = time.perf_counter()
        try:
            with huey.lock_task(send_lock(mailbox_id)):
                report = process_due_letters(mail_config(), policy, mailbox_id=mailbox_id, stop=stopping)
        except TaskLockedException:
            send_letters.schedule((mailbox_id,), delay=RELOCK_DELAY)
            return None
        except Exception as error:  # the database gone, say: the minute's sweep tries again
            _failed("send_pass", job, error)
            return None
        faults.succeeded(job)
        _pass_done(mailbox_id, report, time.perf_counter() - started)
        if report.stopped == "deadline":
            send_letters(mailbox_id)  # more was due than one pass may take: the rest in a new pass
        elif (mailbox_id is not None and report.next_due is not None and not stopping.is_set()
              and (report.outcomes["held"] or report.outcomes["deferred"])):
            # The letters this pass held back (a limit) or deferred (a retry) get a pass when the first of them
            # comes due, rather than at the next minute's sweep. Only the pass that put them back schedules it:
            # passes that found nothing to do schedule nothing, so a burst of wake-ups does not multiply.
            send_letters.schedule((mailbox_id,), eta=_whole_second_after(max(report.next_due, utcnow())))
        return dict(report.outcomes)

    @huey.periodic_task(crontab(minute="*"), name="portal.sweep_letters")
    def sweep_letters():
        """Every minute: retries that came due, letters held by a limit, and leases a dead worker left; one pass
        per mailbox, so that they run side by side."""
        from portal.db import database

        try:
            with database.connection_context():
                mailboxes = due_mailboxes(utcnow())
        except Exception as error:
            _failed("sweep", "the minute's sweep of the queue", error)
            return 0
        faults.succeeded("the minute's sweep of the queue")
        for mailbox_id in mailboxes:
            send_letters(NO_MAILBOX if mailbox_id is None else mailbox_id)
        return len(mailboxes)

    minutes = max(1, int(config.get("PORTAL_REPLY_FETCH_MINUTES") or 2))

    @huey.periodic_task(crontab(minute=f"*/{minutes}"), name="portal.fetch_replies")
    def fetch_replies_task():
        """Every few minutes: fetch replies for every mailbox that receives them."""
        started = time.perf_counter()
        try:
            reports = fetch_replies(mail_config())
        except Exception as error:
            _failed("reply_fetch", "fetching replies", error)
            return None
        faults.succeeded("fetching replies")
        _fetch_done(reports, time.perf_counter() - started)
        return {report.address: len(report.replies) for report in reports}

    sync_directory = register_directory_sync(huey, config, active_box)
    tasks = PortalTasks(send_letters, sweep_letters, fetch_replies_task, sync_directory)
    tasks.notification_digest = register_digest(huey)  # the notification e-mails held back for their 15 minutes
    tasks.check_mailbox, tasks.recheck_mailboxes, tasks.fetch_now = register_health_checks(huey, config, mail_config)
    tasks.warn_password_endings = password_ending.register_warnings(huey)  # hourly: told once each, 30 days ahead
    # Webhooks: one try per delivery (retried at its back-off) and the minute's sweep for lost ones.
    tasks.deliver_webhook, tasks.sweep_webhooks = register_webhook_tasks(huey, config, active_box)
    return tasks


def _failed(job, what, error):
    from portal import metrics

    metrics.worker_metrics().faults.labels(job).inc()
    faults.failed(what, error)


def _pass_done(mailbox_id, report, seconds):
    """One INFO line for a pass that did something, and its figures for /metrics."""
    from portal import metrics
    from portal.db import database

    metrics.worker_metrics().pass_seconds.observe(seconds)
    if not report.total:
        return
    outcomes = report.outcomes
    log.info("send pass: mailbox %s, %d sent, %d deferred, %d failed, %d uncertain, %d held back, %.2f s",
             "any" if mailbox_id is None else mailbox_id, outcomes["sent"], outcomes["deferred"],
             outcomes["failed"], outcomes["uncertain"], outcomes["held"], seconds)
    sent = report.letters.get("sent") or []
    if sent:
        try:
            with database.connection_context():
                times = list(Letter.select(Letter.queued_at, Letter.sent_at)
                             .where(Letter.id.in_(sent) & Letter.sent_at.is_null(False)).tuples())
        except Exception as error:  # the letters are sent: only their figures are lost
            faults.failed("reading the send times", error)
            return
        for queued_at, sent_at in times:
            metrics.worker_metrics().send_seconds.observe(max(0.0, (sent_at - queued_at).total_seconds()))


def _fetch_done(reports, seconds):
    """One INFO line for a reply fetch: mailboxes looked at, replies stored, mailboxes that failed."""
    if not reports:
        return
    failing = [report.address for report in reports if not report.ok]
    log.info("reply fetch: %d mailboxes, %d replies, %d failed%s, %.2f s", len(reports),
             sum(len(report.replies) for report in reports), len(failing),
             f" ({', '.join(failing)})" if failing else "", seconds)


def _whole_second_after(when):
    """huey keeps an eta to the whole second, cut down: a pass scheduled for 12:00:07.9 ran at 12:00:07.0, found
    its letter not yet due and left it to the minute's sweep. Rounded up, it runs once the letter is due."""
    return when if not when.microsecond else when.replace(microsecond=0) + datetime.timedelta(seconds=1)


def send_lock(mailbox_id):
    """The name of the huey lock a mailbox's send pass holds."""
    return f"portal.send.{'all' if mailbox_id is None else mailbox_id}"


def send_locks():
    """Every send pass's lock name. A worker killed outright (SIGKILL) leaves its lock behind (huey's storages
    keep no expiry here), so a worker flushes them when it starts, as huey's own ``flush_locks`` does. With
    workers on several machines, one that starts may free a lock another holds: for a moment two passes of a
    mailbox may run side by side, and the leases still keep every letter to one of them."""
    from portal.db import database
    from portal.models import Mailbox

    with database.connection_context():
        ids = [mailbox_id for (mailbox_id,) in Mailbox.select(Mailbox.id).tuples()]
    return [send_lock(mailbox_id) for mailbox_id in [None, NO_MAILBOX, *ids]]


def make_consumer(huey, workers=2, *, periodic=True, initial_delay=0.05, backoff=1.15, max_delay=POLL_MAX,
                  flush_send_locks=False):
    """huey's consumer with worker threads and the periodic sweeps; on the SQLite queue it polls at most
    ``max_delay`` apart, so an idle worker starts on a letter within a second (Redis blocks instead).
    ``flush_send_locks``: take down the locks a killed worker left (``portal worker`` does, at start)."""
    extra = ",".join(send_locks()) if flush_send_locks else None
    return Consumer(huey, workers=workers, worker_type="thread", periodic=periodic, initial_delay=initial_delay,
                    backoff=backoff, max_delay=max_delay, extra_locks=extra)


def run_consumer(consumer, *, health_check_seconds=10.0):
    """Run the consumer until SIGTERM or SIGINT; then every pass finishes the SMTP transaction it is in, gives back
    its other letters, and the workers are waited for before returning."""
    stopping.clear()
    consumer.start()

    def stop(signum, frame):
        log.info("received %s: finishing the letters in progress", signal.Signals(signum).name)
        stopping.set()

    # Installed after huey's own (consumer.start sets them): both signals stop gracefully, and the passes hear it.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    while not stopping.wait(health_check_seconds):
        consumer.check_worker_health()
    consumer.stop(graceful=True)


def huey_for(app):
    """The app's huey, made once per app."""
    huey = app.extensions.get(EXTENSION)
    if huey is None:
        huey = app.extensions[EXTENSION] = make_huey(app.config, app.instance_path)
    return huey


def wake_sender(app, letter):
    """Ask a worker to send this letter's mailbox's due letters now; the minute sweep covers a failure here."""
    try:
        huey_for(app).portal_tasks.send_letters(letter.mailbox_id)
    except Exception as error:  # the queue storage is down: the letter is safe in the database all the same
        faults.failed("waking the sending worker (letters wait for the minute's sweep)", error)
    else:
        faults.succeeded("waking the sending worker (letters wait for the minute's sweep)")


def next_sweep(now=None):
    """When the minute sweep will next look at the queue (shown beside a held-back letter)."""
    now = now or datetime.datetime.utcnow()
    return now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
