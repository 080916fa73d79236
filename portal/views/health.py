"""/healthz, /readyz and /metrics for the proxy and the monitoring, and the admins' "no worker is running" banner."""
import time

import peewee
from flask import Blueprint, current_app, g, request
from flask_login import current_user

from portal.extensions import csrf
from portal.health import letters_wait_for_a_worker, readiness, workers_seen
from portal.letters.worker import huey_for
from portal.metrics import CONTENT_TYPE, allowed_networks, exposition, may_read, observe_request

bp = Blueprint("health", __name__)
PLAIN = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}


@bp.route("/healthz")
@csrf.exempt
def healthz():
    """The process answers: nothing else is looked at."""
    return "ok\n", 200, PLAIN


@bp.route("/readyz")
@csrf.exempt
def readyz():
    """Database, migrations, queue and a worker's heartbeat, each one status word; 503 unless all are ok."""
    report = readiness(_queue_answers, current_app.config["PORTAL_WORKER_SILENCE"])
    return report.text(), 200 if report.ready else 503, PLAIN


@bp.route("/metrics")
@csrf.exempt
def metrics():
    """Prometheus text format, for PORTAL_METRICS_ALLOW addresses or the PORTAL_METRICS_TOKEN bearer only."""
    config = current_app.config
    if not may_read(request.remote_addr, request.headers.get("Authorization"),
                    allowed_networks(config["PORTAL_METRICS_ALLOW"]), config.get("PORTAL_METRICS_TOKEN")):
        return "not allowed\n", 403, PLAIN
    return exposition(config["PORTAL_METRICS_WORKER_DIR"]), 200, {"Content-Type": CONTENT_TYPE,
                                                                  "Cache-Control": "no-store"}


@bp.before_app_request
def start_clock():
    g.metrics_started = time.perf_counter()


@bp.after_app_request
def count_request(response):
    if "metrics_started" in g:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        observe_request(route, request.method, response.status_code, g.metrics_started)
    return response


def _queue_answers():
    return huey_for(current_app).pending_count() >= 0


@bp.errorhandler(peewee.OperationalError)
@bp.errorhandler(peewee.InterfaceError)
def database_down(error):
    """The app connects before every request: with the database down that fails before these views run."""
    if request.endpoint == "health.healthz":
        return healthz()
    report = readiness(_queue_answers, current_app.config["PORTAL_WORKER_SILENCE"])
    return report.text(), 503, PLAIN


def workers_seen_once():
    """How many workers wrote a heartbeat lately, asked at most once a request (the banner and the Outbox both ask)."""
    if "workers_seen" not in g:
        g.workers_seen = workers_seen(current_app.config["PORTAL_WORKER_SILENCE"])
    return g.workers_seen


@bp.app_context_processor
def worker_banner():
    """For admins, on every page: whether letters wait while no worker has been seen."""
    def no_worker_for_waiting_letters():
        if not (current_user.is_authenticated and current_user.is_admin):
            return False
        return letters_wait_for_a_worker(current_app.config["PORTAL_WORKER_SILENCE"], seen=workers_seen_once())

    return {"no_worker_for_waiting_letters": no_worker_for_waiting_letters}
