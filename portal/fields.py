"""Encryption at rest for channel and device secrets.

Values are Fernet tokens in the database. FIELD_ENCRYPTION_KEY holds one or more comma-separated keys: the first
encrypts, every key decrypts, so a new key can be prepended and `manage.py rotate_field_keys` re-encrypts every row.
Values come back wrapped in `Secret` (decrypted when first revealed), whose str/repr never show the value: a
secret that reaches a log line, an exception, a template or the admin by accident prints as a mask.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.query_utils import DeferredAttribute

MASK = "••••••"


class Secret:
    """A secret value that refuses to be printed. Call `.reveal()` where the value is really needed.

    Read from the database it stays sealed (the Fernet token) until revealed, so loading a row that carries secrets
    (a device, a merchant's credentials) costs no decryption unless the secret is used.
    """

    __slots__ = ("_token", "_value")

    def __init__(self, value: str):
        self._value: str | None = value
        self._token: str | None = None

    @classmethod
    def sealed(cls, token: str) -> Secret:
        secret = cls.__new__(cls)
        secret._value, secret._token = None, token
        return secret

    def reveal(self) -> str:
        if self._value is None:
            self._value = decrypt(self._token)
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.reveal() == self.reveal()

    def __hash__(self) -> int:
        return hash(self.reveal())

    def __bool__(self) -> bool:
        # Empty values are stored as "" / NULL, never encrypted: a sealed token always holds a non-empty value.
        return bool(self._token) if self._value is None else bool(self._value)

    def __reduce__(self):  # never pickled into a cache or a task message
        raise TypeError("Secret values cannot be pickled")


@lru_cache(maxsize=4)
def _fernets_for(keys: str) -> tuple[Fernet, ...]:
    parts = [k.strip() for k in keys.split(",") if k.strip()]
    if not parts:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is empty")
    try:
        return tuple(Fernet(k.encode()) for k in parts)
    except ValueError as exc:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY must be url-safe base64 of 32 bytes per key") from exc


@lru_cache(maxsize=4)
def _fernet_for(keys: str) -> MultiFernet:
    return MultiFernet(list(_fernets_for(keys)))


def fernet() -> MultiFernet:
    return _fernet_for(settings.FIELD_ENCRYPTION_KEY)


def opens_with_primary_key(value: Secret) -> bool:
    """Whether a stored value decrypts with the first key of FIELD_ENCRYPTION_KEY alone: after a rotation, every
    value must, before the old key is removed."""
    token = value._token if value._token is not None else encrypt(value.reveal())
    try:
        _fernets_for(settings.FIELD_ENCRYPTION_KEY)[0].decrypt(token.encode("ascii"))
    except InvalidToken:
        return False
    return True


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        # Never include the token or the key in the message.
        raise ImproperlyConfigured("an encrypted field could not be decrypted with FIELD_ENCRYPTION_KEY") from exc


def rotate_token(token: str) -> str:
    """Re-encrypt a token under the current primary key (MultiFernet.rotate)."""
    return fernet().rotate(token.encode("ascii")).decode("ascii")


class _SecretAttribute(DeferredAttribute):
    """Wraps plain strings assigned to the attribute, so a model instance only ever holds `Secret`."""

    def __set__(self, instance, value):
        if isinstance(value, str) and value != "":
            value = Secret(value)
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet token; Python sees `Secret` (or None / "" when unset)."""

    description = "Encrypted text (Fernet)"
    descriptor_class = _SecretAttribute

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return Secret.sealed(value)

    def to_python(self, value):
        if value is None or value == "" or isinstance(value, Secret):
            return value
        return Secret(str(value))

    def get_prep_value(self, value):
        if value is None or value == "":
            return value
        if isinstance(value, Secret):
            value = value.reveal()
        return encrypt(str(value))

    def value_to_string(self, obj):
        # Serialisation (dumpdata) never writes plaintext.
        return MASK
