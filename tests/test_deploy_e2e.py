"""The deployment deploy/ describes, end to end: nginx with TLS under /mail/, gunicorn from deploy/gunicorn.conf.py,
PostgreSQL, Redis and two `portal worker` processes, checked with requests and in Chromium.

`make test-deploy` runs this module. Each server is a private instance on free loopback ports; without
nginx, Redis or PostgreSQL the module is skipped with the reason, and fails instead when CI=true.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.servers.nginx import NGINX, NginxServer
from tests.servers.redis import REDIS_SERVER, RedisServer
from tests.servers.smtp import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN_EMAIL, ADMIN_PASSWORD = "it@example.com", "deploy-Test-Password-4711"
METRICS_TOKEN = "metrics-token-for-the-test"
SHOTS = Path("/tmp/shots-deploy")


def _missing(what):
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{what} and CI=true, so it must be there", pytrace=False)
    pytest.skip(what)


class Deployment:
    """The running pieces and the environment file they share (as /etc/portal/portal.env would be)."""

    def __init__(self, root, database_url):
        self.root = root
        self.redis = RedisServer(root / "redis")
        self.web_port = free_port("127.0.0.1")
        self.env = None
        self.database_url = database_url
        self.web = None
        self.nginx = None
        self.workers = []

    def start(self):
        self.redis.start()
        self.env = dict(
            os.environ,
            PORTAL_DATABASE_URL=self.database_url,
            PORTAL_INSTANCE_PATH=str(self.root / "instance"),
            PORTAL_SECRET_KEY="deploy-test-secret-key-0123456789",
            PORTAL_QUEUE_URL=self.redis.url,
            PORTAL_RATELIMIT_STORAGE=self.redis.url.replace("/0", "/1"),
            PORTAL_PROXY_COUNT="1",
            PORTAL_SIGNIN_RATE_LIMIT="5 per minute",
            PORTAL_METRICS_ALLOW="10.9.9.9/32",  # not the loopback: the test is an outside address
            PORTAL_METRICS_TOKEN=METRICS_TOKEN,
            PORTAL_WORKER_SILENCE="120",
            PORTAL_HOME=str(ROOT),
            PORTAL_BIND=f"127.0.0.1:{self.web_port}",
            PORTAL_WEB_PROCESSES="2",
            PORTAL_WEB_THREADS="4",
            PROMETHEUS_MULTIPROC_DIR=str(self.root / "metrics"),
            PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        )
        self.env.pop("PORTAL_TEST_POSTGRES", None)
        # What the web unit runs before gunicorn, then the first admin.
        self.portal("init-db")
        self.portal("create-user", "--email", ADMIN_EMAIL, "--name", "IT", "--admin", "--password", ADMIN_PASSWORD)
        self.web = subprocess.Popen([str(BIN / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py")],
                                    env=self.env, cwd=self.root, stdout=open(self.root / "gunicorn.log", "wb"),
                                    stderr=subprocess.STDOUT)
        self.nginx = NginxServer(self.root / "nginx", upstream=f"127.0.0.1:{self.web_port}").start()
        self._wait(lambda: requests.get(self.url("healthz"), verify=self.ca, timeout=2).status_code == 200,
                   "gunicorn behind nginx did not answer /mail/healthz")
        self.start_workers()
        return self

    @property
    def ca(self):
        return self.nginx.certificate.ca_file

    def url(self, path=""):
        return f"{self.nginx.url}/mail/{path}"

    def portal(self, *args):
        result = subprocess.run([str(BIN / "portal"), *args], env=self.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    def start_workers(self, count=2):
        for number in range(count):
            log = open(self.root / f"worker-{len(self.workers)}.log", "wb")
            self.workers.append(subprocess.Popen([str(BIN / "portal"), "worker", "--workers", "2"], env=self.env,
                                                 cwd=self.root, stdout=log, stderr=subprocess.STDOUT))

    def stop_workers(self):
        """As systemd stops the worker unit: KillSignal=SIGINT, then wait."""
        for worker in self.workers:
            worker.send_signal(signal.SIGINT)
        for worker in self.workers:
            worker.wait(timeout=30)
        self.workers = []

    @staticmethod
    def _wait(check, message, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(message)

    def stop(self):
        for worker in self.workers:
            worker.kill()
            worker.wait()
        if self.nginx is not None:
            self.nginx.stop()
        if self.web is not None and self.web.poll() is None:
            self.web.terminate()
            try:
                self.web.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.web.kill()
                self.web.wait()
        self.redis.stop()


@pytest.fixture(scope="module")
def deployment(request):
    if not os.path.exists(NGINX):
        _missing(f"nginx is not installed ({NGINX}); install the Debian package nginx")
    if not os.path.exists(REDIS_SERVER):
        _missing(f"redis-server is not installed ({REDIS_SERVER}); install the Debian package redis-server")
    cluster = request.getfixturevalue("postgres_cluster")
    name = cluster.new_database()
    root = Path(tempfile.mkdtemp(prefix="portal-deploy-"))
    running = Deployment(root, cluster.url(name))
    try:
        yield running.start()
    finally:
        running.stop()
        cluster.drop_database(name)
        shutil.rmtree(root, ignore_errors=True)


def signed_in(deployment, path="", **query):
    """A requests session signed in through the form, as a browser at https://…/mail/ would."""
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE wins over session.verify
    session.verify = deployment.ca
    page = session.get(deployment.url("sign-in"), params=query, timeout=10)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    answer = session.post(page.url, data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token},
                          headers={"Referer": page.url}, allow_redirects=False, timeout=10)
    return session, answer


