"""Autoconfiguration against a test DNS server, a local HTTPS server for autoconfig XML and loopback mail servers."""
from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from portal.mail import discovery
from portal.mail.discovery import AUTOCONFIG_MAX_BYTES, discover, domain_of
from portal.mail.settings import MailConfig
from tests.servers.certificates import make_certificate

PUBLIC_IP = "93.184.216.34"  # only ever resolved by the test DNS, never connected to

AUTOCONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.com">
    <domain>example.com</domain>
    <incomingServer type="imap">
      <hostname>{imap_host}</hostname><port>{imap_port}</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.%EMAILDOMAIN%</hostname><port>995</port><socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{smtp_host}</hostname><port>{smtp_port}</port><socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"""


def autoconfig_xml(smtp_host="smtp.example.com", smtp_port=587, imap_host="imap.example.com", imap_port=993):
    return AUTOCONFIG.format(smtp_host=smtp_host, smtp_port=smtp_port, imap_host=imap_host, imap_port=imap_port)


class AutoconfigServer:
    """An HTTPS server on 127.0.0.1 answering by Host header and path, like autoconfig.<domain> would."""

    def __init__(self, certificate):
        self.routes: dict[tuple[str, str], tuple[int, dict, bytes]] = {}
        self.trickles: dict[tuple[str, str], float] = {}  # seconds between the body's bytes
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                host = self.headers.get("Host", "").rsplit(":", 1)[0]
                path = self.path.split("?", 1)[0]
                server.requests.append(f"{host}{self.path}")
                status, headers, body = server.routes.get((host, path), (404, {}, b"not here"))
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                delay = server.trickles.get((host, path))
                try:
                    for start in range(0, len(body), 1 if delay else len(body) or 1):
                        self.wfile.write(body[start:start + 1] if delay else body)
                        if delay:
                            self.wfile.flush()
                            time.sleep(delay)
                except OSError:  # the portal hung up (its deadline)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate.cert_file, certificate.key_file)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, host: str, path: str, body: str | bytes, status: int = 200, trickle: float = 0.0,
              **headers) -> None:
        self.routes[(host, path)] = (status, headers, body.encode() if isinstance(body, str) else body)
        if trickle:
            self.trickles[(host, path)] = trickle

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


NAMES = ("autoconfig.example.com", "example.com", "autoconfig.mailhost.net", "smtp.example.com",
         "mail.example.com", "imap.example.com", "pop.example.com", "localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A certificate for the test domain's names, and the CA that trusts it."""
    return make_certificate(tmp_path_factory.mktemp("discovery-certs"), label="discovery", names=NAMES)


@pytest.fixture
def web(certificate):
    server = AutoconfigServer(certificate)
    yield server
    server.stop()


@pytest.fixture
def guard_config(certificate):
    """The guard lets discovery reach 127.0.0.1 (the test servers) and trusts the test CA."""
    return MailConfig(timeout=3.0, allowed_hosts=("127.0.0.1:*",), ca_file=certificate.ca_file)


@pytest.fixture
def find(dns_server, web, guard_config):
    """discover() wired to the test DNS and the local HTTPS port; the guess probes nothing unless asked."""
    def run(address, **overrides):
        options = dict(resolver=dns_server.resolver(), https_port=web.port, guess_ports={}, probe_timeout=2.0)
        return discover(address, overrides.pop("config", guard_config), **{**options, **overrides})
    return run


def publish(dns_server, web, host, path, body=None, **serve):
    """Serve an autoconfig document at https://host/path, with its servers on a public address."""
    dns_server.add_a(host, "127.0.0.1")
    for name in ("smtp.example.com", "imap.example.com", "pop.example.com"):
        dns_server.add_a(name, PUBLIC_IP)
    web.serve(host, path, autoconfig_xml() if body is None else body, **serve)


def _notes(discovery, source):
    return [(step.outcome, step.note) for step in discovery.trail if step.source == source]


def test_a_preset_domain_needs_no_network(find, dns_server, web):
    """gmail.com is a preset: outgoing and incoming come from it, and nothing is looked up."""
    found = find("anna@gmail.com")
    assert found.source == "preset" and found.preset_key == "google"
    assert (found.smtp.host, found.smtp.port, found.smtp.security) == ("smtp.gmail.com", 465, "ssl")
    assert (found.incoming.protocol, found.incoming.host) == ("imap", "imap.gmail.com")
    assert found.server("pop3").host == "pop.gmail.com"
    assert dns_server.questions == [] and web.requests == []


