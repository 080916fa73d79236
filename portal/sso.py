"""Signing in with the company's identity: OpenID Connect through Authlib, and who the identity is here.

The flow is the authorization code flow with PKCE (S256): `begin_sign_in` makes the provider's URL and the
values the callback needs (state, nonce, code verifier), which `start_flow` keeps on the server (an SsoFlow, the
verifier encrypted; the browser keeps only the state); `finish_flow` takes that trip back by a state this
browser was given, once, and `finish_sign_in` has Authlib exchange the code and validate the ID token (signature
from the provider's JWKS, issuer, audience, expiry, nonce) and returns the `Identity`; `employee_for` matches it
to an employee by the linked issuer + subject, by verified e-mail the first time, or creates one when the admin
allows it. `keep_for_sign_out` keeps the ID token (encrypted) with the portal session it opened, for signing
out at the provider too. Every refusal is an `SsoRefusal` whose code names a message of MESSAGES. Authlib is
used only in this module. No Flask import.
"""
from __future__ import annotations

import email.utils
import secrets
import time
from dataclasses import dataclass, field
from typing import ClassVar

import requests
from authlib.integrations.base_client import BaseApp, OAuth2Mixin, OAuthError, OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session
from joserfc import errors as jose_errors

from portal import http as web
from portal import openid, provider_trips
from portal.admin_settings import PageSettings
from portal.coded_messages import CodedError, CodedMessage
from portal.db import database, locked, writing
from portal.models import Employee, normalize_email, utcnow
from portal.models.people import FIELD_MAX
from portal.models.sso import SsoFlow, SsoLink, SsoSignIn
from portal.secret_box import SecretError
from portal.sessions import session_id
from portal.words import N_

SETTING_KEY = "sso"
LEEWAY = 120  # seconds of clock difference an ID token's times may have
ENVIRONMENT = {  # SsoSettings field: the configuration key that sets it
    "discovery_url": "PORTAL_OIDC_DISCOVERY_URL", "client_id": "PORTAL_OIDC_CLIENT_ID",
    "client_secret": "PORTAL_OIDC_CLIENT_SECRET", "company_name": "PORTAL_OIDC_COMPANY_NAME",
}

# Every refusal and check result, by code: English here (logs), and the msgid the pages translate.
MESSAGES = {
    "not_configured": N_("Single sign-on is not configured."),
    "discovery_unreachable": N_("Cannot read the discovery document at %(url)s (%(detail)s)."),
    "discovery_status": N_("The discovery address %(url)s answered HTTP %(status)s: check the address."),
    "discovery_invalid": N_("The address %(url)s does not hold an OpenID Connect discovery document (%(detail)s)."),
    "issuer_mismatch": N_("The discovery document names the issuer %(issuer)s, which does not match its address "
                          "%(url)s."),
    "discovery_ok": N_("The discovery document was read; the issuer is %(issuer)s."),
    "keys_unreachable": N_("Cannot read the provider's signing keys at %(url)s (%(detail)s)."),
    "keys_ok": N_("Signing keys the provider publishes: %(count)d."),
    "clock_skew": N_("The provider's clock and this server's differ by %(seconds)d seconds; ID tokens are refused "
                     "beyond %(leeway)d. Synchronise the clocks (NTP)."),
    "clock_ok": N_("The clocks agree: they differ by less than the %(leeway)d seconds allowed."),
    "client_refused": N_("The provider refused the client ID or client secret (%(error)s)."),
    "client_ok": N_("The provider accepted the client ID and client secret."),
    "client_unknown": N_("The client ID and secret could not be checked: the provider answered %(error)s."),
    "provider_error": N_("The provider did not sign you in: %(error)s %(description)s"),
    "state": N_("This sign-in link is not the one this browser started (its state does not match). Start again."),
    "no_code": N_("The provider's answer has no authorization code. Start again."),
    "code_refused": N_("The provider refused the authorization code (already used, expired or not ours). Start again."),
    "token_failed": N_("The provider's token answer could not be used: %(detail)s"),
    "no_id_token": N_("The provider answered without an ID token; is the scope openid set?"),
    "id_token_audience": N_("The ID token was issued for another application, not this portal."),
    "id_token_issuer": N_("The ID token was issued by another provider."),
    "id_token_nonce": N_("The ID token belongs to another sign-in (its nonce does not match)."),
    "id_token_expired": N_("The ID token has expired; if this repeats, the clocks of the portal and the provider "
                           "differ."),
    "id_token_clock": N_("The ID token was issued in the future: the clocks of the portal and the provider differ."),
    "id_token_signature": N_("The ID token's signature does not match the provider's keys."),
    "id_token_invalid": N_("The ID token is not valid: %(detail)s"),
    "no_email": N_("The provider did not say your e-mail address; ask the admin to add the email scope."),
    "email_unverified": N_("The provider has not verified your e-mail address %(email)s, so it cannot be matched."),
    "unknown": N_("There is no employee with the e-mail %(email)s in the portal. Ask an admin to add you."),
    "deactivated": N_("Your account in the portal is deactivated."),
    "linked_elsewhere": N_("The employee with the e-mail %(email)s is linked to another identity at this provider."),
    "field_too_long": N_("Your %(claim)s from the provider is longer than %(limit)d characters."),
    "replayed": N_("This sign-in link was already used: each one works once only. Start again."),
    "expired": N_("This sign-in took too long (more than 10 minutes) and has expired."),
}


