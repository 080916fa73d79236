"""The guarded web client (portal/http.py) against a real loopback server: where it may go, what it does not follow,
and how long and how large an answer may be."""
from __future__ import annotations

import time

import pytest
import requests

from portal.http import AnswerTooLarge, NotAllowed, TooLarge, WebAccess, fetch, guard_session
from portal.mail.deadline import DeadlineExceeded
from portal.mail.errors import GuardRefused

LOOPBACK = WebAccess.from_entries("127.0.0.1:*")


def test_an_allowed_server_answers_with_its_status_headers_and_body(web_server):
    url = web_server.json("/document", {"issuer": "here"})
    answer = fetch("GET", url, LOOPBACK, headers={"Accept": "application/json"})
    assert (answer.status, answer.json()) == (200, {"issuer": "here"})
    assert answer.header("Content-Type") == "application/json"
    assert web_server.headers[0]["Accept"] == "application/json"
    assert web_server.headers[0]["Accept-Encoding"] == "identity"  # what the size cap counts is what is kept


@pytest.mark.parametrize("access", [WebAccess(), WebAccess.from_entries("127.0.0.1"),
                                    WebAccess.from_entries("10.0.0.0/8:*")],
                         ids=["public only", "loopback without its port", "another network"])
def test_a_loopback_address_is_refused_unless_allowed_with_its_port(web_server, access):
    url = web_server.json("/document", {})
    with pytest.raises(GuardRefused):
        fetch("GET", url, access)
    assert web_server.hits == []  # refused before any connection
    assert fetch("GET", url, WebAccess.from_entries(f"127.0.0.1:{web_server.port}")).status == 200


def test_a_name_is_resolved_once_and_its_private_address_refused(web_server):
    url = web_server.json("/document", {}).replace("127.0.0.1", "idp.example.com")
    looked_up = []

    def rebinding_dns(host, port):
        looked_up.append(host)
        return ["127.0.0.1"]

    with pytest.raises(GuardRefused):
        fetch("GET", url, WebAccess(), resolver=rebinding_dns)
    assert fetch("GET", url, LOOPBACK, resolver=rebinding_dns).status == 200
    assert looked_up == ["idp.example.com", "idp.example.com"] and web_server.hits == ["/document"]


def test_a_redirect_is_handed_back_and_not_followed(web_server):
    target = web_server.json("/elsewhere", {})
    answer = fetch("GET", web_server.redirect("/moved", target), LOOPBACK)
    assert answer.redirect and answer.header("Location") == target
    assert web_server.hits == ["/moved"]


def test_a_server_trickling_its_answer_is_cut_at_the_deadline(web_server):
    url = web_server.trickle("/slow", interval=0.2)  # every read is quick: only the whole-request deadline helps
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        fetch("GET", url, WebAccess.from_entries("127.0.0.1:*", read_timeout=5, deadline=1.0))
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("declare_length", [True, False], ids=["declared", "undeclared"])
def test_an_answer_over_the_size_cap_is_refused(web_server, declare_length):
    url = web_server.body("/big", b"x" * 5000, declare_length=declare_length)
    with pytest.raises(AnswerTooLarge) as refused:
        fetch("GET", url, WebAccess.from_entries("127.0.0.1:*", max_bytes=4096))
    assert refused.value.status == 200
    assert fetch("GET", url, WebAccess.from_entries("127.0.0.1:*", max_bytes=5000)).body == b"x" * 5000


def test_a_requests_session_goes_the_same_guarded_way(web_server):
    """What Authlib's token, key and userinfo requests go through."""
    url = web_server.json("/token", {"access_token": "t"})
    with guard_session(requests.Session(), LOOPBACK) as session:
        assert session.post(url, data={"grant_type": "x"}).json() == {"access_token": "t"}
        with pytest.raises(requests.TooManyRedirects):
            session.get(web_server.redirect("/moved", web_server.url("/token")))
    with guard_session(requests.Session(), WebAccess()) as session, pytest.raises(NotAllowed):
        session.get(url)
    with guard_session(requests.Session(), WebAccess.from_entries("127.0.0.1:*", max_bytes=4)) as session, \
            pytest.raises(TooLarge):
        session.get(url)
    assert web_server.hits == ["/token", "/moved", "/token"]  # not the redirect's target; not for NotAllowed
