"""The API and provider sign-in: a mailbox says how it signs in and whether it needs reconnecting; adding one that
signs in with the provider is a page flow, and the API says so."""
from __future__ import annotations

from portal.models import Mailbox
from portal.models.oauth import MailboxGrant
from portal.oauth import grants
from portal.oauth.client import Tokens

TOKEN = "access-token-never-shown"


def test_a_mailbox_says_oauth_and_whether_it_needs_reconnecting_and_never_a_token(api_employee, employee,
                                                                                  make_mailbox):
    password = make_mailbox(employee, address="pw@mail.example")
    token = make_mailbox(employee, address="anna@mail.example", password="")
    grants.new_grant("google", "anna@mail.example", "XOAUTH2",
                     Tokens(access_token=TOKEN, refresh_token="refresh-never-shown", expires_in=3600), mailbox=token)
    assert api_employee.get(f"/mailboxes/{password.id}").get_json()["auth"] == "password"
    answer = api_employee.get(f"/mailboxes/{token.id}")
    assert (answer.get_json()["auth"], answer.get_json()["needs_reconnect"]) == ("oauth", False)
    MailboxGrant.update(needs_reconnect=True).execute()
    listed = api_employee.get("/mailboxes")
    assert {m["address"]: m["needs_reconnect"] for m in listed.get_json()["mailboxes"]} == {
        "pw@mail.example": False, "anna@mail.example": True}
    text = answer.get_data(as_text=True) + listed.get_data(as_text=True)
    assert TOKEN not in text and "refresh-never-shown" not in text


def test_adding_a_provider_sign_in_by_api_answers_422_with_the_explanation(api_employee, employee):
    answer = api_employee.post("/mailboxes", json={
        "address": "anna@mail.example", "auth": "oauth",
        "smtp": {"host": "smtp.gmail.com", "port": 465, "security": "ssl", "username": "anna@mail.example"}})
    assert answer.status_code == 422
    assert "consent in a browser" in answer.get_json()["error"]["fields"]["auth"]
    assert Mailbox.select().count() == 0