def test_the_published_autoconfig_fills_outgoing_and_incoming(find, dns_server, web):
    """autoconfig.<domain> serves Thunderbird's XML: servers, security and login placeholders are taken."""
    publish(dns_server, web, "autoconfig.example.com", "/mail/config-v1.1.xml")
    found = find("anna.smith@example.com")
    assert found.source == "autoconfig"
    assert found.smtp.to_dict() == {"protocol": "smtp", "host": "smtp.example.com", "port": 587,
                                    "security": "starttls", "username": "anna.smith"}
    assert (found.incoming.protocol, found.incoming.port, found.incoming.username) == (
        "imap", 993, "anna.smith@example.com")
    assert found.server("pop3").host == "pop.example.com"
    assert web.requests == ["autoconfig.example.com/mail/config-v1.1.xml?emailaddress=anna.smith@example.com"]
    assert ("found", "published_configuration") in _notes(found, "autoconfig")


def test_the_well_known_address_is_tried_when_autoconfig_host_is_missing(find, dns_server, web):
    """No autoconfig.<domain> host: https://<domain>/.well-known/autoconfig/... is asked next."""
    publish(dns_server, web, "example.com", "/.well-known/autoconfig/mail/config-v1.1.xml")
    found = find("anna@example.com")
    assert found.source == "autoconfig"
    assert _notes(found, "autoconfig")[0] == ("nothing", "no_such_host")
    assert found.smtp.host == "smtp.example.com"


BAD_DOCUMENTS = {
    "not_xml": ({}, "<html><body>Welcome to example.com</body></html"),
    "too_big": ({}, "<clientConfig>" + "x" * AUTOCONFIG_MAX_BYTES + "</clientConfig>"),
    "address_not_allowed": ({}, autoconfig_xml(smtp_host="10.1.2.3", imap_host="192.168.0.10")),
    "port_not_allowed": ({}, autoconfig_xml(smtp_port=22, imap_port=8080)),
    "redirect_elsewhere": ({"Location": "https://evil.example.org/config.xml"}, ""),
}


@pytest.mark.parametrize("problem", sorted(BAD_DOCUMENTS) + ["entity_expansion"])
def test_a_bad_autoconfig_document_is_ignored_with_a_note(find, dns_server, web, problem):
    """Not XML, too big, private addresses, ports outside the list, another host: noted, never followed."""
    if problem == "entity_expansion":
        headers, body = {}, ('<?xml version="1.0"?><!DOCTYPE c [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
                             "<clientConfig>&b;</clientConfig>")
    else:
        headers, body = BAD_DOCUMENTS[problem]
    status = 302 if problem == "redirect_elsewhere" else 200
    publish(dns_server, web, "autoconfig.example.com", "/mail/config-v1.1.xml", body, status=status, **headers)
    found = find("anna@example.com")
    assert found.source is None and found.servers == ()
    notes = [step.note for step in found.trail if step.source == "autoconfig"]
    expected = "not_xml" if problem == "entity_expansion" else problem
    assert expected in notes
    if problem in ("address_not_allowed", "port_not_allowed"):
        assert notes[-2:] == ["no_usable_servers", "no_such_host"]  # then the well-known address: no host
    assert [request.split("?")[0] for request in web.requests] == ["autoconfig.example.com/mail/config-v1.1.xml"]


def test_a_redirect_on_the_same_host_is_followed(find, dns_server, web):
    """A provider that moved its document on the same host: the redirect is followed over HTTPS."""
    publish(dns_server, web, "autoconfig.example.com", "/mail/config-v1.1.xml", "", status=301,
            Location=f"https://autoconfig.example.com:{web.port}/v2/config.xml")
    web.serve("autoconfig.example.com", "/v2/config.xml", autoconfig_xml())
    found = find("anna@example.com")
    assert found.source == "autoconfig" and found.smtp.host == "smtp.example.com"
    assert [request.split("?")[0] for request in web.requests] == [
        "autoconfig.example.com/mail/config-v1.1.xml", "autoconfig.example.com/v2/config.xml"]


def test_an_autoconfig_server_trickling_its_document_is_cut_at_the_deadline(find, dns_server, web, monkeypatch):
    """Each byte comes well within the read timeout; the whole fetch's deadline ends it all the same."""
    monkeypatch.setattr(discovery, "AUTOCONFIG_DEADLINE", 1.0)
    publish(dns_server, web, "autoconfig.example.com", "/mail/config-v1.1.xml", trickle=0.2)
    started = time.monotonic()
    found = find("anna@example.com", mx_lookup=False)
    assert time.monotonic() - started < 4
    step = next(step for step in found.trail if step.where.startswith("https://autoconfig.example.com"))
    assert (step.outcome, step.note, step.detail) == ("nothing", "unreachable", "DeadlineExceeded")