class Message(CodedMessage):
    """One message of MESSAGES with its values; str() is the English text."""

    catalogue = MESSAGES


class SsoRefusal(CodedError):
    """A sign-in that cannot go on; `message` says why, for the person or the admin."""

    message_class = Message


@dataclass(frozen=True)
class SsoSettings(PageSettings):
    """Where the provider is, the portal's client there, and how its people become employees."""

    setting_key: ClassVar[str] = SETTING_KEY
    secret_name: ClassVar[str] = "client_secret"
    secret_bound_to: ClassVar[tuple] = ("discovery_url", "client_id")  # the provider and client it was given for
    environment: ClassVar[dict] = ENVIRONMENT
    page_fields: ClassVar[tuple] = ("discovery_url", "client_id", "client_secret", "company_name", "scopes",
                                    "passwords_allowed", "provision", "department_claim", "groups_claim",
                                    "admin_group")

    discovery_url: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    company_name: str = ""
    scopes: str = "openid email profile"
    passwords_allowed: bool = True  # False: only admins may still use a password (break-glass)
    provision: bool = False  # create unknown people on their first sign-in
    department_claim: str = "department"
    groups_claim: str = "groups"
    admin_group: str = ""  # members of this group are created as admins
    # Where the provider may be reached (PORTAL_OIDC_ALLOWED_HOSTS); never set on the page.
    access: web.WebAccess = field(default_factory=openid.provider_access, repr=False, compare=False,
                                  metadata={"public": False})

    @property
    def configured(self):
        return bool(self.discovery_url and self.client_id)

    @property
    def label(self):
        """The name on "Sign in with …": the company's, else a word every language reads."""
        return self.company_name or "SSO"

    @classmethod
    def from_mapping(cls, config, stored=None):
        """Settings from a config mapping (PORTAL_OIDC_*), overridden by those an admin stored on the page."""
        return super().from_mapping(config, stored, access=openid.access_from(config))

    def passwords_allowed_for(self, employee):
        """Whether this employee may sign in with a password: always for admins (break-glass)."""
        return self.passwords_allowed or not self.configured or employee.is_admin


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in, from the validated ID token (and its userinfo)."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    claims: dict = field(repr=False)
    id_token: str = field(default="", repr=False)
    end_session_endpoint: str = ""  # where the provider offers RP-initiated logout, if it does


class GuardedSession(OAuth2Session):
    """Authlib's requests session, sending everything through the connection guard (portal/http.py)."""

    def __init__(self, *args, web_access: web.WebAccess, **kwargs):
        super().__init__(*args, **kwargs)
        web.guard_session(self, web_access)


class OpenIdClient(OAuth2Mixin, OpenIDMixin, BaseApp):
    """Authlib's OpenID Connect client (what its Flask client is made of) on a guarded `requests` session."""

    client_cls = GuardedSession

    def fetch_jwk_set(self, force=False):
        """The provider's keys, kept a few minutes; ``force`` (a token names an unknown key) fetches anew."""
        access = self.client_kwargs["web_access"]
        try:
            return openid.signing_keys(self.server_metadata["jwks_uri"], access, refresh=force)
        except openid.DiscoveryError as error:
            raise SsoRefusal(error.code, **error.values) from None


def _client(settings, metadata):
    return OpenIdClient(None, client_id=settings.client_id, client_secret=settings.client_secret,
                        client_kwargs={"scope": settings.scopes, "code_challenge_method": "S256",
                                       "web_access": settings.access,
                                       "leeway": 0},  # the access token is used at once, for userinfo
                        **metadata)


