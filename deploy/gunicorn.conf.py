"""gunicorn for the portal: `gunicorn -c deploy/gunicorn.conf.py` (the systemd unit runs exactly this).

gthread workers: each process serves several requests at once on threads, so a page that waits
on the database does not hold a whole process. Account tests run off the request path (a small
pool per process), so no request waits on a slow mail server for long.

Sizing: processes ~ cores + 1, threads 4 each. On 2 cores: 3 processes x 4 threads (12 requests
at once, ~300 MB). On 16 cores: 9-17 processes x 4 threads; past ~8 processes the database is
the limit, so raise PostgreSQL's max_connections to processes x threads + workers + 10 first.
Every setting below can be changed from the environment file without editing this one.
"""
import os
import shutil
import tempfile

wsgi_app = "wsgi:app"
chdir = os.environ.get("PORTAL_HOME", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
bind = os.environ.get("PORTAL_BIND", "127.0.0.1:8000").split()
worker_class = "gthread"
workers = int(os.environ.get("PORTAL_WEB_PROCESSES", (os.cpu_count() or 1) + 1))
threads = int(os.environ.get("PORTAL_WEB_THREADS", 4))
timeout = int(os.environ.get("PORTAL_WEB_TIMEOUT", 60))  # above the 30 s account-test deadline
graceful_timeout = 20
keepalive = 5
max_requests = 5000  # a slow leak cannot grow forever
max_requests_jitter = 500
# nginx on this machine is the one proxy; PORTAL_PROXY_COUNT=1 makes the portal read its X-Forwarded-*.
forwarded_allow_ips = os.environ.get("PORTAL_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss id=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("PORTAL_LOG_LEVEL", "info").lower()

# prometheus_client's multiprocess mode: every process writes its counters to files here and /metrics
# adds them up. The folder is emptied when gunicorn starts, as prometheus_client asks.
multiproc_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(os.environ.get("RUNTIME_DIRECTORY") or tempfile.gettempdir(), f"portal-metrics-{os.getuid()}"))


def on_starting(server):
    shutil.rmtree(multiproc_dir, ignore_errors=True)
    os.makedirs(multiproc_dir, mode=0o700, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
