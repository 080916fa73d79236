"""Directory sync's tables: the link from a directory entry to its employee, and each sync's report."""
import json

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, TextField

from portal.models.base import BaseModel, utcnow
from portal.models.people import Employee


class DirectoryLink(BaseModel):
    """An employee the directory keeps, by the entry's DN. Employees without one are kept by hand."""

    employee = ForeignKeyField(Employee, backref="+", on_delete="CASCADE", unique=True)
    dn = CharField(max_length=1024, unique=True)
    manager_dn = CharField(max_length=1024, default="")
    gone = BooleanField(default=False)  # no longer in the directory: deactivated, kept with its letters

    class Meta:
        table_name = "directory_link"


class DirectorySync(BaseModel):
    """One sync (or a dry run's preview) and what it did or would do."""

    started_at = DateTimeField(default=utcnow, index=True)
    finished_at = DateTimeField(null=True)
    dry_run = BooleanField(default=False)
    ok = BooleanField(default=False)
    problem = TextField(default="")
    report = TextField(default="{}")  # JSON of SyncReport.as_dict()

    class Meta:
        table_name = "directory_sync"

    @property
    def details(self):
        return json.loads(self.report or "{}")

    @classmethod
    def latest(cls, *, dry_run=None):
        """The newest sync (only real ones, or only previews, when asked), or None."""
        query = cls.select().order_by(cls.started_at.desc(), cls.id.desc())
        if dry_run is not None:
            query = query.where(cls.dry_run == dry_run)
        return query.first()

    @classmethod
    def first_sync_done(cls):
        """True once a real sync has succeeded: the hourly schedule waits for it."""
        return cls.select().where((cls.dry_run == False) & (cls.ok == True)).exists()  # noqa: E712
