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


def write_settings(key, values, secret_name, box, context):
    """Keep the values; the secret among them encrypted (a blank one keeps the stored one)."""
    values = dict(values)
    secret = values.pop(secret_name, "")
    stored = PortalSetting.read(key, {}) or {}
    if secret:
        ciphertext = box.encrypt(secret, context)
    else:
        ciphertext, context = stored.get(secret_name, ""), stored.get("context", context)
    PortalSetting.write(key, {"values": values, "context": context, secret_name: ciphertext})