def test_an_autoconfig_server_with_an_untrusted_certificate_is_not_read(find, dns_server, web):
    """HTTPS is verified: without the test CA the document is never read (no plain-HTTP fallback either)."""
    publish(dns_server, web, "autoconfig.example.com", "/mail/config-v1.1.xml")
    found = find("anna@example.com", config=MailConfig(timeout=3.0, allowed_hosts=("127.0.0.1:*",)))
    assert ("nothing", "unreachable") in _notes(found, "autoconfig")
    assert web.requests == [] and not found.found


def test_an_autoconfig_host_on_a_private_address_is_not_fetched(find, dns_server, web, certificate):
    """Without an allowance for 127.0.0.1 the guard refuses the HTTPS fetch itself: nothing is asked."""
    publish(dns_server, web, "autoconfig.example.com", "/mail/config-v1.1.xml")
    found = find("anna@example.com", config=MailConfig(timeout=3.0, ca_file=certificate.ca_file))
    assert ("ignored", "address_not_allowed") in _notes(found, "autoconfig")
    assert web.requests == []
    assert not found.found


def test_nothing_anywhere_says_so_with_the_whole_trail(find):
    """A domain with no answer anywhere: no servers, and a trail naming every source that was asked."""
    found = find("anna@nowhere.example.com", guess_ports={"smtp": ((465, "ssl"),)})
    assert not found.found and found.source is None
    sources = ["preset", "autoconfig", "autoconfig", "mx", "srv", "guess", "guess"]
    assert [step.source for step in found.trail] == sources
    assert found.to_dict()["servers"] == {}


def test_the_mx_of_a_known_provider_gives_its_preset(find, dns_server):
    """A company domain whose MX is Microsoft's gets the Microsoft 365 servers, marked as found by MX."""
    dns_server.add_mx("corp.example.com", "corp-example-com.mail.protection.outlook.com")
    found = find("anna@corp.example.com")
    assert (found.source, found.preset_key) == ("mx", "microsoft365")
    assert found.smtp.host == "smtp.office365.com"
    assert ("found", "known_provider") in _notes(found, "mx")


def test_the_mx_hosts_published_configuration_is_used(find, dns_server, web):
    """An unknown MX host: its provider's own autoconfig (autoconfig.<its domain>) is read."""
    dns_server.add_mx("shop.example.com", "mx1.mailhost.net")
    publish(dns_server, web, "autoconfig.mailhost.net", "/mail/config-v1.1.xml")
    found = find("anna@shop.example.com")
    assert found.source == "mx"
    assert found.smtp.host == "smtp.example.com"
    assert ("found", "published_configuration") in _notes(found, "mx")


def test_srv_records_pick_by_priority_then_implicit_tls(find, dns_server):
    """RFC 6186/8314: the lowest priority wins, implicit TLS on a tie; a "." target is "not offered"."""
    dns_server.add_srv("_submissions._tcp.example.com", (10, 0, 465, "smtp.example.com"))
    dns_server.add_srv("_submission._tcp.example.com", (10, 0, 587, "smtp.example.com"))
    dns_server.add_srv("_imap._tcp.example.com", (0, 1, 143, "imap.example.com"))
    dns_server.add_srv("_imaps._tcp.example.com", (5, 0, 993, "imap.example.com"))
    dns_server.add_srv("_pop3s._tcp.example.com", (0, 0, 0, "."))
    dns_server.add_a("smtp.example.com", PUBLIC_IP)
    dns_server.add_a("imap.example.com", PUBLIC_IP)
    found = find("anna@example.com")
    assert found.source == "srv"
    assert (found.smtp.port, found.smtp.security, found.smtp.username) == (465, "ssl", "anna@example.com")
    assert (found.incoming.protocol, found.incoming.port, found.incoming.security) == ("imap", 143, "starttls")
    assert found.server("pop3") is None
    assert ("nothing", "not_offered") in _notes(found, "srv")


def test_srv_records_pointing_inside_are_ignored(find, dns_server):
    """A service record naming a private address is noted and not used."""
    dns_server.add_srv("_submissions._tcp.example.com", (0, 0, 465, "smtp.example.com"))
    dns_server.add_a("smtp.example.com", "10.0.0.25")
    found = find("anna@example.com")
    assert found.source is None
    assert ("ignored", "address_not_allowed") in _notes(found, "srv")


def test_the_guess_prefers_implicit_tls_and_never_signs_in(find, dns_server, make_smtp_server, certificate):
    """smtp.<domain> answers TLS on one port and STARTTLS on another: implicit TLS is picked, no AUTH sent."""
    implicit = make_smtp_server("ssl", certificate=certificate)
    starttls = make_smtp_server("starttls", certificate=certificate)
    dns_server.add_a("smtp.example.com", "127.0.0.1")
    found = find("anna@example.com", guess_ports={"smtp": ((implicit.port, "ssl"), (starttls.port, "starttls"))})
    assert found.source == "guess"
    assert (found.smtp.host, found.smtp.port, found.smtp.security) == ("smtp.example.com", implicit.port, "ssl")
    assert found.incoming is None
    assert implicit.logins == [] and starttls.logins == [] and implicit.messages == []
    outcomes = {step.where: (step.outcome, step.note) for step in found.trail if step.source == "guess"}
    assert outcomes[f"smtp.example.com:{starttls.port}"] == ("found", "answered_with_tls")
    assert outcomes[f"mail.example.com:{implicit.port}"] == ("nothing", "no_such_host")


