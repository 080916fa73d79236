"""A test stage's detail: the portal's own words in the reader's language, a server's words as they came."""
import pytest

from portal.mail.details import DETAILS, detail, detail_in


@pytest.mark.parametrize("key,values,russian", [
    ("tls.verified", {"version": "TLSv1.3", "fingerprint": "AB:CD"}, "TLSv1.3, сертификат проверен, SHA-256 AB:CD"),
    ("tls.pinned", {"version": "TLSv1.2", "fingerprint": "AB:CD"}, "TLSv1.2, закреплённый сертификат, SHA-256 AB:CD"),
    ("imap.mailbox", {"count": 0}, "писем во «Входящих» (INBOX): 0"),
    ("pop3.mailbox", {"count": 3, "size": 4096}, "писем: 3, байт: 4096"),
    ("round_trip", {"seconds": "1.4", "code": 250}, "пришло через 1,4 с после отправки (код 250)"),
    ("login.skipped", {}, "логин не указан: вход пропущен"),
])
def test_the_portals_own_words_read_in_russian_and_stay_english_in_english(key, values, russian):
    stored = detail(key, **values)

    assert detail_in(stored, "ru") == russian
    assert detail_in(stored, "en") == stored


def test_a_servers_own_words_are_shown_as_they_came():
    greeting = "220 mail.example.com ESMTP Postfix (Debian/GNU)"

    assert detail_in(greeting, "ru") == greeting
    assert detail_in("", "ru") == ""


def test_every_detail_has_a_russian_translation():
    from portal.words import translate

    untranslated = [text for text in DETAILS.values() if translate(text, "ru") == text]
    assert untranslated == []


def test_a_real_tls_stage_reads_in_russian(smtp_server, server_certificate):
    from portal.mail.check import check_account
    from portal.mail.settings import MailboxSettings, MailConfig, ServerSettings

    settings = MailboxSettings(smtp_server.username, "", ServerSettings(
        "localhost", smtp_server.port, "starttls", smtp_server.username, smtp_server.password))
    config = MailConfig(allowed_hosts=("localhost:*", "127.0.0.1:*"), ca_file=server_certificate.ca_file)

    result = check_account(settings, config)

    tls = next(stage for stage in result.stages if stage.name == "smtp.tls")
    assert tls.detail.startswith("TLSv1.") and "verified certificate" in tls.detail
    assert "сертификат проверен, SHA-256 " in detail_in(tls.detail, "ru")
