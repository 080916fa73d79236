"""/metrics in Prometheus text format, from the official prometheus_client.

Two kinds of figures. HTTP requests by route and status are counted in each web process; under
gunicorn (PROMETHEUS_MULTIPROC_DIR set, see deploy/gunicorn.conf.py) prometheus_client's
multiprocess mode adds up every process's files. Letters by state, the queue's depth and the
age of its oldest due letter, account tests by outcome, reply fetches and their problems and
mailboxes by state are read from the database when the page is scraped, so every process
answers the same and a restart loses nothing.

Only addresses in PORTAL_METRICS_ALLOW (addresses or CIDR ranges) or a request carrying
PORTAL_METRICS_TOKEN as its bearer token may read it.
"""
import functools
import hmac
import ipaddress
import os
import time
from dataclasses import dataclass

from peewee import fn
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from portal.models import AccountTestRun, Letter, Mailbox, MailboxInbox, utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LETTER_STATES = ("queued", "sending", "deferred", "sent", "failed", "uncertain", "cancelled")
DUE_STATES = ("queued", "deferred")

# The process's own registry: in multiprocess mode these write to PROMETHEUS_MULTIPROC_DIR instead.
http_requests = Counter("portal_http_requests", "HTTP requests answered, by route and status.",
                        ["route", "method", "status"])
http_seconds = Histogram("portal_http_request_seconds", "Time to answer an HTTP request, by route.", ["route"],
                         buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


@dataclass(frozen=True)
class WorkerMetrics:
    """Figures the worker processes observe (portal/letters/worker.py). Under systemd each worker writes them to
    its own PROMETHEUS_MULTIPROC_DIR, which the web processes read as PORTAL_METRICS_WORKER_DIR."""

    send_seconds: Histogram
    pass_seconds: Histogram
    faults: Counter


@functools.cache
def worker_metrics():
    """The worker's figures, made on first use: a metric without labels opens its multiprocess file when it is
    made, and a command that only imports this module (``portal init-db``) may run before that folder exists."""
    return WorkerMetrics(
        send_seconds=Histogram(
            "portal_letter_send_seconds", "Time from a letter being queued to its server accepting it.",
            buckets=(0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400)),
        pass_seconds=Histogram("portal_send_pass_seconds", "Time one send pass of the worker took.",
                               buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)),
        faults=Counter("portal_worker_faults", "Worker jobs (send passes, sweeps, reply fetches) that failed, by job.",
                       ["job"]))


def allowed_networks(setting):
    """The networks a PORTAL_METRICS_ALLOW string names ("127.0.0.1, 10.0.0.0/8"); ValueError names a bad one."""
    networks = []
    for entry in (setting or "").replace(";", ",").split(","):
        entry = entry.strip()
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"PORTAL_METRICS_ALLOW: {entry!r} is not an address or a CIDR range") from None
    return networks


def may_read(remote_address, authorization, networks, token):
    """Whether this client may read the metrics: an allowed address, or the right bearer token."""
    if token:
        scheme, _, offered = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), token.encode()):
            return True
    try:
        address = ipaddress.ip_address((remote_address or "").split("%", 1)[0])
    except ValueError:
        return False
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class PortalCollector:
    """Figures read from the database at scrape time (every web process answers the same)."""

    def collect(self):
        by_state = dict(Letter.select(Letter.state, fn.COUNT(Letter.id)).group_by(Letter.state).tuples())
        letters = GaugeMetricFamily("portal_letters", "Letters by state.", labels=["state"])
        for state in sorted(set(LETTER_STATES) | set(by_state)):
            letters.add_metric([state], by_state.get(state, 0))
        yield letters

        yield GaugeMetricFamily("portal_queue_depth", "Letters waiting to be sent (queued or deferred).",
                                value=sum(by_state.get(state, 0) for state in DUE_STATES))
        now = utcnow()
        oldest = (Letter.select(fn.MIN(Letter.next_attempt_at))
                  .where(Letter.state.in_(DUE_STATES) & (Letter.next_attempt_at <= now)).scalar())
        yield GaugeMetricFamily("portal_queue_oldest_due_seconds",
                                "How long the oldest due letter has been waiting past its time (0: none).",
                                value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)

        tests = CounterMetricFamily("portal_account_tests", "Account tests run, by outcome.", labels=["outcome"])
        outcomes = dict(AccountTestRun.select(AccountTestRun.ok, fn.COUNT(AccountTestRun.id))
                        .group_by(AccountTestRun.ok).tuples())
        for ok, name in ((True, "passed"), (False, "failed"), (None, "running")):
            tests.add_metric([name], outcomes.get(ok, 0))
        yield tests

        inboxes = GaugeMetricFamily("portal_reply_fetch_mailboxes",
                                    "Mailboxes that fetch replies, by the outcome of their last fetch.",
                                    labels=["outcome"])
        failing = MailboxInbox.select().where(MailboxInbox.problem_code != "").count()
        inboxes.add_metric(["problem"], failing)
        inboxes.add_metric(["ok"], MailboxInbox.select().where(MailboxInbox.problem_code == "").count())
        yield inboxes
        problems = GaugeMetricFamily("portal_reply_fetch_problems", "Mailboxes whose last reply fetch failed, "
                                     "by problem.", labels=["problem"])
        for code, count in (MailboxInbox.select(MailboxInbox.problem_code, fn.COUNT(MailboxInbox.id))
                            .where(MailboxInbox.problem_code != "").group_by(MailboxInbox.problem_code).tuples()):
            problems.add_metric([code], count)
        yield problems

        mailboxes = GaugeMetricFamily("portal_mailboxes", "Mailboxes by state: ready (active and tested), "
                                      "untested, inactive.", labels=["state"])
        inactive = Mailbox.select().where(~Mailbox.active).count()
        ready = Mailbox.select().where(Mailbox.active & Mailbox.last_passed_test_at.is_null(False)).count()
        untested = Mailbox.select().where(Mailbox.active & Mailbox.last_passed_test_at.is_null(True)).count()
        for name, count in (("ready", ready), ("untested", untested), ("inactive", inactive)):
            mailboxes.add_metric([name], count)
        yield mailboxes


def exposition(worker_dir=None):
    """The metrics page: this process's figures (or every gunicorn process's), the workers' (from ``worker_dir``,
    their PROMETHEUS_MULTIPROC_DIR, when they run as processes of their own) and the database's."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        worker = worker_metrics()
        mine = () if worker_dir else (worker.send_seconds, worker.pass_seconds, worker.faults)  # else in worker_dir
        for metric in (http_requests, http_seconds, *mine):
            registry.register(metric)
    if worker_dir and os.path.isdir(worker_dir):
        MultiProcessCollector(registry, path=worker_dir)
    registry.register(PortalCollector())
    return generate_latest(registry)


def observe_request(route, method, status, started):
    """Count one answered request (the route's rule, not its URL, so ids do not make new series)."""
    http_requests.labels(route, method, str(status)).inc()
    http_seconds.labels(route).observe(time.perf_counter() - started)
