"""One discovery function for SSO and the mailboxes' sign-in apps (portal/openid.py), against a loopback server:
what makes a document usable, and that the document and the keys are kept rather than fetched every time."""
from __future__ import annotations

import pytest

from portal import openid
from portal.http import WebAccess
from tests.servers.certificates import make_certificate
from tests.servers.web import WebServer

LOOPBACK = WebAccess.from_entries("127.0.0.1:*")
PATH = "/.well-known/openid-configuration"
KEYS = {"keys": [{"kty": "RSA", "kid": "k1", "n": "sXch", "e": "AQAB"}]}


@pytest.fixture(autouse=True)
def nothing_kept():
    openid.forget()
    yield
    openid.forget()


def document(issuer, **changes):
    values = {"issuer": issuer, "authorization_endpoint": issuer + "/auth", "token_endpoint": issuer + "/token",
              "jwks_uri": issuer + "/jwks"}
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def test_a_document_is_read_once_and_kept(web_server):
    url = web_server.json(PATH, document(web_server.origin))
    first = openid.discover(url, LOOPBACK)
    assert first.metadata["token_endpoint"] == web_server.origin + "/token" and first.date
    assert openid.discover(url, LOOPBACK).metadata == first.metadata
    assert web_server.hits == [PATH]
    openid.discover(url, LOOPBACK, fresh=True)  # the admin's Check compares the clocks with a fresh answer
    assert web_server.hits == [PATH, PATH]


@pytest.mark.parametrize("answer, code", [
    (lambda origin: document("https://login.example.com"), "issuer_mismatch"),
    (lambda origin: document(origin, jwks_uri=None), "discovery_invalid"),
    (lambda origin: ["not", "an", "object"], "discovery_invalid"),
], ids=["another issuer", "no jwks_uri", "not an object"])
def test_an_unusable_document_is_refused_and_not_kept(web_server, answer, code):
    url = web_server.json(PATH, answer(web_server.origin))
    for _ in range(2):
        with pytest.raises(openid.DiscoveryError) as refused:
            openid.discover(url, LOOPBACK)
        assert refused.value.code == code
    assert web_server.hits == [PATH, PATH]


def test_a_wrong_address_says_what_came_back(web_server):
    with pytest.raises(openid.DiscoveryError) as refused:
        openid.discover(web_server.url("/nothing" + PATH), LOOPBACK)
    assert (refused.value.code, refused.value.values["status"]) == ("discovery_status", 404)
    with pytest.raises(openid.DiscoveryError) as refused:
        openid.discover(web_server.body(PATH, b"<html>", content_type="text/html"), LOOPBACK)
    assert (refused.value.code, refused.value.values["detail"]) == ("discovery_invalid", "not JSON")


def test_a_loopback_provider_needs_the_servers_permission(web_server):
    url = web_server.json(PATH, document(web_server.origin))
    with pytest.raises(openid.DiscoveryError) as refused:
        openid.discover(url, openid.access_from({}))
    assert refused.value.code == "discovery_unreachable"
    assert "PORTAL_OIDC_ALLOWED_HOSTS" in refused.value.values["detail"]
    assert web_server.hits == []
    assert openid.discover(url, openid.access_from({"PORTAL_OIDC_ALLOWED_HOSTS": "127.0.0.1:*"})).metadata


def test_keys_are_kept_and_fetched_anew_for_an_unknown_key_at_most_every_half_minute(web_server):
    url = web_server.json("/jwks", KEYS)
    assert openid.signing_keys(url, LOOPBACK) == KEYS
    assert openid.signing_keys(url, LOOPBACK) == KEYS
    assert web_server.hits == ["/jwks"]
    rotated = {"keys": [{**KEYS["keys"][0], "kid": "k2"}]}
    web_server.json("/jwks", rotated)
    assert openid.signing_keys(url, LOOPBACK, refresh=True) == rotated  # a token named k2
    assert openid.signing_keys(url, LOOPBACK, refresh=True) == rotated  # a forged kid: no new request
    assert web_server.hits == ["/jwks", "/jwks"]


def test_an_empty_key_set_is_refused(web_server):
    with pytest.raises(openid.DiscoveryError) as refused:
        openid.signing_keys(web_server.json("/jwks", {"keys": []}), LOOPBACK)
    assert (refused.value.code, refused.value.values["detail"]) == ("keys_unreachable", "no keys")


def test_a_provider_signed_by_an_internal_ca_needs_its_ca_file(tmp_path):
    certificate = make_certificate(tmp_path, label="idp", names=("127.0.0.1",))
    server = WebServer(certificate)
    try:
        url = server.json(PATH, document(server.origin))
        allowed = {"PORTAL_OIDC_ALLOWED_HOSTS": "127.0.0.1:*"}
        with pytest.raises(openid.DiscoveryError) as refused:
            openid.discover(url, openid.access_from(allowed))
        assert refused.value.values["detail"] == "TLS: unable to get local issuer certificate"
        with_ca = openid.access_from({**allowed, "PORTAL_OIDC_CA_FILE": certificate.ca_file})
        assert openid.discover(url, with_ca).metadata["issuer"] == server.origin
    finally:
        server.stop()


def test_an_internal_ca_file_is_trusted_beside_the_system_store_not_instead_of_it(tmp_path, monkeypatch):
    # Google's and Microsoft's certificates chain to the system's CAs: setting PORTAL_OIDC_CA_FILE for the company's
    # own provider must not stop the portal trusting them. The "system store" here is a CA of the test's own, named
    # by OpenSSL's SSL_CERT_FILE, which the default store reads.
    public = make_certificate(tmp_path / "public", label="public", names=("127.0.0.1",))
    internal = make_certificate(tmp_path / "internal", label="internal", names=("127.0.0.1",))
    monkeypatch.setenv("SSL_CERT_FILE", str(public.ca_file))
    server = WebServer(public)
    try:
        url = server.json(PATH, document(server.origin))
        access = openid.access_from({"PORTAL_OIDC_ALLOWED_HOSTS": "127.0.0.1:*",
                                     "PORTAL_OIDC_CA_FILE": internal.ca_file})
        assert openid.discover(url, access).metadata["issuer"] == server.origin
    finally:
        server.stop()