def discover(settings, *, fresh=False):
    """The provider's discovery document (and the answer's Date header), or SsoRefusal saying what is wrong."""
    if not settings.configured:
        raise SsoRefusal("not_configured")
    try:
        found = openid.discover(settings.discovery_url, settings.access, fresh=fresh)
    except openid.DiscoveryError as error:
        raise SsoRefusal(error.code, **error.values) from None
    return dict(found.metadata), found.date


def begin_sign_in(settings, redirect_uri):
    """The provider's sign-in URL, and what the callback needs again (`start_flow` keeps it on the server)."""
    metadata, _ = discover(settings)
    started = _client(settings, metadata).create_authorization_url(redirect_uri)
    return {"url": started["url"], "state": started["state"], "nonce": started["nonce"],
            "code_verifier": started["code_verifier"], "redirect_uri": redirect_uri}


@dataclass(frozen=True)
class StartedSignIn:
    """Where to send the browser, and the state its session keeps (all the browser keeps of the sign-in)."""

    url: str
    state: str


def start_flow(settings, redirect_uri, next_target=""):
    """Begin "Sign in with": the trip kept on the server (the PKCE verifier encrypted), old trips removed."""
    pending = begin_sign_in(settings, redirect_uri)
    now = utcnow()
    with writing():
        provider_trips.sweep(SsoFlow, now)
        flow = SsoFlow(state=pending["state"], nonce=pending["nonce"], redirect_uri=redirect_uri,
                       next_target=next_target or "", created_at=now)
        flow.set_secret("code_verifier", pending["code_verifier"])
        flow.save()
    return StartedSignIn(pending["url"], pending["state"])


_TRIP_REFUSALS = {"foreign": "state", "replayed": "replayed", "expired": "expired"}


def finish_flow(settings, answer, session_states):
    """(the Identity the callback's answer proves, the page to open), or SsoRefusal.

    The trip is found only by a state in `session_states` (those this browser was given), and used up whatever
    the answer: a second callback with it is refused as used, one after FLOW_MAX_AGE as expired.
    """
    if not answer.get("state"):  # a provider's refusal that names no trip is said as the provider's
        _refuse_if_the_provider_did(answer)
    try:
        flow = provider_trips.take(SsoFlow, answer.get("state") or "", session_states, utcnow())
        verifier = provider_trips.verifier(flow)
    except provider_trips.FlowRefused as refused:
        raise SsoRefusal(_TRIP_REFUSALS[refused.reason]) from None
    pending = {"state": flow.state, "nonce": flow.nonce, "code_verifier": verifier, "redirect_uri": flow.redirect_uri}
    return finish_sign_in(settings, pending, answer), flow.next_target


_CLAIM_REFUSALS = {"aud": "id_token_audience", "azp": "id_token_audience", "iss": "id_token_issuer",
                   "nonce": "id_token_nonce", "iat": "id_token_clock", "nbf": "id_token_clock"}


def _validated_claims(client, settings, metadata, token, nonce):
    """The ID token's claims, validated by Authlib (signature from JWKS, issuer, audience, expiry, nonce)."""
    options = {"iss": {"essential": True, "value": metadata["issuer"]},
               "aud": {"essential": True, "value": settings.client_id}}
    try:
        claims = client.parse_id_token(token, nonce=nonce, claims_options=options, leeway=LEEWAY)
    except SsoRefusal:  # the keys could not be read
        raise
    except jose_errors.ExpiredTokenError:
        raise SsoRefusal("id_token_expired") from None
    except jose_errors.ClaimError as error:
        code = _CLAIM_REFUSALS.get(error.claim)
        raise (SsoRefusal(code) if code else SsoRefusal("id_token_invalid", detail=str(error))) from None
    except jose_errors.BadSignatureError:
        raise SsoRefusal("id_token_signature") from None
    except (jose_errors.JoseError, ValueError) as error:
        raise SsoRefusal("id_token_invalid", detail=type(error).__name__) from None
    if claims is None:
        raise SsoRefusal("no_id_token")
    return dict(claims)


def _refuse_if_the_provider_did(answer):
    """SsoRefusal("provider_error") when the callback's answer is the provider's refusal (the person cancelled)."""
    if answer.get("error"):
        raise SsoRefusal("provider_error", error=answer["error"][:100],
                         description=(answer.get("error_description") or "")[:300])


