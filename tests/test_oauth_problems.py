"""What the providers really answer when signing in is refused, each with advice in both languages."""
import imaplib

import pytest

from portal.mail.problems import classify, classify_reply
from portal.oauth.grants import NEEDS_RECONNECT, TOKEN_UNAVAILABLE


@pytest.mark.parametrize("code, text, expected", [
    (550, "5.7.30 Basic authentication is not supported for Client Submission", "basic_auth_off"),
    (535, "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit "
          "https://aka.ms/smtp_auth_disabled for more information.", "smtp_auth_disabled"),
    (534, "5.7.9 Application-specific password required. Learn more at "
          "https://support.google.com/mail/?p=InvalidSecondFactor", "app_password_required"),
    (535, "5.7.3 Authentication unsuccessful [LO6P265CA0005.GBRP265.PROD.OUTLOOK.COM]", "microsoft_auth_unsuccessful"),
])
def test_provider_sign_in_refusals_are_explained(code, text, expected):
    """Microsoft's and Google's own refusals at AUTH get their own entries, with advice in Russian and English."""
    problem = classify_reply(code, text, stage="smtp.login", command="AUTH")
    assert problem.code == expected
    assert problem.advice("en") != problem.advice("ru") and problem.title("ru")


@pytest.mark.parametrize("error, expected", [
    (imaplib.IMAP4.error("AUTHENTICATE failed."), "token_refused"),
    (imaplib.IMAP4.error("[AUTHORIZATIONFAILED] This user does not have access rights to this service"),
     "mail_client_access_off"),
])
def test_incoming_refusals_of_a_token_are_explained(error, expected):
    """Microsoft's IMAP "AUTHENTICATE failed" for an expired token, and Yandex's "no access rights to this service"."""
    assert classify(error, stage="imap.login").code == expected


@pytest.mark.parametrize("code", [NEEDS_RECONNECT, TOKEN_UNAVAILABLE, "basic_auth_off", "microsoft_auth_unsuccessful"])
def test_the_waits_and_refusals_link_to_what_to_do(code):
    """What a waiting letter shows says what to do, in both languages; the provider entries carry their help link."""
    from portal.mail.problems import Problem

    problem = Problem(code=code, stage="smtp.send", server_reply="")
    for lang in ("en", "ru"):
        assert problem.title(lang) and problem.advice(lang)
    if not code.startswith("oauth_"):
        assert "https://learn.microsoft.com/" in problem.advice("en")
