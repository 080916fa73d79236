"""The connection guard: refuses before any socket exists, lets configured hosts through."""
from __future__ import annotations

import ipaddress
import logging
import sys
import threading

import pytest
from hypothesis import given, strategies as st

from portal.mail import guard
from portal.mail.guard import GuardRefused, is_public_address, resolve_destination
from portal.mail.settings import MailConfig

_watch = threading.local()


def _audit(event, args):
    events = getattr(_watch, "events", None)
    if events is None or not event.startswith("socket."):
        return
    events.append((event, args))
    if event == "socket.connect":
        host = args[1][0]
        if not ipaddress.ip_address(host).is_loopback:
            # A safety net: even a broken guard must not reach a real address from a test.
            raise RuntimeError(f"test tried to connect to {host}")


sys.addaudithook(_audit)  # hooks cannot be removed; this one only records while a test watches


@pytest.fixture
def socket_events():
    """Socket audit events (creation, connect) raised in this thread during the test."""
    _watch.events = []
    yield _watch.events
    del _watch.events


def opened_sockets(events):
    return [e for e in events if e[0] in ("socket.__new__", "socket.connect")]


FORBIDDEN = [
    "10.0.0.1", "172.16.5.4", "192.168.1.1",  # private
    "100.64.0.1", "100.127.255.254",  # carrier-grade NAT
    "127.0.0.1", "127.1", "2130706433", "0x7f000001", "localhost",  # loopback, however written
    "0.0.0.0", "0.1.2.3",  # "this host"
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200",  # cloud metadata
    "169.254.0.5", "fe80::1",  # link-local
    "::1", "[::1]", "::",
    "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:127.0.0.1",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe", "2002:a00:1::1", "::a00:1",  # NAT64, 6to4, IPv4-compatible
    "fc00::1", "224.0.0.1", "255.255.255.255",
]


@pytest.mark.parametrize("host", FORBIDDEN)
def test_forbidden_addresses_are_refused_before_any_socket(host, socket_events):
    with pytest.raises(GuardRefused) as refused:
        resolve_destination(host, 587, MailConfig())
    assert opened_sockets(socket_events) == []
    assert str(refused.value) == "connection to this server is not allowed"


@pytest.mark.parametrize("port", [22, 80, 443, 3306, 6379, 8080])
def test_non_mail_ports_are_refused_even_for_public_addresses(port, socket_events):
    with pytest.raises(GuardRefused):
        resolve_destination("8.8.8.8", port, MailConfig())
    assert opened_sockets(socket_events) == []


def test_refusals_look_the_same_whatever_the_reason_and_details_go_to_the_log(caplog):
    caplog.set_level(logging.WARNING, logger="portal.mail")
    messages = set()
    for host, port in [("10.0.0.1", 587), ("8.8.8.8", 22)]:
        with pytest.raises(GuardRefused) as refused:
            resolve_destination(host, port, MailConfig())
        messages.add(str(refused.value))
    assert len(messages) == 1
    assert "10.0.0.1 port 587" in caplog.text and "8.8.8.8 port 22" in caplog.text


def test_public_address_on_a_mail_port_is_allowed_without_connecting(socket_events):
    destination = resolve_destination("8.8.8.8", 465, MailConfig())
    assert destination.addresses == ("8.8.8.8",)
    assert opened_sockets(socket_events) == []


def test_only_the_allowed_addresses_of_a_name_are_kept():
    # A name that resolves to both an intranet and a public address: only the public one is connected to.
    destination = resolve_destination("mixed.example.com", 587, MailConfig(),
                                      resolver=lambda host, port: ["10.0.0.7", "8.8.4.4"])
    assert destination.addresses == ("8.8.4.4",)


