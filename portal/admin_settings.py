"""Settings an admin keeps on a page (a PortalSetting row), one secret among them encrypted at rest.

The row holds ``{"values": {...}, "context": <random>, <secret name>: <ciphertext>}``: the secret is
encrypted with the secret box and bound to the row's context, never stored or shown in the clear. The
directory's bind password and single sign-on's client secret are kept this way. No Flask import.
"""
from portal.models import PortalSetting


def read_settings(key, secret_name, box):
    """The stored values, with the secret decrypted under `secret_name` (absent when none is stored)."""
    stored = PortalSetting.read(key, {}) or {}
    values = dict(stored.get("values") or {})
    if stored.get(secret_name):
        values[secret_name] = box.decrypt(stored[secret_name], stored.get("context", ""))
    return values


class SecretNotKept(ValueError):
    """A blank secret cannot keep the stored one: a value it was given for (``changed``) is different now."""

    def __init__(self, secret_name, changed):
        super().__init__(f"{secret_name} must be typed again: {', '.join(changed)} changed")
        self.secret_name, self.changed = secret_name, changed


def write_settings(key, values, secret_name, box, context, *, bound_to=()):
    """Keep the values; the secret among them encrypted. A blank one keeps the stored one, unless one of the
    values it was given for (``bound_to``: its server, its account) changed: then nothing is written and
    SecretNotKept is raised, so that a stored secret never goes where its owner did not send it."""
    values = dict(values)
    secret = values.pop(secret_name, "")
    stored = PortalSetting.read(key, {}) or {}
    if secret:
        ciphertext = box.encrypt(secret, context)
    else:
        ciphertext, context = stored.get(secret_name, ""), stored.get("context", context)
        before = stored.get("values") or {}
        changed = [name for name in bound_to if (before.get(name) or "") != (values.get(name) or "")]
        if ciphertext and changed:
            raise SecretNotKept(secret_name, changed)
    PortalSetting.write(key, {"values": values, "context": context, secret_name: ciphertext})
