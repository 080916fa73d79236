"""/metrics: who may read it, and the figures an operator watches."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from portal.metrics import allowed_networks, may_read
from tests.test_health import queued_letter

OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}


def samples(response):
    """{(name, frozenset(labels)): value} of a metrics page."""
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


@pytest.mark.parametrize(("address", "allowed"), [
    ("10.1.2.3", True), ("10.255.0.1", True), ("192.168.1.9", True), ("192.168.1.10", False),
    ("::ffff:10.0.0.7", True), ("203.0.113.5", False), ("fd00::1", True), ("", False), ("not-an-ip", False),
])
def test_only_the_allowed_addresses_may_read(address, allowed):
    networks = allowed_networks("10.0.0.0/8, 192.168.1.9 ,fd00::/8")
    assert may_read(address, None, networks, None) is allowed


def test_the_bearer_token_opens_it_from_anywhere_and_a_wrong_one_does_not():
    assert may_read("203.0.113.5", "Bearer s3cret-token", [], "s3cret-token")
    assert not may_read("203.0.113.5", "Bearer s3cret-tokem", [], "s3cret-token")
    assert not may_read("203.0.113.5", "Bearer ", [], None)


def test_a_bad_allow_entry_is_named():
    with pytest.raises(ValueError, match="'10.0.0.300'"):
        allowed_networks("127.0.0.1, 10.0.0.300")


def test_an_outside_address_is_refused_and_the_token_lets_it_in(config):
    config["PORTAL_METRICS_TOKEN"] = "s3cret-token"
    from portal import create_app

    client = create_app(config).test_client()
    refused = client.get("/metrics", environ_base=OUTSIDE)
    assert refused.status_code == 403 and "portal_" not in refused.get_data(as_text=True)
    allowed = client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": "Bearer s3cret-token"})
    assert allowed.status_code == 200 and allowed.headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_behind_the_proxy_the_real_client_address_decides(config):
    config["PORTAL_PROXY_COUNT"] = 1
    from portal import create_app

    client = create_app(config).test_client()
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 403
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_letters_by_state_queue_depth_and_requests_by_route(client, employee):
    queued_letter(employee)
    queued_letter(employee)
    client.get("/sign-in")
    client.get("/no-such-page")
    found = samples(client.get("/metrics"))
    assert found["portal_letters", frozenset({("state", "queued")})] == 2
    assert found["portal_letters", frozenset({("state", "sent")})] == 0
    assert found["portal_queue_depth", frozenset()] == 2
    assert found["portal_queue_oldest_due_seconds", frozenset()] >= 0
    assert found["portal_mailboxes", frozenset({("state", "ready")})] == 0
    assert found["portal_account_tests_total", frozenset({("outcome", "passed")})] == 0
    assert found["portal_http_requests_total",
                 frozenset({("route", "/sign-in"), ("method", "GET"), ("status", "200")})] >= 1
    assert found["portal_http_requests_total",
                 frozenset({("route", "unmatched"), ("method", "GET"), ("status", "404")})] >= 1


def test_send_durations_from_a_worker_process_of_its_own_are_shown(config, tmp_path):
    """A worker under systemd writes its figures to its PROMETHEUS_MULTIPROC_DIR; /metrics reads that folder."""
    import os
    import subprocess
    import sys

    from portal import create_app

    folder = tmp_path / "worker-metrics"
    folder.mkdir()
    subprocess.run([sys.executable, "-c", "from portal import metrics; worker = metrics.worker_metrics(); "
                    "worker.send_seconds.observe(0.7); worker.send_seconds.observe(2.0); "
                    "worker.faults.labels('sweep').inc()"],
                   env=dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(folder)), check=True)
    config["PORTAL_METRICS_WORKER_DIR"] = str(folder)
    found = samples(create_app(config).test_client().get("/metrics"))
    assert found["portal_letter_send_seconds_count", frozenset()] == 2
    assert found["portal_letter_send_seconds_bucket", frozenset({("le", "1.0")})] == 1
    assert found["portal_worker_faults_total", frozenset({("job", "sweep")})] == 1
