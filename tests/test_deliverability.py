"""A sending domain's SPF, DMARC, DKIM and MX, read from real TXT/MX/A records served by the test DNS server."""
import pytest

from portal import deliverability
from portal.models.health import DomainDeliverability

DKIM_KEY = "v=DKIM1; k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" * 8  # longer than one DNS string


@pytest.fixture
def lookup(dns_server):
    return deliverability.dns_lookup(dns_server.resolver())


def findings(result):
    return {finding.kind: finding.code for finding in result.findings}


def test_a_domain_set_up_for_yandex_passes_every_check(dns_server, lookup):
    dns_server.add_txt("example.ru", "v=spf1 include:_spf.yandex.net ~all", "google-site-verification=abc")
    dns_server.add_txt("_dmarc.example.ru", "v=DMARC1; p=reject; rua=mailto:dmarc@example.ru")
    dns_server.add_txt("mail._domainkey.example.ru", DKIM_KEY)
    dns_server.add_mx("example.ru", "mx.yandex.net")

    result = deliverability.checklist("sales@example.ru", "smtp.yandex.ru", lookup)

    assert result.ok
    assert findings(result) == {"spf": "spf_pass", "dmarc": "dmarc_pass", "dkim": "dkim_pass", "mx": "mx_pass"}
    assert "reject" in result.findings[1].text("en") and "«reject»" in result.findings[1].text("ru")


def test_an_spf_record_without_the_providers_include_may_land_in_spam(dns_server, lookup):
    dns_server.add_txt("example.ru", "v=spf1 include:_spf.google.com ~all")
    dns_server.add_mx("example.ru", "mx.example.ru")

    result = deliverability.checklist("sales@example.ru", "smtp.yandex.ru", lookup)

    spf = result.findings[0]
    assert (spf.kind, spf.ok, spf.code) == ("spf", False, "spf_missing_include")
    assert spf.text("en") == ("Letters from this address may land in spam: the SPF record of example.ru does not "
                              "include smtp.yandex.ru. Add \"include:_spf.yandex.net\" to it.")
    assert "не включает smtp.yandex.ru" in spf.text("ru")
    assert findings(result)["dkim"] == "dkim_missing"


def test_minus_all_without_the_server_means_refused(dns_server, lookup):
    dns_server.add_txt("example.com", "v=spf1 ip4:192.0.2.0/24 include:spf.example.net -all")
    dns_server.add_txt("spf.example.net", "v=spf1 ip4:198.51.100.7 -all")
    dns_server.add_a("mail.example.com", "203.0.113.25")

    result = deliverability.checklist("info@example.com", "mail.example.com", lookup)

    assert findings(result)["spf"] == "spf_refuses"
    assert "-all" in result.findings[0].text("en") and "отклонять" in result.findings[0].text("ru")
    assert findings(result)["mx"] == "mx_missing"


def test_a_server_authorised_by_address_through_an_include_passes(dns_server, lookup):
    dns_server.add_txt("example.com", "v=spf1 include:spf.example.net -all")
    dns_server.add_txt("spf.example.net", "v=spf1 ip4:203.0.113.0/24 -all")
    dns_server.add_a("mail.example.com", "203.0.113.25")

    assert findings(deliverability.checklist("info@example.com", "mail.example.com", lookup))["spf"] == "spf_pass"


def test_no_dmarc_record_is_a_finding_with_advice(dns_server, lookup):
    dns_server.add_txt("example.com", "v=spf1 a:mail.example.com -all")
    dns_server.add_mx("example.com", "mail.example.com")

    result = deliverability.checklist("info@example.com", "mail.example.com", lookup)

    assert findings(result) == {"spf": "spf_pass", "dmarc": "dmarc_missing", "mx": "mx_pass"}  # no DKIM: unknown host
    assert "_dmarc.example.com" in result.findings[1].text("en")


def test_p_reject_with_neither_spf_nor_dkim_for_the_server_is_refused(dns_server, lookup):
    dns_server.add_txt("example.ru", "v=spf1 include:_spf.mail.ru ~all")
    dns_server.add_txt("_dmarc.example.ru", "v=DMARC1; p=reject")

    result = deliverability.checklist("sales@example.ru", "smtp.gmail.com", lookup)

    assert findings(result)["dmarc"] == "dmarc_misaligned"
    dmarc = result.findings[1]
    assert "receivers will refuse letters" in dmarc.text("en") and "отклонять" in dmarc.text("ru")


def test_answers_are_kept_per_domain_so_dns_is_asked_once(dns_server, app, make_mailbox, employee):
    dns_server.add_txt("example.ru", "v=spf1 include:_spf.yandex.net ~all")
    first = make_mailbox(employee, address="a@example.ru", smtp_host="smtp.yandex.ru")
    second = make_mailbox(employee, address="b@example.ru", smtp_host="smtp.yandex.ru")
    resolver = dns_server.resolver()

    assert deliverability.kept_checklists([first]) == {first.id: None}  # nothing asked yet: unknown, not a wait
    one = deliverability.mailbox_checklist(first, resolver)
    asked = len(dns_server.questions)
    two = deliverability.mailbox_checklist(second, resolver)

    assert len(dns_server.questions) == asked  # the second mailbox of the domain asked nothing
    assert findings(one) == findings(two) and findings(one)["spf"] == "spf_pass"
    assert DomainDeliverability.select().count() == 1
    assert findings(deliverability.kept_checklists([first, second])[second.id]) == findings(one)


def test_a_silent_dns_is_said_not_guessed(dns_server):
    dns_server.never_answer("example.org")
    result = deliverability.checklist("a@example.org", "smtp.example.org",
                                      deliverability.dns_lookup(dns_server.resolver(lifetime=0.3)))
    assert [(f.kind, f.code) for f in result.findings] == [("dns", "dns_failed")]


def test_a_record_asking_dns_hundreds_of_times_stops_at_rfc_7208s_ten(dns_server, lookup):
    # "Check DNS now" runs in the web request: a domain's owner must not be able to make it ask thousands of
    # questions (each up to the resolver's timeout) with a record full of a: and mx: terms.
    terms = " ".join(f"a:h{n}.example.com mx:m{n}.example.com" for n in range(200))
    dns_server.add_txt("example.com", f"v=spf1 {terms} -all")
    dns_server.add_a("mail.example.com", "203.0.113.25")

    result = deliverability.checklist("info@example.com", "mail.example.com", lookup)

    assert findings(result)["spf"] == "spf_refuses"
    asked = [question for question in dns_server.questions if ".example.com" in question and "h" in question]
    assert len(asked) <= 40, len(asked)  # ten mechanisms, each asking A and AAAA (or MX, then A and AAAA)
