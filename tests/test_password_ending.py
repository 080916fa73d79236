"""The password-ending rule: which mailboxes still sign in with a password at a provider that ends it, judged on a
given day (never the real one), without Flask."""
from __future__ import annotations

import datetime

import pytest

from portal import password_ending
from portal.db import StatementCounter
from portal.mail.presets import get_preset
from portal.models.oauth import OAuthApp
from portal.oauth import grants
from portal.oauth.client import Tokens

M365_ENDS = datetime.date(2026, 12, 31)


def microsoft_app():
    """The Microsoft app registered on Sign-in providers."""
    app = OAuthApp(provider="microsoft", client_id="portal-client", tenant="organizations")
    app.set_secret("client_secret", "client-secret")
    app.save(force_insert=True)
    return app


@pytest.fixture
def company_domain_at_m365(make_mailbox):
    """A company domain hosted at Microsoft 365: only its SMTP host tells."""
    return make_mailbox(address="sales@acme.example", smtp_host="smtp.office365.com", smtp_port=587)


def test_the_presets_declare_the_dates_and_say_what_happens():
    m365, outlook = get_preset("microsoft365"), get_preset("outlook")
    assert m365.password_sign_in_ends == M365_ENDS and outlook.password_sign_in_ends == datetime.date(2024, 9, 16)
    assert "5.7.30" in m365.password_sign_in_note("en") and "2027" in m365.password_sign_in_note("ru")
    assert m365.password_sign_in_note("ru") != m365.password_sign_in_note("en")
    assert m365.to_dict("en")["password_sign_in_ends"] == "2026-12-31"
    assert outlook.to_dict("ru")["password_sign_in_note"].startswith("С 16 сентября 2024 года")
    assert get_preset("google").to_dict()["password_sign_in_ends"] is None
    # The Outlook.com advice no longer promises that an app password helps.
    assert "phasing out" not in outlook.advice("en") and "may help" not in outlook.advice("en")
    assert "постепенно" not in outlook.advice("ru") and not outlook.app_password_required_with_2fa


@pytest.mark.parametrize("day,passed,days_left", [
    (datetime.date(2026, 12, 7), False, 24),
    (datetime.date(2026, 12, 30), False, 1),
    (M365_ENDS, True, 0),
    (datetime.date(2027, 3, 1), True, -60),
])
def test_a_company_domain_at_office365_is_flagged_before_on_and_after_the_date(
        company_domain_at_m365, day, passed, days_left):
    found = password_ending.password_ending(company_domain_at_m365, day)
    assert found.provider.key == "microsoft365" and found.ends == M365_ENDS
    assert (found.passed, found.days_left) == (passed, days_left)
    assert found.sign_in.key == "microsoft" and found.name("ru") == "Microsoft 365 (Exchange Online)"


def test_an_outlook_com_address_is_flagged_by_its_domain_and_has_long_passed(make_mailbox):
    mailbox = make_mailbox(address="anna@hotmail.com", smtp_host="smtp-mail.outlook.com")
    found = password_ending.password_ending(mailbox, datetime.date(2026, 12, 7))
    assert found.provider.key == "outlook" and found.passed and found.ends == datetime.date(2024, 9, 16)


def test_a_mailbox_signed_in_with_microsoft_is_not_flagged(company_domain_at_m365):
    grants.new_grant("microsoft", "sales@acme.example", "XOAUTH2", Tokens("at", "rt", 3600),
                     mailbox=company_domain_at_m365)
    assert password_ending.password_ending(company_domain_at_m365, datetime.date(2026, 12, 7)) is None
    assert password_ending.ending_summary(datetime.date(2026, 12, 7)) == []


@pytest.mark.parametrize("address,host", [("anna@gmail.com", "smtp.gmail.com"),
                                          ("anna@acme.example", "mail.acme.example"),
                                          ("anna@yandex.ru", "smtp.yandex.ru"),
                                          # an Outlook.com address sent through a company relay is not at Microsoft
                                          ("anna@hotmail.com", "relay.acme.example")])
def test_a_mailbox_at_another_provider_is_not_flagged(make_mailbox, address, host):
    mailbox = make_mailbox(address=address, smtp_host=host)
    assert password_ending.password_ending(mailbox, datetime.date(2026, 12, 7)) is None


def test_the_sign_in_button_is_offered_only_once_the_microsoft_app_is_registered(company_domain_at_m365):
    day = datetime.date(2026, 12, 7)
    assert not password_ending.password_ending(company_domain_at_m365, day).app_registered
    microsoft_app()
    assert password_ending.password_ending(company_domain_at_m365, day).app_registered


def test_a_whole_list_costs_the_same_statements_however_many_rows(make_mailbox):
    microsoft_app()
    day = datetime.date(2026, 12, 7)

    def judged(count):
        boxes = [make_mailbox(address=f"p{n}-{count}@acme.example", smtp_host="smtp.office365.com")
                 for n in range(count)]
        signed = boxes[0]
        grants.new_grant("microsoft", signed.address, "XOAUTH2", Tokens("at", "rt", 3600), mailbox=signed)
        boxes.append(make_mailbox(address=f"other-{count}@gmail.com", smtp_host="smtp.gmail.com"))
        with StatementCounter() as counted:
            found = password_ending.password_endings(boxes, day)
        assert set(found) == {b.id for b in boxes[1:-1]}
        return counted.count

    assert judged(2) == judged(9) == 2  # the grants of the list, the registered apps


def test_the_summary_counts_per_provider_and_reads_only_the_first_few(
        make_mailbox, employee, company_domain_at_m365):
    personal = make_mailbox(employee, address="anna@Outlook.com", smtp_host="smtp-mail.outlook.com")
    shouting = make_mailbox(address="team@acme.example", smtp_host="SMTP.Office365.com")
    make_mailbox(address="info@gmail.com", smtp_host="smtp.gmail.com")
    make_mailbox(address="info@hotmail.com", smtp_host="relay.example")  # through a relay: not at Outlook.com
    for number in range(3):
        make_mailbox(address=f"z{number}@acme.example", smtp_host="smtp.office365.com")
    summary = password_ending.ending_summary(datetime.date(2026, 12, 7), shown=2)
    assert [(ending.provider.key, count, [m.id for m in first]) for ending, count, first in summary] == [
        ("outlook", 1, [personal.id]), ("microsoft365", 5, [company_domain_at_m365.id, shouting.id])]
    assert summary[0][0].passed and not summary[1][0].passed


def test_the_warning_is_sent_for_every_mailbox_within_30_days_paused_or_not(make_mailbox, employee,
                                                                            company_domain_at_m365):
    from portal import events

    paused = make_mailbox(employee, address="erik@acme.example", smtp_host="smtp.office365.com", active=False)
    heard = []

    def receiver(mailbox, ending=None, **_):
        heard.append((mailbox.id, ending.days_left))

    events.mailbox_password_ending.connect(receiver)
    try:
        assert password_ending.warn_owners(M365_ENDS - datetime.timedelta(days=31)) == 0
        assert password_ending.warn_owners(M365_ENDS - datetime.timedelta(days=30)) == 2
    finally:
        events.mailbox_password_ending.disconnect(receiver)
    assert sorted(heard) == sorted([(company_domain_at_m365.id, 30), (paused.id, 30)])