def test_the_guess_takes_starttls_when_that_is_all_there_is(find, dns_server, make_smtp_server, certificate):
    """Only STARTTLS answers (the TLS port is closed): it is chosen."""
    starttls = make_smtp_server("starttls", certificate=certificate)
    closed = make_smtp_server("ssl", certificate=certificate)
    closed.stop()
    dns_server.add_a("mail.example.com", "127.0.0.1")
    found = find("anna@example.com", guess_ports={"smtp": ((closed.port, "ssl"), (starttls.port, "starttls"))})
    smtp = found.smtp
    assert (smtp.host, smtp.port, smtp.security) == ("mail.example.com", starttls.port, "starttls")


def test_a_guess_whose_certificate_does_not_match_is_not_taken(find, dns_server, make_smtp_server):
    """A server with a certificate for another name answers, but TLS fails: the guess finds nothing."""
    server = make_smtp_server("ssl")  # its certificate is for localhost only
    dns_server.add_a("smtp.example.com", "127.0.0.1")
    found = find("anna@example.com", guess_ports={"smtp": ((server.port, "ssl"),)})
    assert not found.found
    [probe] = [step for step in found.trail if step.where == f"smtp.example.com:{server.port}"]
    assert probe.outcome == "nothing" and probe.note.startswith("probe_failed:")


@pytest.mark.parametrize("address", ["", "anna", "anna@", "@example.com", "anna@localhost", "anna@exa mple.com",
                                     "anna@-bad.example.com"])
def test_an_address_without_a_mail_domain_is_refused(address):
    """Discovery needs name@domain with a real domain; anything else is a ValueError for the field."""
    with pytest.raises(ValueError, match="name@example.com"):
        domain_of(address)


# ---------------------------------------------------------------- portal discover ADDRESS


@pytest.fixture
def runner_dns(config, dns_server):
    config.update(PORTAL_MAIL_DNS_SERVERS=f"127.0.0.1:{dns_server.port}", PORTAL_MAIL_TIMEOUT=3.0)
    return dns_server


def test_the_command_prints_what_it_found_as_json(runner_dns, runner):
    """SRV records on the test DNS: exit 0, the servers and the source in JSON, in the language asked for."""
    runner_dns.add_srv("_submissions._tcp.firma.example.com", (0, 0, 465, "mail.firma.example.com"))
    runner_dns.add_a("mail.firma.example.com", PUBLIC_IP)
    result = runner.invoke(args=["discover", "olga@firma.example.com", "--json", "--lang", "ru"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["source"] == "srv" and answer["source_text"] == "из служебных записей DNS (SRV)"
    assert answer["servers"]["smtp"] == {"protocol": "smtp", "host": "mail.firma.example.com", "port": 465,
                                         "security": "ssl", "username": "olga@firma.example.com"}


def test_the_command_says_when_nothing_was_found(runner_dns, runner):
    """Nothing anywhere: exit 1, a sentence saying so, and the trail."""
    result = runner.invoke(args=["discover", "olga@nowhere.example.com", "--lang", "en"])
    assert result.exit_code == 1
    assert "No settings were found anywhere." in result.output
    assert "autoconfig.nowhere.example.com" in result.output and "the name does not resolve" in result.output


def test_the_command_refuses_a_bad_address(runner_dns, runner):
    """A bad address is a usage error (exit 2) naming the argument."""
    result = runner.invoke(args=["discover", "olga"])
    assert result.exit_code == 2 and "name@example.com" in result.output


def test_dns_servers_setting_is_read_with_ports():
    """PORTAL_MAIL_DNS_SERVERS: addresses with optional ports, IPv6 in brackets; nothing else."""
    from portal.mail.discovery import dns_resolver

    resolver = dns_resolver("10.0.0.53, 127.0.0.1:5353, [fd00::53]:5300")
    assert [(server.address, server.port) for server in resolver.nameservers] == [
        ("10.0.0.53", 53), ("127.0.0.1", 5353), ("fd00::53", 5300)]
    assert dns_resolver("") is None and dns_resolver(" , ") is None
    for wrong in ("dns.example.com", "10.0.0.53:port"):
        with pytest.raises(ValueError):
            dns_resolver(wrong)
