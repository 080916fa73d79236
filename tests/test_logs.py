"""One logging configuration: request ids, JSON lines, and no password in any printed URL."""
import io
import json
import logging

import pytest

from portal.logs import configure_logging, masked_url


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://portal:s3cret@db.internal:5432/portal", "postgresql://portal:***@db.internal:5432/portal"),
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("postgresql://portal:p%40ss@[::1]/portal", "postgresql://portal:***@[::1]/portal"),
    ("postgresql://portal@db/portal", "postgresql://portal@db/portal"),
    ("sqlite:////srv/portal/portal.sqlite3", "sqlite:////srv/portal/portal.sqlite3"),
])
def test_a_url_is_printed_without_its_password(url, shown):
    assert masked_url(url) == shown


def test_init_db_never_prints_the_database_password(app, runner, monkeypatch):
    app.config["PORTAL_DATABASE_URL"] = "postgresql://portal:s3cret@127.0.0.1:1/portal"
    from portal import db

    monkeypatch.setattr(db, "upgrade", lambda: [])  # nothing listens on port 1: only the message is under test
    result = runner.invoke(args=["init-db"])
    assert "s3cret" not in result.output
    assert "postgresql://portal:***@127.0.0.1:1/portal" in result.output


def test_every_answer_names_its_request_id_and_the_log_lines_carry_it(app, client):
    stream = io.StringIO()
    configure_logging("text", "INFO", stream=stream)
    response = client.get("/sign-in", headers={"X-Request-ID": "nginx-0123abc"})
    assert response.headers["X-Request-ID"] == "nginx-0123abc"
    app.logger.info("probe")  # outside a request: no id
    generated = client.get("/sign-in").headers["X-Request-ID"]
    assert len(generated) == 32 and generated != "nginx-0123abc"
    with app.test_request_context(headers={"X-Request-ID": "abc"}):
        app.preprocess_request()
        app.logger.warning("inside")
    lines = stream.getvalue().splitlines()
    assert any(line.endswith("WARNING portal [abc] inside") or " WARNING portal [abc] inside" in line for line in lines)
    assert any(" INFO portal [-] probe" in line for line in lines)


def test_a_request_id_that_is_not_a_plain_token_is_replaced(client):
    response = client.get("/sign-in", headers={"X-Request-ID": "<script>" + "a" * 80})
    assert response.headers["X-Request-ID"].isalnum()


def test_json_lines_for_log_collectors():
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    try:
        raise RuntimeError("PostgreSQL went away")
    except RuntimeError:
        logging.getLogger("portal.letters").exception("pass failed for %s", "sales@example.com")
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["level"] == "ERROR" and entry["logger"] == "portal.letters" and entry["request_id"] == "-"
    assert entry["message"] == "pass failed for sales@example.com"
    assert "PostgreSQL went away" in entry["exception"]


def test_configuring_twice_keeps_one_handler():
    configure_logging("text", "INFO")
    configure_logging("json", "INFO")
    assert [handler.get_name() for handler in logging.getLogger().handlers].count("portal") == 1


@pytest.mark.parametrize(("level", "per_task_lines"), [("INFO", False), ("DEBUG", True)])
def test_an_idle_worker_does_not_log_every_task_huey_runs(level, per_task_lines):
    """huey's "Executing …" and "… executed in" lines for each run (a dozen a minute from the periodic tasks) only at
    DEBUG; its failures and its consumer's start line are kept, and so are the portal's own lines."""
    from huey import MemoryHuey

    huey = MemoryHuey("log-test", immediate=True)

    @huey.task(name="portal.sweep_letters")
    def sweep():
        return 1

    @huey.task(name="portal.broken")
    def broken():
        raise RuntimeError("the database went away")

    stream = io.StringIO()
    configure_logging("text", level, stream=stream)
    logging.getLogger("huey.consumer").info("Huey consumer started with 1 thread")
    sweep()
    broken()
    logging.getLogger("portal.letters").info("sent 3 letters from sales@example.com")
    lines = stream.getvalue()
    assert ("Executing " in lines) is per_task_lines
    assert ("executed in" in lines) is per_task_lines
    assert "Unhandled exception in task" in lines and "the database went away" in lines
    assert "Huey consumer started" in lines and "sent 3 letters from sales@example.com" in lines


def test_a_fault_is_said_once_with_its_cause_then_once_that_it_is_over(caplog):
    import logging

    from portal.logs import FaultLog

    faults = FaultLog(logging.getLogger("portal.test_faults"))
    with caplog.at_level("DEBUG", logger="portal.test_faults"):
        for _ in range(38):
            faults.failed("send pass for mailbox 3", ConnectionRefusedError(111, "Connection refused"))
        faults.failed("send pass for mailbox 3", TimeoutError("timed out\nmore detail"))
        faults.succeeded("send pass for mailbox 3")
        faults.succeeded("send pass for mailbox 3")
    said = [(record.levelname, record.getMessage()) for record in caplog.records if record.levelname != "DEBUG"]
    assert said == [
        ("ERROR", "send pass for mailbox 3 failed: ConnectionRefusedError: [Errno 111] Connection refused"),
        ("ERROR", "send pass for mailbox 3 failed: TimeoutError: timed out"),
        ("INFO", "send pass for mailbox 3 works again (it failed with TimeoutError: timed out)"),
    ]
