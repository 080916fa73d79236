"""Is the portal well? Worker heartbeats, and the readiness checks /readyz answers from. No Flask here.

Every worker process writes a heartbeat row every HEARTBEAT_INTERVAL seconds; the portal
counts a worker as running while some row is younger than the silence it is configured with
(PORTAL_WORKER_SILENCE, 2 minutes). Readiness is four cheap checks, each answered with a
status word only: the database answers, its migrations are current, the queue's storage
answers, a worker has been seen.
"""
import dataclasses
import datetime
import logging
import os
import socket
import threading
import weakref

from peewee import CharField, DateTimeField, fn

from portal.db import database
from portal.migrations import applied, available
from portal.models import BaseModel, Letter, utcnow

log = logging.getLogger("portal.health")
HEARTBEAT_INTERVAL = 30.0
WAITING_STATES = ("queued", "deferred")


class WorkerHeartbeat(BaseModel):
    """The last time a worker process said it was alive (m0050)."""

    worker = CharField(max_length=200, primary_key=True)
    started_at = DateTimeField(default=utcnow)
    seen_at = DateTimeField(default=utcnow, index=True)


def worker_name():
    """This process's name in the heartbeat table: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def beat(worker, now=None):
    """Record that `worker` is alive now."""
    now = now or utcnow()
    (WorkerHeartbeat.insert(worker=worker, started_at=now, seen_at=now)
     .on_conflict(conflict_target=[WorkerHeartbeat.worker], update={WorkerHeartbeat.seen_at: now}).execute())


def stop_beating(worker):
    """A worker that stops cleanly takes its row away, so that the portal knows at once."""
    WorkerHeartbeat.delete().where(WorkerHeartbeat.worker == worker).execute()


def last_heartbeat():
    """When any worker was last seen, or None."""
    return WorkerHeartbeat.select(fn.MAX(WorkerHeartbeat.seen_at)).scalar()


def workers_seen(silence, now=None):
    """How many workers wrote a heartbeat within the last `silence` seconds."""
    since = (now or utcnow()) - datetime.timedelta(seconds=silence)
    return WorkerHeartbeat.select().where(WorkerHeartbeat.seen_at >= since).count()


def letters_wait_for_a_worker(silence, now=None, *, seen=None):
    """True when letters wait to be sent and no worker has been seen for `silence` seconds: the admin banner.
    `seen`: what workers_seen already answered for this page, so it is asked once."""
    if workers_seen(silence, now) if seen is None else seen:
        return False
    return Letter.select().where(Letter.state.in_(WAITING_STATES)).exists()


class Heartbeat:
    """A thread that beats for this worker process until stopped; a failed beat is logged once and retried."""

    def __init__(self, interval=HEARTBEAT_INTERVAL, worker=None):
        self.interval = interval
        self.worker = worker or worker_name()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="portal-heartbeat", daemon=True)
        self._failing = False

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        """Stop beating and take this worker's row away."""
        self._stopped.set()
        self._thread.join(timeout=self.interval)
        try:
            with database.connection_context():
                stop_beating(self.worker)
        except Exception as error:  # the database is down: the row simply grows old
            log.warning("could not remove the heartbeat of %s: %s", self.worker, error)

    def _run(self):
        while True:
            try:
                with database.connection_context():
                    beat(self.worker)
                if self._failing:
                    log.info("heartbeat of %s written again", self.worker)
                self._failing = False
            except Exception as error:
                if not self._failing:  # once per outage, not every half minute
                    log.warning("could not write the heartbeat of %s: %s", self.worker, error)
                self._failing = True
            if self._stopped.wait(self.interval):
                return


@dataclasses.dataclass
class Readiness:
    """Each check's status word ("ok", "down", "behind", "none"); ready when every one is "ok"."""

    checks: dict

    @property
    def ready(self):
        return all(word == "ok" for word in self.checks.values())

    def text(self):
        return "".join(f"{name}: {word}\n" for name, word in self.checks.items())


_current_databases = weakref.WeakSet()  # once current it stays so: an upgrade restarts the processes


def _migrations_word():
    if database.obj not in _current_databases and set(available()) <= applied(database.obj):
        _current_databases.add(database.obj)
    return "ok" if database.obj in _current_databases else "behind"


def readiness(queue_reachable, silence):
    """The readiness checks; `queue_reachable()` says whether the queue's storage answers."""
    checks = {}
    try:
        with database.connection_context():
            database.execute_sql("SELECT 1")
            checks["database"] = "ok"
            checks["migrations"] = _migrations_word()
            checks["worker"] = "ok" if workers_seen(silence) else "none"
    except Exception as error:
        log.warning("readiness: the database does not answer: %s", error)
        checks.setdefault("database", "down")
        checks.setdefault("migrations", "down")
        checks.setdefault("worker", "down")
    try:
        checks["queue"] = "ok" if queue_reachable() else "down"
    except Exception as error:
        log.warning("readiness: the queue does not answer: %s", error)
        checks["queue"] = "down"
    return Readiness({name: checks[name] for name in ("database", "migrations", "queue", "worker")})
