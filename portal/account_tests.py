"""Test account off the request path: a bounded pool runs the test, the form polls its progress.

An account test waits on servers people type in, for up to PORTAL_MAIL_DEADLINE. Run in the
request, three tests to a silent host held three web workers and every other page waited. Here
the page's request only starts a run and answers at once; a small thread pool in the web process
runs it, and writes each stage as it finishes into the run's row, so whichever web process the
form's poll reaches can show it. At most one run per employee and PORTAL_ACCOUNT_TESTS_AT_ONCE
in all are running at a time; the API runs its test in the request, under the same limits.
"""
from __future__ import annotations

import datetime
import json
import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Callable

from flask_babel import lazy_gettext as _l

from portal import mailboxes as service
from portal.db import database
from portal.models import AccountTestRun, Employee, Mailbox, utcnow

log = logging.getLogger("portal.account_tests")

# A run still unfinished this long after its deadline was cut off (its process stopped): it no longer
# counts against the limits, and its poll says so.
ABANDONED_AFTER = datetime.timedelta(seconds=60)
# What a run that failed inside the portal (not at a server) shows: the catalogue's "unexpected answer".
_UNKNOWN = {"code": "unknown", "stage": "", "server_reply": "", "provider": None, "smtp_code": None}
# Finished runs are kept this long (the poll of a slow browser), then removed when a new run starts.
KEPT_FOR = datetime.timedelta(days=1)


class TestsBusy(Exception):
    """A run is refused: this person's previous test is still running (``running``), or too many are running."""

    __test__ = False  # not a pytest test class

    def __init__(self, message, running: "RunView | None" = None):
        super().__init__(str(message))
        self.message = message
        self.running = running


@dataclass(frozen=True)
class RunView:
    """A run as the form shows it: stages so far, and once finished the result and the save proof."""

    id: str
    finished: bool
    interrupted: bool
    result: object  # portal.mail.check.CheckResult (partial while running)
    proof: str


class TestPool:
    """The web process's bounded pool of account-test threads; ``around`` gives each run its context.

    ``size`` is read when the first test starts (made then, so a forked web worker gets threads of its own).
    """

    def __init__(self, size: Callable[[], int], around: Callable[[], AbstractContextManager] = nullcontext):
        self._size = size
        self._around = around
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on one of the pool's threads, with the context and a database connection of its own."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max(1, int(self._size())), thread_name_prefix="portal-account-test")
        self._executor.submit(self._run, job)

    def _run(self, job: Callable[[], None]) -> None:
        with self._around(), database.connection_context():
            job()


def start(values, *, actor, pool: TestPool, at_once: int, mail_config, secret_key, mailbox=None, owner=None,
          ip="", send_test_letter=False) -> RunView:
    """Admit a run (or raise TestsBusy), hand it to ``pool`` and return it as it is now: running, no stages."""
    run = _admit(actor, at_once, mail_config.deadline)
    actor_id, owner_id = actor.id, owner.id if owner is not None else None
    mailbox_id = mailbox.id if mailbox is not None else None

    def job() -> None:
        # Rows read again on the pool's thread: the caller's may be request-bound proxies (the signed-in user).
        try:
            options = dict(actor=Employee.get_by_id(actor_id), mail_config=mail_config, secret_key=secret_key,
                           mailbox=Mailbox.get_or_none(Mailbox.id == mailbox_id) if mailbox_id else None,
                           owner=Employee.get_or_none(Employee.id == owner_id) if owner_id else None,
                           ip=ip, send_test_letter=send_test_letter)
        except Exception:  # the person was deleted meanwhile: the run ends like any other failure
            log.exception("account test %s could not start", run.id)
            _finish(run.id, ok=False, stages=[], lock=threading.Lock(), problem=_UNKNOWN, proof="")
            return
        _run_and_record(run.id, values, options)

    try:
        pool.submit(job)
    except RuntimeError:  # the pool is shutting down with the process
        AccountTestRun.delete_by_id(run.id)
        raise
    return view(run)


def run_now(values, *, actor, at_once: int, mail_config, secret_key, **options):
    """The API's test: in the caller's thread, bounded by the deadline, counted against the same limits."""
    run = _admit(actor, at_once, mail_config.deadline)
    try:
        options = dict(actor=actor, mail_config=mail_config, secret_key=secret_key, **options)
        return _run_and_record(run.id, values, options, raise_errors=True)
    finally:
        AccountTestRun.delete_by_id(run.id)  # the answer carries the result; nothing to poll


