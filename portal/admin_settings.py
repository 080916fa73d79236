"""Settings an admin keeps on a page (a PortalSetting row), one secret among them encrypted at rest.

The row holds ``{"values": {...}, "context": <random>, <secret name>: <ciphertext>}``: the secret is
encrypted with the secret box and bound to the row's context, never stored or shown in the clear. The
directory's bind password and single sign-on's client secret are kept this way. No Flask import.
"""
import json
from dataclasses import fields
from typing import ClassVar, Mapping

from portal.db import locked
from portal.models import PortalSetting
from portal.secret_box import SecretError


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


def write_settings(key, values, secret_name, box, context, *, bound_to=(), configured=None):
    """Keep the values; the secret among them encrypted. A blank one keeps the stored one, unless one of the
    values it was given for (``bound_to``: its server, its account) changed; with none stored, a secret in the
    ``configured`` values (the configuration's, by field) counts only while ``bound_to`` stay as configured.
    Otherwise nothing is written and SecretNotKept is raised: a secret never goes where it was not sent."""
    values = dict(values)
    secret = values.pop(secret_name, "")
    stored = PortalSetting.read(key, {}) or {}
    if secret:
        ciphertext = box.encrypt(secret, context)
    else:
        ciphertext, context = stored.get(secret_name, ""), stored.get("context", context)
        if ciphertext:
            before = stored.get("values") or {}
            changed = [name for name in bound_to if (before.get(name) or "") != (values.get(name) or "")]
        else:
            changed = moved(values, configured or {}, bound_to) if (configured or {}).get(secret_name) else []
        if changed:
            raise SecretNotKept(secret_name, changed)
    PortalSetting.write(key, {"values": values, "context": context, secret_name: ciphertext})


def rotate_setting(key, secret_name, box) -> bool:
    """Re-encrypt the stored secret with the newest key (inside the caller's transaction); whether one was stored.
    One no key opens raises SecretError, and the caller rolls back."""
    row = locked(PortalSetting.select().where(PortalSetting.key == key)).first()
    stored = json.loads(row.value) if row is not None else {}
    if not stored.get(secret_name):
        return False
    stored[secret_name] = box.rotate(stored[secret_name], stored.get("context", ""))
    PortalSetting.write(key, stored)
    return True


def moved(page, configured, bound_to) -> list:
    """The fields of ``bound_to`` the page sets to something else than the configuration (a blank page value takes
    the configuration's): where the configuration's secret must not follow."""
    return [name for name in bound_to if page.get(name) and page[name] != (configured.get(name) or "")]


class PageSettings:
    """A frozen dataclass of settings from configuration keys, overridden by what an admin stored on its page.

    A subclass names ``setting_key`` (its PortalSetting row), ``secret_name`` (the field kept encrypted and
    never shown), ``secret_bound_to`` (the fields naming where the secret goes: a blank secret keeps the stored
    one only while they stay the same), ``environment`` (field: configuration key) and ``page_fields`` (the
    fields the page may set).
    Single sign-on's and the directory's settings are read this one way.
    """

    setting_key: ClassVar[str]
    secret_name: ClassVar[str]
    secret_bound_to: ClassVar[tuple[str, ...]] = ()
    environment: ClassVar[Mapping[str, str]]
    page_fields: ClassVar[tuple[str, ...]]

    @classmethod
    def from_mapping(cls, config, stored=None, **fixed):
        """Settings from a config mapping, overridden by the page's values (a False switch counts; blank does not)."""
        values = {name: config[key] for name, key in cls.environment.items() if config.get(key)}
        page = {name: value for name, value in (stored or {}).items()
                if name in cls.page_fields and (value or isinstance(value, bool))}
        if cls.secret_name not in page and moved(page, values, cls.secret_bound_to):
            values.pop(cls.secret_name, None)  # the configuration's secret goes only where the configuration says
        values.update(page)
        return cls(**values, **fixed)

    @classmethod
    def stored(cls, box):
        """The values an admin stored on the page, the secret decrypted."""
        return read_settings(cls.setting_key, cls.secret_name, box)

    @classmethod
    def store(cls, box, values, context, config=None):
        """Keep the page's values; the secret encrypted. A blank one keeps the stored one, unless a field of
        ``secret_bound_to`` changed; with no stored one, the configuration's secret counts only while the page
        sends it where the configuration does. Otherwise SecretNotKept, and nothing is written."""
        configured = {name: config.get(key) for name, key in cls.environment.items()} if config is not None else None
        write_settings(cls.setting_key, values, cls.secret_name, box, context, bound_to=cls.secret_bound_to,
                       configured=configured)

    @classmethod
    def rotate(cls, box) -> bool:
        """Re-encrypt the page's stored secret with the newest key; whether one was stored. SecretError names
        the settings when no key opens it."""
        try:
            return rotate_setting(cls.setting_key, cls.secret_name, box)
        except SecretError as error:
            raise SecretError(f"{cls.setting_key} settings, {cls.secret_name}: {error}") from None

    def public(self):
        """The settings for pages and reports: the secret only as whether one is set."""
        values = {item.name: getattr(self, item.name) for item in fields(self) if item.metadata.get("public", True)}
        values[self.secret_name] = bool(values.get(self.secret_name))
        return values
