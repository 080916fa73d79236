"""A trip to the provider's consent page and back: started for the mailbox form or for Reconnect, finished by the
callback, which refuses a state it did not give this person in this browser, one used before, or one too old."""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from portal.db import writing
from portal.models import utcnow
from portal.models.oauth import MailboxGrant, OAuthFlow
from portal.provider_trips import KEPT_FOR, FlowRefused, sweep, take, verifier  # noqa: F401  (FlowRefused: views)

from . import client, grants
from .client import ProviderError, ProviderUnreachable

SECRET_FORM_FIELDS = ("smtp_password", "incoming_password", "csrf_token", "proof", "oauth_grant")


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and the state to remember in the browser's own session."""

    url: str
    state: str
    flow_id: str


def start(provider_key: str, employee, redirect_uri: str, *, purpose: str = "form", mailbox=None,
          form_values: dict | None = None, login_hint: str = "") -> Started:
    """Remember a new trip (state, nonce, PKCE verifier, the form without passwords) and give its consent URL."""
    app = grants.app_settings(provider_key)
    authorization = client.authorization(app, redirect_uri, login_hint=login_hint)
    kept = {k: v for k, v in (form_values or {}).items() if k not in SECRET_FORM_FIELDS}
    now = utcnow()
    with writing():
        sweep(OAuthFlow, now)
        MailboxGrant.delete().where(MailboxGrant.mailbox.is_null() & (MailboxGrant.created_at < now - KEPT_FOR)
                                    ).execute()
        flow = OAuthFlow(id=secrets.token_urlsafe(24), state=authorization.state, employee=employee.id,
                         provider=provider_key, purpose=purpose, mailbox=mailbox.id if mailbox is not None else None,
                         nonce=authorization.nonce, form_values=json.dumps(kept), created_at=now)
        flow.set_secret("code_verifier", authorization.code_verifier)
        flow.save(force_insert=True)
    return Started(authorization.url, authorization.state, flow.id)


def finish(state: str, employee, session_states, answer: dict, redirect_uri: str) -> OAuthFlow:
    """Take the provider's answer to the callback: refuse an untrusted state (FlowRefused); otherwise return the
    flow with ``identity`` and a pending grant (id ``flow.id``) or with the provider's ``error``."""
    now = utcnow()
    # Only this person's flow that this browser was sent off with.
    flow = take(OAuthFlow, state, session_states, now, where=OAuthFlow.employee == employee.id)
    code_verifier = verifier(flow)
    if answer.get("error"):
        return _failed(flow, ProviderError(str(answer["error"])[:64], str(answer.get("error_description") or "")))
    try:
        app = grants.app_settings(flow.provider)
        tokens = client.exchange_code(app, str(answer.get("code") or ""), redirect_uri, code_verifier)
        identity = client.signed_in_address(app, tokens, flow.nonce)
    except ProviderError as refusal:
        return _failed(flow, refusal)
    except (ProviderUnreachable, grants.AppNotRegistered):
        return _failed(flow, ProviderError("temporarily_unavailable", ""))
    sasl = client.endpoints(app).sasl
    grants.new_grant(flow.provider, identity, sasl, tokens, employee=employee, form_key=flow.id, now=now)
    flow.identity = identity
    flow.save(only=[OAuthFlow.identity])
    return flow


def _failed(flow: OAuthFlow, refusal: ProviderError) -> OAuthFlow:
    flow.error, flow.error_description = refusal.error, refusal.description
    flow.save(only=[OAuthFlow.error, OAuthFlow.error_description])
    return flow


def returned_flow(flow_id: str, employee) -> OAuthFlow | None:
    """The employee's finished flow with this id (for the form it returns to), or None."""
    flow = OAuthFlow.get_or_none((OAuthFlow.id == (flow_id or "")) & (OAuthFlow.employee == employee.id))
    return flow if flow is not None and flow.used_at is not None else None


def pending_grant(flow_id: str, employee) -> MailboxGrant | None:
    """The grant a finished flow made for this employee's form and nobody saved yet."""
    return MailboxGrant.get_or_none((MailboxGrant.form_key == (flow_id or "")) & MailboxGrant.mailbox.is_null()
                                    & (MailboxGrant.employee == employee.id))
