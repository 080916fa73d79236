"""Find settings on the mailbox form: the fields autoconfiguration fills, where it found them, bad input."""
from __future__ import annotations

import re

import pytest

from tests.conftest import page_text

PUBLIC_IP = "93.184.216.34"  # only ever resolved by the test DNS, never connected to


@pytest.fixture
def dns_for_app(config, dns_server):
    """Autoconfiguration asks the test DNS server only (PORTAL_MAIL_DNS_SERVERS); set before `app`."""
    config.update(PORTAL_MAIL_DNS_SERVERS=f"127.0.0.1:{dns_server.port}", PORTAL_MAIL_TIMEOUT=3.0)
    return dns_server


def find(client, lang="en", **fields):
    return client.post("/mailboxes/discover", data={"scope": "employee", **fields},
                       headers={"HX-Request": "true", "Accept-Language": lang})


def slot_value(body, name):
    """The value of the field in an out-of-band slot of the answer, or None if the slot was not sent."""
    found = re.search(rf'<div id="slot-{name}" class="slot" hx-swap-oob="true">.*?</div>', body, re.S)
    if not found:
        return None
    html = found.group(0)
    if "<select" in html:
        selected = re.search(r'<option selected value="([^"]*)"|<option value="([^"]*)" selected', html)
        return next(group for group in selected.groups() if group is not None) if selected else ""
    value = re.search(r'<input[^>]*value="([^"]*)"', html)
    return value.group(1) if value else ""


def test_the_form_offers_find_settings(dns_for_app, as_employee):
    """The mailbox form has the button, posting to the discovery endpoint, and an empty result area."""
    html = as_employee.get("/mailboxes/new").get_data(as_text=True)
    assert 'hx-post="/mailboxes/discover"' in html and "Find settings" in html
    assert 'id="discovery-result"' in html


def test_a_preset_address_fills_outgoing_and_incoming(dns_for_app, as_employee):
    """A Yandex address: the provider, SMTP and IMAP fields come back filled, and the answer says from where."""
    answer = find(as_employee, address="erik@yandex.ru", incoming_protocol="", smtp_password="typed-secret")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "HX-Request" in answer.headers["Vary"]
    assert slot_value(body, "provider") == "yandex"
    assert slot_value(body, "smtp_host") == "smtp.yandex.ru" and slot_value(body, "smtp_port") == "465"
    assert slot_value(body, "smtp_username") == "erik@yandex.ru"
    assert slot_value(body, "incoming_protocol") == "imap" and slot_value(body, "incoming_host") == "imap.yandex.ru"
    assert "from the provider presets built into the portal" in page_text(answer)
    assert 'id="provider-advice"' in body  # the provider's advice follows the filled provider
    assert "typed-secret" not in body and 'name="smtp_password"' not in body
    assert dns_for_app.questions == []


def test_a_domain_with_srv_records_is_filled_from_dns(dns_for_app, as_employee):
    """No preset, no autoconfig: the DNS service records give the servers, named as the source."""
    dns_for_app.add_srv("_submission._tcp.firma.example.com", (0, 0, 587, "mx.firma.example.com"))
    dns_for_app.add_srv("_pop3s._tcp.firma.example.com", (0, 0, 995, "mx.firma.example.com"))
    dns_for_app.add_a("mx.firma.example.com", PUBLIC_IP)
    answer = find(as_employee, address="olga@firma.example.com", smtp_username="olga", incoming_protocol="pop3")
    body = answer.get_data(as_text=True)
    assert slot_value(body, "smtp_host") == "mx.firma.example.com"
    assert slot_value(body, "smtp_security") == "starttls"
    assert slot_value(body, "smtp_username") is None  # typed by the user: left alone
    assert slot_value(body, "incoming_port") == "995"
    assert slot_value(body, "incoming_protocol") is None  # pop3 was chosen already and was found
    assert "from the DNS service records" in page_text(answer)


def test_nothing_found_leaves_the_fields_and_says_so_in_russian(dns_for_app, as_employee):
    """A domain with no answer anywhere: no field is sent back, the message and the trail are in Russian."""
    answer = find(as_employee, lang="ru", address="olga@nowhere.example.com", smtp_host="typed.example.com")
    body = answer.get_data(as_text=True)
    assert "hx-swap-oob" not in body
    text = page_text(answer)
    assert "Для nowhere.example.com настройки нигде не найдены" in text
    assert "Где портал искал" in text and "имя не находится в DNS" in text


def test_typing_an_unknown_address_looks_further_than_the_presets(dns_for_app, as_employee):
    """Leaving the address field (the provider picker's call) runs discovery when no server is typed yet."""
    dns_for_app.add_srv("_submissions._tcp.firma.example.com", (0, 0, 465, "mx.firma.example.com"))
    dns_for_app.add_a("mx.firma.example.com", PUBLIC_IP)
    fields = {"trigger": "address", "provider": "other", "address": "olga@firma.example.com"}
    left = as_employee.post("/mailboxes/provider", data=fields, headers={"HX-Request": "true"})
    assert slot_value(left.get_data(as_text=True), "smtp_host") == "mx.firma.example.com"
    assert "from the DNS service records" in page_text(left)

    asked = len(dns_for_app.questions)
    typed = as_employee.post("/mailboxes/provider", data={**fields, "smtp_host": "relay.example.com"},
                             headers={"HX-Request": "true"})
    assert "slot-smtp_host" not in typed.get_data(as_text=True)  # a server is typed: nothing is looked up
    assert dns_for_app.questions[asked:] == ["firma.example.com"]  # only the MX question of the picker


@pytest.mark.parametrize("address", ["", "olga", "olga@localhost"])
def test_a_bad_address_gets_its_error_beside_the_field(dns_for_app, as_employee, address):
    """Without a usable address nothing is looked up: the address field says what to type."""
    answer = find(as_employee, address=address)
    body = answer.get_data(as_text=True)
    assert re.search(r'<div id="slot-address" class="slot" hx-swap-oob="true">', body)
    assert "aria-invalid" in body and "name@example.com" in page_text(answer)
    assert "slot-smtp_host" not in body
    assert dns_for_app.questions == []


def test_find_settings_needs_a_signed_in_user(dns_for_app, client):
    """Anonymous callers are sent to sign in; nothing is looked up for them."""
    answer = find(client, address="erik@yandex.ru")
    assert answer.status_code in (302, 401)
    assert dns_for_app.questions == []
