"""Every table of the portal, importable from one place."""
from portal.models.base import BaseModel, utcnow
from portal.models.people import Employee, EmployeeSession, Project, normalize_email
from portal.models.mailboxes import AuditEvent, Mailbox, MailboxAccess, MailboxProject, PortalSetting  # noqa: E402,F401

__all__ = ["BaseModel", "Employee", "EmployeeSession", "Project", "normalize_email", "utcnow"]
from portal.models.letters import (  # noqa: E402,F401  re-exported: every table importable from here
    Contact, Letter, LetterAttempt, LetterRecipient, MailboxInbox, Reply, SeenMessage)
from portal.models.api import ApiToken  # noqa: E402,F401
from portal.models.account_tests import AccountTestRun  # noqa: E402,F401
from portal.models.directory import DirectoryLink, DirectorySync  # noqa: E402,F401
from portal.models.sso import SsoFlow, SsoLink, SsoSignIn  # noqa: E402,F401
from portal.models.health import DomainDeliverability, MailboxHealth  # noqa: E402,F401
from portal.models.notifications import Notification, NotificationPreference  # noqa: E402,F401
from portal.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint  # noqa: E402,F401
from portal.models.oauth import MailboxGrant, OAuthApp, OAuthFlow  # noqa: E402,F401
