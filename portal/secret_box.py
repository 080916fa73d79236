"""Mailbox secrets at rest: Fernet with rotating keys, each ciphertext bound to the row it belongs to.

Keys come from PORTAL_SECRET_KEYS (comma-separated; the first encrypts, every one decrypts) or,
when that is unset, from a key generated once into the instance folder with mode 0600.
The plaintext is stored as ``context NUL secret``; the context is random per row, so a
ciphertext copied into another row fails to decrypt there. No Flask import: the letters
queue and the command line use it as it is.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from portal.config import instance_secret

INSTANCE_KEY_FILE = "mailbox_secret_key"
_SEPARATOR = "\x00"


class SecretError(ValueError):
    """A stored secret cannot be read: wrong key, damaged, or copied from another row."""


def new_context():
    """A fresh random context for one row (stored beside its ciphertexts, not secret itself)."""
    return secrets.token_hex(16)


def fernet_key(text):
    """A Fernet key from a configured value: used as is when it is one, else derived by SHA-256."""
    text = text.strip()
    try:
        if len(base64.urlsafe_b64decode(text.encode())) == 32:
            return text.encode()
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())


def configured_keys(keys_setting, instance_path):
    """The keys, newest first: PORTAL_SECRET_KEYS when set, else the instance folder's own key."""
    if keys_setting:
        values = keys_setting.split(",") if isinstance(keys_setting, str) else list(keys_setting)
        keys = [value.strip() for value in values if value and value.strip()]
        if keys:
            return keys
    return [instance_secret(instance_path, INSTANCE_KEY_FILE)]


class SecretBox:
    """Encrypts and decrypts secrets with the configured keys."""

    def __init__(self, keys):
        keys = list(keys)
        if not keys:
            raise ValueError("a secret box needs at least one key")
        self._fernet = MultiFernet([Fernet(fernet_key(key)) for key in keys])
        self._digest_keys = [hashlib.sha256(b"portal-settings-digest" + fernet_key(key)).digest() for key in keys]

    @classmethod
    def from_config(cls, config, instance_path):
        """The box a Flask-style config mapping describes."""
        return cls(configured_keys(config.get("PORTAL_SECRET_KEYS"), instance_path))

    def encrypt(self, plaintext, context):
        """Ciphertext of a secret for the row whose context is given; '' stays ''."""
        if not plaintext:
            return ""
        if not context or _SEPARATOR in context:
            raise ValueError("a secret needs its row's context")
        return self._fernet.encrypt((context + _SEPARATOR + plaintext).encode()).decode()

    def decrypt(self, ciphertext, context):
        """The secret stored for this row; SecretError if it was made for another row or key."""
        if not ciphertext:
            return ""
        try:
            data = self._fernet.decrypt(ciphertext.encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise SecretError("the stored secret cannot be decrypted with the configured keys") from None
        bound, separator, plaintext = data.partition(_SEPARATOR)
        if not separator or not secrets.compare_digest(bound, context or ""):
            raise SecretError("the stored secret belongs to another row")
        return plaintext

    def rotate(self, ciphertext, context):
        """The same secret encrypted with the newest key (checking it belongs to this row)."""
        if not ciphertext:
            return ""
        return self.encrypt(self.decrypt(ciphertext, context), context)

    def digest(self, data):
        """A keyed SHA-256 of some text: tells settings apart without letting anyone guess a password from it.

        It is keyed by the newest key; `matches` also accepts digests made with the older keys.
        """
        return _keyed_digest(self._digest_keys[0], data)

    def matches(self, stored, data):
        """Whether a stored digest was made from this text with any configured key (newest or older).

        A new first key in PORTAL_SECRET_KEYS therefore leaves every stored digest valid until
        `rotate-secrets` rewrites it with the newest key.
        """
        if not stored:
            return False
        return any(hmac.compare_digest(stored, _keyed_digest(key, data)) for key in self._digest_keys)


def _keyed_digest(key, data):
    return hmac.new(key, data.encode(), hashlib.sha256).hexdigest()


_active = None


def install(box):
    """Make this box the one models use when no box is passed (the app factory's blueprint does it)."""
    global _active
    _active = box
    return box


def active_box():
    """The installed box; RuntimeError when no app has configured one yet."""
    if _active is None:
        raise RuntimeError("no secret box is configured; create the app first")
    return _active