def progress(run_id: str, actor, deadline_seconds: float) -> RunView | None:
    """The run as it is now, if ``actor`` started it or is an admin; None for anyone else (or a run long gone)."""
    run = AccountTestRun.get_or_none(AccountTestRun.id == run_id)
    if run is None or (run.employee_id != actor.id and not actor.is_admin):
        return None
    return view(run, abandoned_before=_abandoned_before(deadline_seconds))


def view(run: AccountTestRun, *, abandoned_before: datetime.datetime | None = None) -> RunView:
    """A run row read back into the check's own result objects."""
    from portal.mail.check import CheckResult
    from portal.mail.problems import Problem
    from portal.mail.stages import Stage

    stages = [Stage(**stage) for stage in run.stage_list()]
    raw = run.problem_dict()
    problem = Problem(**raw) if raw else None
    interrupted = not run.finished and abandoned_before is not None and run.started_at < abandoned_before
    return RunView(id=run.id, finished=run.finished or interrupted, interrupted=interrupted,
                   result=CheckResult(ok=bool(run.ok), stages=stages, problem=problem), proof=run.proof or "")


def _abandoned_before(deadline_seconds: float) -> datetime.datetime:
    return utcnow() - datetime.timedelta(seconds=deadline_seconds) - ABANDONED_AFTER


def _admit(actor, at_once: int, deadline_seconds: float) -> AccountTestRun:
    """Make the run's row, unless this person has one running or ``at_once`` are running in all."""
    now = utcnow()
    running = (AccountTestRun.finished_at.is_null()
               & (AccountTestRun.started_at >= _abandoned_before(deadline_seconds)))
    with database.atomic():
        AccountTestRun.delete().where(AccountTestRun.started_at < now - KEPT_FOR).execute()
        own = AccountTestRun.get_or_none(running & (AccountTestRun.employee == actor.id))
        if own is not None:
            raise TestsBusy(_l("Your previous test is still running. Wait for its result, then test again."),
                            running=view(own))
        if AccountTestRun.select().where(running).count() >= at_once:
            raise TestsBusy(_l("Too many account tests are running right now. Try again in a minute."))
        return AccountTestRun.create(id=secrets.token_hex(16), employee=actor.id, started_at=now)


def _run_and_record(run_id: str, values, options: dict, *, raise_errors: bool = False):
    """Run the test, writing each stage into the row as it finishes, then the result and the proof."""
    lock = threading.Lock()
    stages: list[dict] = []

    def on_stage(stage) -> None:
        # Called from the test's threads (outgoing here, incoming in its own): one writer at a time, whole list.
        with lock:
            stages.append(asdict(stage))
            _in_connection(lambda: AccountTestRun.update(stages=json.dumps(stages)).where(
                AccountTestRun.id == run_id).execute())

    try:
        outcome = service.test_mailbox(values, on_stage=on_stage, **options)
    except Exception:
        if not raise_errors:  # the caller's own error handling reports what it raises
            log.exception("account test %s failed inside the portal", run_id)
        _finish(run_id, ok=False, stages=stages, lock=lock, problem=_UNKNOWN, proof="")
        if raise_errors:
            raise
        return None
    result = outcome.result
    # Finished, the stages read as the check reports them (outgoing, then incoming), not in arrival order.
    _finish(run_id, ok=result.ok, stages=[asdict(stage) for stage in result.stages], lock=lock,
            proof=outcome.proof or "", problem=asdict(result.problem) if result.problem else None)
    return outcome


def _finish(run_id: str, *, ok: bool, stages: list, lock: threading.Lock, problem: dict | None, proof: str) -> None:
    with lock:
        AccountTestRun.update(finished_at=utcnow(), ok=ok, stages=json.dumps(stages), proof=proof,
                              problem=json.dumps(problem) if problem else "").where(
            AccountTestRun.id == run_id).execute()


def _in_connection(write: Callable[[], object]) -> None:
    """Run a write on this thread's connection, opening (and closing) one if the thread has none."""
    if database.is_closed():
        with database.connection_context():
            write()
    else:
        write()
