"""The setting at fault and the one-click fix for a failed account test (remedies.py), without any server."""
from __future__ import annotations

import pytest

from portal.mail.problems import Problem
from portal.mail.remedies import FIX_LABELS, apply_fix, fix_label, with_remedy
from portal.mail.settings import IncomingSettings, MailboxSettings, ServerSettings


def _settings(port=587, security="starttls", username="anna@example.org"):
    smtp = ServerSettings("smtp.example.org", port, security, username, "pw")
    return MailboxSettings("anna@example.org", "Anna", smtp,
                           IncomingSettings("imap", ServerSettings("imap.example.org", 993, "ssl", username, "pw")))


@pytest.mark.parametrize("code, stage, port, security, fix, changes, at_fault", [
    # The MX port 25: no sign-in there, no relaying without one. Use the submission port.
    ("auth_not_offered", "smtp.login", 25, "starttls", "use_submission_port",
     {"smtp.port": "587", "smtp.security": "starttls"}, "smtp.port"),
    ("relay_denied", "smtp.envelope", 25, "none", "use_submission_port",
     {"smtp.port": "587", "smtp.security": "starttls"}, "smtp.port"),
    # A submission port without a sign-in offered is not fixed by guessing: the port is at fault.
    ("auth_not_offered", "smtp.login", 2525, "starttls", "", {}, "smtp.port"),
    ("security_mode_mismatch", "smtp.tls", 587, "ssl", "use_starttls", {"smtp.security": "starttls"}, "smtp.security"),
    ("security_mode_mismatch", "imap.greeting", 993, "starttls", "use_ssl", {"incoming.security": "ssl"},
     "incoming.security"),
    ("choose_starttls", "smtp.login", 587, "none", "use_starttls", {"smtp.security": "starttls"}, "smtp.security"),
    ("auth_failed", "smtp.login", 587, "starttls", "", {}, "smtp.password"),
    ("host_not_found", "smtp.resolve", 587, "starttls", "", {}, "smtp.host"),
    ("sender_not_owned", "smtp.envelope", 587, "starttls", "", {}, "smtp.address"),
    ("host_not_resolved_here", "smtp.resolve", 587, "starttls", "", {}, ""),  # nothing in the form is wrong
])
def test_each_fixable_cause_has_its_fix_and_every_failure_its_field(code, stage, port, security, fix, changes,
                                                                    at_fault):
    incoming_stage = stage.startswith("imap")
    settings = _settings(port=587 if incoming_stage else port, security="ssl" if incoming_stage else security)
    if incoming_stage:
        settings = apply_fix(settings, {"incoming.security": security})
    problem = with_remedy(Problem(code, stage, "reply"), settings)
    assert (problem.fix, problem.changes, problem.at_fault) == (fix, changes, at_fault)


def test_a_short_login_is_fixed_with_the_whole_address_on_both_sides_that_use_it():
    problem = with_remedy(Problem("incoming_auth_failed", "imap.login", "NO"), _settings(username="anna"))
    assert problem.fix == "whole_address_login"
    assert problem.changes == {"incoming.username": "anna@example.org", "smtp.username": "anna@example.org"}
    fixed = apply_fix(_settings(username="anna"), problem.changes)
    assert fixed.smtp.username == fixed.incoming.server.username == "anna@example.org"


def test_a_wrong_password_for_a_whole_address_login_offers_no_fix():
    assert with_remedy(Problem("auth_failed", "smtp.login", "535"), _settings()).fix == ""


def test_every_fix_has_a_button_label_in_both_languages():
    for code in FIX_LABELS:
        assert fix_label(code, "en") != fix_label(code, "ru")
        assert "test" in fix_label(code, "en") and "провер" in fix_label(code, "ru")