@pytest.mark.parametrize("entry,host,port,allowed", [
    ("mail.corp.example", "mail.corp.example", 587, True),  # no port: the mail ports of that host...
    ("mail.corp.example", "mail.corp.example", 2526, False),  # ...and no other
    ("mail.corp.example", "mail.corp.example", 22, False),
    ("mail.corp.example:2526", "mail.corp.example", 2526, True),  # another port only when named
    ("mail.corp.example:*", "mail.corp.example", 8080, True),  # or every port, explicitly
    ("10.0.0.0/8", "mail.corp.example", 80, False),
    ("10.0.0.0/8:*", "mail.corp.example", 80, True),
    ("mail.corp.example", "other.corp.example", 587, False),
    ("mail.corp.example:587", "mail.corp.example", 587, True),
    ("mail.corp.example:587", "mail.corp.example", 25, False),
    ("10.0.0.0/8", "mail.corp.example", 25, True),
    ("10.9.9.9:25", "mail.corp.example", 25, True),
    ("10.9.9.9:25", "mail.corp.example", 587, False),
    ("192.168.0.0/16", "mail.corp.example", 25, False),
])
def test_allowed_hosts_let_the_company_server_in(entry, host, port, allowed):
    config = MailConfig(allowed_hosts=(entry,))

    def resolver(name, _port):
        return ["10.9.9.9"]
    if allowed:
        assert resolve_destination(host, port, config, resolver=resolver).addresses == ("10.9.9.9",)
    else:
        with pytest.raises(GuardRefused):
            resolve_destination(host, port, config, resolver=resolver)


def test_an_entry_without_a_port_follows_the_allowed_ports():
    config = MailConfig(allowed_hosts=("mail.corp.example",), allowed_ports=frozenset({2525}))

    def resolver(name, _port):
        return ["10.9.9.9"]
    assert resolve_destination("mail.corp.example", 2525, config, resolver=resolver).addresses == ("10.9.9.9",)
    with pytest.raises(GuardRefused):
        resolve_destination("mail.corp.example", 587, config, resolver=resolver)


def test_allowed_ipv6_entry_with_any_port():
    config = MailConfig(allowed_hosts=("[fd00::25]:*",))
    assert resolve_destination("fd00::25", 8025, config).addresses == ("fd00::25",)
    with pytest.raises(GuardRefused):
        resolve_destination("fd00::26", 8025, config)


def test_allowed_ipv6_entry_with_port():
    config = MailConfig(allowed_hosts=("[fd00::25]:587",))
    assert resolve_destination("fd00::25", 587, config).addresses == ("fd00::25",)
    with pytest.raises(GuardRefused):
        resolve_destination("fd00::25", 25, config)


def test_allowed_ports_are_configurable():
    config = MailConfig(allowed_ports=frozenset({587}))
    resolve_destination("8.8.8.8", 587, config)
    with pytest.raises(GuardRefused):
        resolve_destination("8.8.8.8", 465, config)


def test_guard_connects_to_exactly_the_address_it_checked(silent_server, socket_events):
    config = MailConfig(allowed_hosts=("127.0.0.1:*",))
    destination = resolve_destination("127.0.0.1", silent_server.port, config)

    sock = guard.connect(destination, timeout=1.0)
    sock.close()

    connects = [args[1] for event, args in socket_events if event == "socket.connect"]
    assert connects == [("127.0.0.1", silent_server.port)]


def test_a_name_is_resolved_once(silent_server, socket_events):
    config = MailConfig(allowed_hosts=("localhost:*",))
    destination = resolve_destination("localhost", silent_server.port, config)
    guard.connect(destination, timeout=1.0).close()
    # resolving happens in a helper thread (for its timeout); the connect in this one uses the address
    assert [e for e, _ in socket_events if e == "socket.getaddrinfo"] == []
    assert [args[1][0] for e, args in socket_events if e == "socket.connect"] == ["127.0.0.1"]


@given(st.ip_addresses(v=4))
def test_ipv4_inside_ipv6_is_judged_as_the_ipv4_address(ipv4):
    if is_public_address(ipv4):
        return
    for wrapped in (f"::ffff:{ipv4}", f"64:ff9b::{ipv4}",
                    str(ipaddress.IPv6Address((0x2002 << 112) | (int(ipv4) << 80)))):
        assert not is_public_address(ipaddress.ip_address(wrapped)), wrapped


def test_unresolvable_names_are_not_found():
    from portal.mail.errors import HostNotFound

    with pytest.raises(HostNotFound):
        resolve_destination("no-such-host.invalid", 587, MailConfig())
