"""Employees and projects: who may send, and what a mailbox can be tied to."""
from flask_login import UserMixin
from peewee import BooleanField, CharField, DateTimeField, fn
from werkzeug.security import check_password_hash, generate_password_hash

from portal.models.base import BaseModel, utcnow

ROLES = ("employee", "admin")
LANGUAGES = ("en", "ru")
FIELD_MAX = 255


def normalize_email(address):
    """The form an e-mail is stored and compared in: trimmed, lower case."""
    return (address or "").strip().lower()


class Employee(UserMixin, BaseModel):
    name = CharField(max_length=FIELD_MAX)
    email = CharField(max_length=FIELD_MAX, unique=True)
    position = CharField(max_length=FIELD_MAX, default="")
    department = CharField(max_length=FIELD_MAX, default="", index=True)
    role = CharField(max_length=16, default="employee")
    active = BooleanField(default=True)
    language = CharField(max_length=8, null=True)
    password_hash = CharField(max_length=FIELD_MAX, default="")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    @property
    def is_admin(self):
        return self.role == "admin"

    @property
    def is_active(self):
        return self.active

    def set_password(self, password):
        """Store a scrypt hash of the password, never the password."""
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password):
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def save(self, *args, **kwargs):
        self.email = normalize_email(self.email)
        self.updated_at = utcnow()
        return super().save(*args, **kwargs)

    @classmethod
    def by_email(cls, address):
        """The employee with this e-mail, compared case-insensitively, or None."""
        return cls.get_or_none(cls.email == normalize_email(address))

    @classmethod
    def search(cls, text="", sort="name", descending=False):
        """Employees whose name, e-mail or department contains the text, in the asked order."""
        query = cls.select()
        text = (text or "").strip()
        if text:
            query = query.where(
                fn.LOWER(cls.name).contains(text.lower())
                | cls.email.contains(text.lower())
                | fn.LOWER(cls.department).contains(text.lower())
            )
        column = {
            "name": fn.LOWER(cls.name),
            "email": cls.email,
            "department": fn.LOWER(cls.department),
            "position": fn.LOWER(cls.position),
            "role": cls.role,
        }.get(sort, fn.LOWER(cls.name))
        order = column.desc() if descending else column.asc()
        return query.order_by(order, cls.id)

    @classmethod
    def departments(cls):
        """Every department named on some employee, sorted."""
        rows = cls.select(cls.department).where(cls.department != "").distinct()
        return sorted({row.department for row in rows}, key=str.lower)

    def __str__(self):
        return f"{self.name} <{self.email}>"


class Project(BaseModel):
    name = CharField(max_length=FIELD_MAX, unique=True)
    archived = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)

    @classmethod
    def active_projects(cls):
        return cls.select().where(cls.archived == False).order_by(fn.LOWER(cls.name))  # noqa: E712

    @classmethod
    def by_name(cls, name):
        """The project with this name, compared case-insensitively, or None."""
        return cls.get_or_none(fn.LOWER(cls.name) == (name or "").strip().lower())

    def __str__(self):
        return self.name