def test_a_deep_link_comes_back_under_the_prefix_after_sign_in(deployment):
    anonymous = requests.get(deployment.url("outbox?page=1"), verify=deployment.ca, allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302
    location = urlsplit(anonymous.headers["Location"])
    assert location.path == "/mail/sign-in"
    target = dict(part.split("=", 1) for part in location.query.split("&"))["next"]

    session, answer = signed_in(deployment, next=requests.utils.unquote(target))
    assert answer.status_code == 302, answer.text
    assert answer.headers["Location"] == "/mail/outbox?page=1"
    cookie = next(value for value in answer.raw.headers.getlist("Set-Cookie") if value.startswith("portal_session="))
    assert "Path=/mail" in cookie and "Secure" in cookie
    assert session.get(deployment.url("outbox?page=1"), timeout=10).status_code == 200
    assert answer.headers["X-Request-ID"]  # nginx's $request_id, answered back


def test_metrics_refuse_an_outside_address_and_open_to_the_token(deployment):
    refused = requests.get(deployment.url("metrics"), verify=deployment.ca, timeout=10,
                           headers={"X-Forwarded-For": "10.9.9.9"})  # forged: nginx appends the real address
    assert refused.status_code == 403 and "portal_" not in refused.text
    allowed = requests.get(deployment.url("metrics"), verify=deployment.ca, timeout=10,
                           headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert allowed.status_code == 200
    assert 'portal_http_requests_total{method="GET",route="/healthz",status="200"}' in allowed.text
    assert "portal_queue_depth" in allowed.text


@pytest.mark.browser
def test_every_link_form_htmx_url_and_static_file_stays_under_the_prefix(deployment, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(deployment.url("admin/employees"))
    assert urlsplit(page.url).path == "/mail/sign-in"
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_url(re.compile(r"/mail/admin/employees$"))
    seen, failures = set(), []
    for path in ("", "admin/employees", "admin/employees/new", "admin/mail/outgoing", "admin/mail/senders",
                 "admin/mail/employees", "admin/mail/audit", "admin/projects", "admin/api-tokens", "outbox",
                 "my/addresses", "mailboxes/new", "contacts", "letters/new", "profile", "profile/api-tokens"):
        response = page.goto(deployment.url(path))
        assert response.status == 200, path
        page.screenshot(path=str(SHOTS / f"prefix-{path.replace('/', '-') or 'home'}.png"))
        for attribute in ("href", "src", "action", "hx-get", "hx-post", "hx-delete", "hx-put", "hx-patch"):
            script = f"els => els.map(e => e.getAttribute('{attribute}'))"
            for value in page.eval_on_selector_all(f"[{attribute}]", script):
                if value.startswith(("#", "mailto:")) or not value:
                    continue
                seen.add(value)
                if not value.startswith("/mail/"):
                    failures.append(f"{path}: {attribute}={value}")
    assert not failures, failures
    for asset in sorted(value for value in seen if "/static/" in value):
        assert context.request.get(deployment.nginx.url + asset).status == 200, asset
    context.close()


def test_readyz_goes_unready_when_the_workers_stop(deployment):
    def readiness():
        answer = requests.get(deployment.url("readyz"), verify=deployment.ca, timeout=10)
        return answer.status_code, answer.text

    deployment._wait(lambda: readiness()[0] == 200, "the two workers' heartbeats never made /readyz ready")
    assert readiness() == (200, "database: ok\nmigrations: ok\nqueue: ok\nworker: ok\n")
    deployment.stop_workers()
    status, text = readiness()
    assert status == 503 and "worker: none" in text
    deployment.start_workers()
    deployment._wait(lambda: readiness()[0] == 200, "restarted workers did not make /readyz ready again")


# Last: it leaves the loopback address locked out of signing in for a minute.
def test_the_sign_in_limit_counts_the_real_client_address_not_a_forged_header(deployment):
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE wins over session.verify
    session.verify = deployment.ca
    statuses = []
    for attempt in range(7):
        page = session.get(deployment.url("sign-in"), timeout=10)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
        answer = session.post(page.url, timeout=10, allow_redirects=False,
                              headers={"Referer": page.url, "X-Forwarded-For": f"198.51.100.{attempt}"},
                              data={"email": ADMIN_EMAIL, "password": "wrong", "csrf_token": token})
        statuses.append(answer.status_code)
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
