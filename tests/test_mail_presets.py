"""Provider presets: data, domain table, MX detection."""
from __future__ import annotations

import time

import pytest

from portal.mail.presets import PRESETS, get_preset, preset_for_address, provider_for
from portal.mail.settings import SECURITY_MODES, MailboxSettings, ServerSettings

REQUIRED = {"google", "outlook", "microsoft365", "yahoo", "icloud", "yandex", "mailru", "rambler", "zoho", "gmx",
            "fastmail", "aol", "other"}


def test_every_provider_the_issue_names_has_a_preset():
    assert REQUIRED <= {preset.key for preset in PRESETS}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.key)
def test_preset_data_is_complete(preset):
    assert preset.login_format in ("address", "local_part")
    for lang in ("en", "ru"):
        assert preset.advice(lang).strip()
    assert preset.advice("ru") != preset.advice("en")
    if preset.key == "other":
        return
    assert preset.smtp and preset.imap
    for server in (preset.smtp, preset.pop3, preset.imap):
        if server:
            assert server.security in SECURITY_MODES and 0 < server.port < 65536 and "." in server.host
    assert preset.incoming_help_url.startswith("https://")
    if preset.app_password_required_with_2fa:
        assert preset.app_password_help_url.startswith("https://"), preset.key


@pytest.mark.parametrize("domain,preset", [(d, p) for p in PRESETS for d in p.domains])
def test_every_preset_domain_resolves_to_its_preset(domain, preset, dns_server):
    # The resolver asks a server with no answers: the domain table alone must decide.
    assert preset_for_address(f"someone@{domain.upper()}", resolver=dns_server.resolver()) is preset
    assert dns_server.questions == []


@pytest.mark.parametrize("address,key", [("a@yandex.ru", "yandex"), ("a@ya.ru", "yandex"), ("a@narod.ru", "yandex"),
                                         ("a@googlemail.com", "google"), ("a@bk.ru", "mailru"),
                                         ("a@list.ru", "mailru"), ("a@inbox.ru", "mailru"),
                                         ("a@lenta.ru", "rambler"), ("a@ro.ru", "rambler")])
def test_issue_examples(address, key):
    assert preset_for_address(address).key == key


@pytest.mark.parametrize("exchanges,key", [
    (["aspmx.l.google.com", "alt1.aspmx.l.google.com"], "google"),
    (["smtp.google.com"], "google"),
    (["firma-ru.mail.protection.outlook.com"], "microsoft365"),
    (["mx.yandex.net"], "yandex"),
    (["emx.mail.ru"], "mailru"),
    (["mx.zoho.com", "mx2.zoho.com"], "zoho"),
    (["mx.zoho.eu"], "zoho"),
    (["mail.firma.ru"], "other"),
])
def test_hosted_domains_are_recognised_by_mx(dns_server, exchanges, key):
    dns_server.add_mx("firma.ru", *exchanges)
    assert preset_for_address("ivan@firma.ru", resolver=dns_server.resolver()).key == key
    assert dns_server.questions == ["firma.ru"]


def test_lowest_preference_mx_decides(dns_server):
    dns_server.add_mx("firma.ru", "mx.yandex.net", "aspmx.l.google.com")
    assert preset_for_address("ivan@firma.ru", resolver=dns_server.resolver()).key == "yandex"


def test_no_mx_answer_is_not_an_error(dns_server):
    assert preset_for_address("ivan@nowhere.example", resolver=dns_server.resolver()).key == "other"


def test_a_silent_resolver_gives_up_quickly(dns_server):
    dns_server.never_answer("slow.example")
    started = time.monotonic()
    assert preset_for_address("ivan@slow.example", resolver=dns_server.resolver(lifetime=0.3)).key == "other"
    assert time.monotonic() - started < 1.5


def test_login_format_and_lookup_by_key():
    google = get_preset("google")
    assert google.login_for("ivan@gmail.com") == "ivan@gmail.com"
    assert get_preset("no-such") is None
    assert google.to_dict("ru")["smtp"] == {"host": "smtp.gmail.com", "port": 465, "security": "ssl"}


def test_provider_of_a_mailbox_is_judged_without_network():
    server = ServerSettings("smtp.yandex.ru", 465, "ssl", "a@firma.ru", "p")
    assert provider_for(MailboxSettings("a@firma.ru", "A", server)) == "yandex"
    # A gmail.com address sent through the company's own server is not at Google: no Google advice for its answers.
    other = ServerSettings("mail.firma.ru", 465, "ssl", "a@gmail.com", "p")
    assert provider_for(MailboxSettings("a@gmail.com", "A", other)) is None
    at_google = ServerSettings("SMTP.gmail.com.", 465, "ssl", "a@gmail.com", "p")
    assert provider_for(MailboxSettings("a@gmail.com", "A", at_google)) == "google"


def test_preset_names_read_in_russian_where_they_are_not_brands():
    from portal.mail.presets import get_preset

    assert get_preset("other").title("ru") == "Другой сервер"
    assert get_preset("other").title("en") == "Other server"
    assert get_preset("google").title("ru") == get_preset("google").title("en")  # a brand stays as it is