def finish_sign_in(settings, pending, answer):
    """The Identity the provider's answer (the callback's query) proves, or SsoRefusal.

    `pending` is what `begin_sign_in` returned, kept by this browser (None when it started nothing).
    """
    _refuse_if_the_provider_did(answer)
    state = answer.get("state") or ""
    if not pending or not secrets.compare_digest(state.encode(), str(pending.get("state", "")).encode()):
        raise SsoRefusal("state")
    if not answer.get("code"):
        raise SsoRefusal("no_code")
    metadata, _ = discover(settings)
    client = _client(settings, metadata)
    try:
        token = client.fetch_access_token(redirect_uri=pending["redirect_uri"], code=answer["code"],
                                          code_verifier=pending["code_verifier"])
    except OAuthError as error:
        if error.error == "invalid_client":
            raise SsoRefusal("client_refused", error=error.error) from None
        raise SsoRefusal("code_refused") from None
    except requests.RequestException as error:
        raise SsoRefusal("token_failed", detail=type(error).__name__) from None
    except ValueError as error:
        raise SsoRefusal("token_failed", detail=str(error)[:200]) from None
    claims = _validated_claims(client, settings, metadata, token, pending["nonce"])
    if metadata.get("userinfo_endpoint") and token.get("access_token"):
        # Many providers (and the code flow's conforming ones) send e-mail and groups only from userinfo.
        try:
            extra = dict(client.userinfo(token=token))
        except (requests.RequestException, OAuthError, ValueError):
            extra = {}
        if extra.get("sub") == claims["sub"]:
            claims = {**extra, **claims}
    address = claims.get("email")
    return Identity(issuer=claims["iss"], subject=str(claims["sub"]),
                    email=address if isinstance(address, str) else "",
                    email_verified=claims.get("email_verified") is True, claims=claims,
                    id_token=token.get("id_token", ""),
                    end_session_endpoint=str(metadata.get("end_session_endpoint") or ""))


def validate_id_token(settings, token, nonce):
    """The claims of `token["id_token"]` if it is valid for this portal's client, else SsoRefusal."""
    metadata, _ = discover(settings)
    return _validated_claims(_client(settings, metadata), settings, metadata, token, nonce)


def _claim_text(claims, name):
    value = claims.get(name) if name else None
    if isinstance(value, list):
        value = value[0] if value else None
    return value.strip() if isinstance(value, str) else ""


def _new_employee(identity, settings, address):
    name = _claim_text(identity.claims, "name") or address.split("@")[0]
    department = _claim_text(identity.claims, settings.department_claim)
    for claim, value in (("name", name), ("email", address), (settings.department_claim, department)):
        if len(value) > FIELD_MAX:
            raise SsoRefusal("field_too_long", claim=claim, limit=FIELD_MAX)
    groups = identity.claims.get(settings.groups_claim) if settings.groups_claim else None
    groups = [groups] if isinstance(groups, str) else groups if isinstance(groups, list) else []
    admin = bool(settings.admin_group) and settings.admin_group in groups
    employee = Employee(name=name, email=address, department=department, role="admin" if admin else "employee")
    employee.save()
    return employee


def employee_for(identity, settings):
    """The active employee this identity is: (employee, how) with how "linked", "matched" or "created".

    Linked identities are found by issuer + subject, whatever their e-mail is now. The first time, a
    verified e-mail finds the employee (or creates one when `settings.provision`), and the link is kept.
    """
    with database.atomic():
        link = SsoLink.get_or_none((SsoLink.issuer == identity.issuer) & (SsoLink.subject == identity.subject))
        how = "linked"
        if link is not None:
            employee = Employee.get_by_id(link.employee_id)
        else:
            address = normalize_email(identity.email)
            if not address:
                raise SsoRefusal("no_email")
            if not identity.email_verified:
                raise SsoRefusal("email_unverified", email=address)
            employee = Employee.by_email(address)
            how = "matched"
            if employee is None:
                if not settings.provision:
                    raise SsoRefusal("unknown", email=address)
                employee = _new_employee(identity, settings, address)
                how = "created"
            elif SsoLink.select().where((SsoLink.issuer == identity.issuer)
                                        & (SsoLink.employee == employee.id)).exists():
                raise SsoRefusal("linked_elsewhere", email=address)
        if not employee.active:
            raise SsoRefusal("deactivated")
        if link is None:
            SsoLink.create(employee=employee.id, issuer=identity.issuer, subject=identity.subject)
        else:
            SsoLink.update(last_sign_in_at=utcnow()).where(SsoLink.id == link.id).execute()
    return employee, how


