"""`portal check-account` and `portal presets`, run through click with a small Flask app."""
from __future__ import annotations

import json
import logging

import pytest
from flask import Flask

from portal.mail.cli import check_account_command, presets_command

PASSWORD_ENV = "PORTAL_TEST_MAILBOX_PASSWORD"


@pytest.fixture
def app(server_certificate):
    """A bare Flask app carrying only the mail settings the commands read."""
    app = Flask(__name__)
    app.config.update(PORTAL_MAIL_TIMEOUT="3", PORTAL_MAIL_ALLOWED_HOSTS="127.0.0.1:*, localhost:*",
                      PORTAL_MAIL_CA_FILE=server_certificate.ca_file, PORTAL_DEFAULT_LANGUAGE="en")
    return app


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def smtp_args(server, *extra):
    return ["--address", server.username, "--smtp-host", "localhost", "--smtp-port", str(server.port),
            "--smtp-security", server.security, "--password-env", PASSWORD_ENV, *extra]


def test_passing_mailbox_exits_0_with_the_documented_json(runner, smtp_server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(PASSWORD_ENV, smtp_server.password)

    result = runner.invoke(check_account_command, smtp_args(smtp_server, "--json"))

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["problem"] is None
    assert [stage["name"] for stage in data["stages"]][-1] == "smtp.envelope"
    assert all(set(stage) == {"name", "ok", "ms", "detail"} for stage in data["stages"])
    assert smtp_server.password not in result.output
    assert smtp_server.password not in caplog.text


def test_failing_mailbox_exits_1_and_never_shows_the_password(runner, smtp_server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(PASSWORD_ENV, "a-wrong-but-secret-password")

    result = runner.invoke(check_account_command, smtp_args(smtp_server, "--json", "--lang", "ru"))

    assert result.exit_code == 1, result.output
    problem = json.loads(result.stdout)["problem"]
    assert problem["code"] == "auth_failed"
    assert problem["title"] == "Вход отклонён: неверный логин или пароль"
    assert problem["server_reply"].startswith("535")
    assert "a-wrong-but-secret-password" not in result.output
    assert "a-wrong-but-secret-password" not in caplog.text


def test_text_output_names_stages_and_the_problem(runner, smtp_server, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, smtp_server.password)
    smtp_server.fail("MAIL", "553 5.7.1 Sender address rejected: not owned by user")

    result = runner.invoke(check_account_command, smtp_args(smtp_server, "--lang", "ru"))

    assert result.exit_code == 1
    assert "Исходящая: вход" in result.output
    assert "С этим логином нельзя отправлять от этого адреса [sender_not_owned]" in result.output
    assert "553 5.7.1 Sender address rejected" in result.output
    assert "Проверка не пройдена." in result.output


def test_incoming_is_checked_too(runner, smtp_server, dovecot, monkeypatch):
    # One login and password for both sides, as the command line offers.
    dovecot.add_user(smtp_server.username, smtp_server.password)
    monkeypatch.setenv(PASSWORD_ENV, smtp_server.password)

    result = runner.invoke(check_account_command, smtp_args(
        smtp_server, "--incoming", "imap", "--incoming-host", "localhost",
        "--incoming-port", str(dovecot.ports["imaps"]), "--incoming-security", "ssl", "--json"))

    assert result.exit_code == 0, result.output
    assert "imap.mailbox" in [stage["name"] for stage in json.loads(result.stdout)["stages"]]


def test_test_letter_is_sent_when_asked(runner, smtp_server, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, smtp_server.password)
    result = runner.invoke(check_account_command, smtp_args(smtp_server, "--send-test-letter",
                                                            "--display-name", "Продажи"))
    assert result.exit_code == 0, result.output
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("args", [
    ["--address", "a@example.com", "--smtp-port", "587", "--smtp-security", "starttls"],  # no host
    ["--address", "a@example.com", "--smtp-host", "h", "--smtp-port", "587", "--smtp-security", "tls"],
    ["--address", "a@example.com", "--smtp-host", "h", "--smtp-port", "0", "--smtp-security", "ssl"],
    ["--address", "a@example.com", "--smtp-host", "h", "--smtp-port", "465", "--smtp-security", "ssl",
     "--incoming", "pop3"],
    ["--address", "a@example.com", "--smtp-host", "h", "--smtp-port", "465", "--smtp-security", "ssl",
     "--incoming-host", "h"],
    ["--address", "a@example.com", "--smtp-host", "h", "--smtp-port", "465", "--smtp-security", "ssl",
     "--password-env", "PORTAL_TEST_NO_SUCH_VARIABLE"],
    ["--address", "a@example.com", "--smtp-host", "h", "--smtp-port", "465", "--smtp-security", "ssl",
     "--username", "a"],
    ["--address", "a@example.com", "--smtp-host", "h", "--smtp-port", "465", "--smtp-security", "ssl",
     "--lang", "de"],
])
def test_bad_arguments_exit_2(runner, args, monkeypatch):
    monkeypatch.delenv("PORTAL_TEST_NO_SUCH_VARIABLE", raising=False)
    result = runner.invoke(check_account_command, args)
    assert result.exit_code == 2, result.output


def test_guard_refusal_from_the_command_line(runner):
    result = runner.invoke(check_account_command, ["--address", "a@example.com", "--smtp-host", "169.254.169.254",
                                                   "--smtp-port", "587", "--smtp-security", "starttls", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["problem"]["code"] == "connection_blocked"


def test_presets_lists_every_preset(runner):
    result = runner.invoke(presets_command, [])
    assert result.exit_code == 0
    for key in ("google", "yandex", "mailru", "rambler", "microsoft365", "other"):
        assert key in result.output
    assert "smtp.yandex.ru:465 ssl" in result.output


def test_presets_for_an_address(runner):
    result = runner.invoke(presets_command, ["--for", "ivan@narod.ru", "--lang", "ru"])
    assert result.exit_code == 0
    assert result.output.startswith("yandex")
    assert "Почтовые программы" in result.output


def test_presets_for_an_address_as_json_without_mx_lookup(app, runner):
    app.config["PORTAL_MAIL_PROVIDER_MX_LOOKUP"] = False
    result = runner.invoke(presets_command, ["--for", "ivan@firma.example", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["key"] == "other"


def test_presets_for_a_non_address_exits_2(runner):
    assert runner.invoke(presets_command, ["--for", "not-an-address"]).exit_code == 2
