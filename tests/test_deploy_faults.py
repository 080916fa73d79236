"""Faults that cost nothing: Redis stopping under a running portal neither loses nor hides a stored letter."""
import logging
import time

import pytest
import redis

from portal.models import Letter
from tests.test_api_letters import letter_body


@pytest.fixture
def redis_backed(config, redis_server):
    """The rate limits and the queue in a private Redis, as a deployment with several web processes has them."""
    config.update(RATELIMIT_ENABLED=True, PORTAL_RATELIMIT_STORAGE=redis_server.url, PORTAL_QUEUE_URL=redis_server.url,
                  PORTAL_SIGNIN_RATE_LIMIT="3 per minute")
    return redis_server


def test_a_letter_stored_while_redis_is_down_is_answered_with_the_letter(
        redis_backed, api_employee, sending_mailbox, caplog):
    assert api_employee.post("/letters", json=letter_body(subject="Before")).status_code == 202
    redis_backed.stop()
    with caplog.at_level(logging.WARNING):
        response = api_employee.post("/letters", json=letter_body(subject="During"))
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["subject"] == "During" and response.get_json()["state"] == "queued"
    assert Letter.select().where(Letter.subject == "During").count() == 1
    assert any("falling back to in-memory storage" in record.getMessage() for record in caplog.records)


def test_while_redis_is_down_sign_in_works_and_failures_are_still_counted(redis_backed, client, auth, employee):
    redis_backed.stop()
    assert auth.login(employee).status_code == 302
    auth.logout()
    for _ in range(3):
        assert auth.login(employee, password="wrong").status_code == 200
    assert auth.login(employee, password="wrong").status_code == 429


def test_once_redis_is_back_failed_sign_ins_are_counted_there_again(redis_backed, client, auth, employee):
    """The README's "goes back to Redis on its own": Flask-Limiter retries Redis 1, 2, 4 … 32 s apart.

    Until it does, each web process counts in its own memory, so several processes would together let
    more tries through; counted in Redis again, they share one count.
    """
    redis_backed.stop()
    assert auth.login(employee, password="wrong").status_code == 200  # counted in this process's memory
    redis_backed.restart()
    shared = redis.Redis.from_url(redis_backed.url, socket_timeout=5)
    deadline = time.monotonic() + 40
    while not shared.keys("*") and time.monotonic() < deadline:
        time.sleep(0.5)
        auth.login(employee, password="wrong")
    assert shared.keys("*"), "the failed sign-ins were never counted in Redis again"
    shared.flushdb()  # a fresh count: this process's memory already holds one try, Redis now holds none
    assert [auth.login(employee, password="wrong").status_code for _ in range(4)] == [200, 200, 200, 429]