def logout_url(end_session_endpoint, settings, id_token, post_logout_redirect_uri):
    """The provider's RP-initiated logout URL (with id_token_hint), or None when it offers none."""
    if not end_session_endpoint:
        return None
    client = _client(settings, {"end_session_endpoint": end_session_endpoint})
    return client.create_logout_url(post_logout_redirect_uri=post_logout_redirect_uri, id_token_hint=id_token,
                                    client_id=settings.client_id)["url"]


def keep_for_sign_out(session_token, identity):
    """Keep the ID token (encrypted) and the provider's logout address with the portal session the sign-in opened
    (`session_token` names it); nothing when the provider offers no logout."""
    session = session_id(session_token)
    if session is None or not identity.end_session_endpoint:
        return
    signed_in = SsoSignIn(session=session, end_session_endpoint=identity.end_session_endpoint)
    signed_in.set_secret("id_token", identity.id_token)
    signed_in.save(force_insert=True)


def provider_sign_out(session_token):
    """(the provider's logout address, the ID token for its hint) of the session single sign-on opened, else None.

    Read before the session ends: ending it deletes them. An ID token no configured key opens (the keys changed)
    leaves the hint out; the provider then asks who is signing out.
    """
    session = session_id(session_token)
    signed_in = SsoSignIn.get_or_none(SsoSignIn.session == session) if session is not None else None
    if signed_in is None:
        return None
    try:
        id_token = signed_in.secret("id_token")
    except SecretError:
        id_token = ""
    return signed_in.end_session_endpoint, id_token


def rotate_secrets(box) -> tuple[int, int]:
    """Re-encrypt the kept ID tokens with the newest key; (re-encrypted, emptied). One no key opens is emptied (its
    session's sign-out offer goes without the hint) rather than stopping the rotation for a sign-in hint."""
    rotated = emptied = 0
    with writing():
        for signed_in in locked(SsoSignIn.select()):
            try:
                id_token = box.rotate(signed_in.id_token, signed_in.secret_context)
                rotated += 1
            except SecretError:
                id_token = ""
                emptied += 1
            SsoSignIn.update(id_token=id_token).where(SsoSignIn.session == signed_in.session_id).execute()
    return rotated, emptied


@dataclass(frozen=True)
class CheckResult:
    """One line of the admin's "Check": fine or not, and the message saying so."""

    ok: bool
    message: Message


def _clock_result(date_header):
    try:
        theirs = email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    difference = abs(theirs - time.time())
    if difference > LEEWAY:
        return CheckResult(False, Message("clock_skew", {"seconds": round(difference), "leeway": LEEWAY}))
    return CheckResult(True, Message("clock_ok", {"leeway": LEEWAY}))


def _client_result(client, metadata):
    """Send the client's credentials with a code that cannot exist: `invalid_grant` means they were accepted."""
    try:
        client.fetch_access_token(redirect_uri=metadata["issuer"], code="portal-check-" + secrets.token_hex(8),
                                  code_verifier=secrets.token_urlsafe(48))
    except OAuthError as error:
        if error.error == "invalid_client":
            return CheckResult(False, Message("client_refused", {"error": error.error}))
        if error.error in ("invalid_grant", "invalid_request", "unauthorized_client"):
            return CheckResult(True, Message("client_ok"))
        return CheckResult(False, Message("client_unknown", {"error": error.error}))
    except (requests.RequestException, ValueError) as error:
        return CheckResult(False, Message("client_unknown", {"error": type(error).__name__}))
    return CheckResult(False, Message("client_unknown", {"error": "a token"}))


def check_provider(settings):
    """What the admin's "Check" button reports: discovery, signing keys, clocks, client credentials."""
    try:
        metadata, date_header = discover(settings, fresh=True)
    except SsoRefusal as refusal:
        return [CheckResult(False, refusal.message)]
    results = [CheckResult(True, Message("discovery_ok", {"issuer": metadata["issuer"]}))]
    try:
        keys = openid.signing_keys(metadata["jwks_uri"], settings.access)
        results.append(CheckResult(True, Message("keys_ok", {"count": len(keys["keys"])})))
    except openid.DiscoveryError as error:
        results.append(CheckResult(False, Message(error.code, error.values)))
    clock = _clock_result(date_header)
    if clock is not None:
        results.append(clock)
    results.append(_client_result(_client(settings, metadata), metadata))
    return results


store_settings = SsoSettings.store


def configured_settings(config, box):
    """The settings in force: PORTAL_OIDC_* from the configuration, overridden by the page's."""
    return SsoSettings.from_mapping(config, SsoSettings.stored(box))
